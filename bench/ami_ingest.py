"""AMI ingest benchmark: how many events/s each AMI reader sustains over loopback TCP.

The parent process serves a fake Asterisk (banner, Login accepted, then N events looped
from ``load_burst/ami.raw`` sent as fast as the socket takes them); each contender runs
in its own subprocess so its peak RSS is its own, and times from "logged in" to the N-th
event. Contenders:

  hotline+tracker  AmiClient (Twisted) feeding cti.tracker.CallTracker.handle
  hotline-client   AmiClient with a no-op event handler
  parser-lazy      our AmiParser alone on a blocking socket (headers never read)
  parser-full      our AmiParser alone, every event's headers split (msg.get("Uniqueid"))
  panoramisk       panoramisk.Manager on asyncio, a callback registered on '*'
  pyst2            pyst2 asterisk.manager.Manager (threads), register_event('*')
  floor            socket.recv + bytes.split(b"\\r\\n\\r\\n"): the cost of just reading

Figures only; nothing here is asserted in tests. Usage:
  .venv/bin/python bench/ami_ingest.py [--events 200000] [--only a,b] [--repeat 3]

``--repeat N`` runs each contender N times and keeps its fastest run: on a shared machine
a single sub-second run mostly measures the neighbours.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from traces import TRACES  # noqa: E402
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CONTENDERS = ["hotline+tracker", "hotline-client", "parser-lazy", "parser-full",
              "panoramisk", "pyst2", "pyst2-chanvariable", "floor"]
#: pyst2 manages ~1,300 events/s here: give it fewer events so the bench stays short.
PYST2_EVENTS = 20_000
#: Events with a ChanVariable header (manager.conf ``channelvars=``), to show pyst2's crash.
CHANVAR_EVENTS = 1_000
TIMEOUT = 40.0   # per contender, seconds


def load_events(n: int, chanvariable: bool = False) -> bytes:
    """N event blocks (bytes as recorded), looping over load_burst's events."""
    raw = (TRACES / "load_burst" / "ami.raw").read_bytes()
    extra = b"\r\nChanVariable: HOTLINE_SESSION=42" if chanvariable else b""
    blocks = [b + extra + b"\r\n\r\n" for b in raw[raw.find(b"\n") + 1:].split(b"\r\n\r\n")
              if b.startswith(b"Event: ")]
    out = (blocks * (n // len(blocks) + 1))[:n]
    return b"".join(out)


def _offset_of_event(payload: bytes, n: int) -> int:
    """Byte offset just after the n-th event of ``payload``."""
    offset = 0
    for _ in range(n):
        offset = payload.index(b"\r\n\r\n", offset) + 4
    return offset


# -- the fake Asterisk (parent process) ------------------------------------------------------------

def serve_once(listener: socket.socket, payload: bytes) -> None:
    """Accept one client, answer its Login, blast the payload, then drain until it closes."""
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(BANNER)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            conn.close()
            return
        data += chunk
    match = re.search(rb"ActionID: ([^\r\n]*)", data, re.I)
    reply = b"Response: Success\r\n"
    if match:
        reply += b"ActionID: " + match.group(1) + b"\r\n"
    reply += b"Message: Authentication accepted\r\n\r\n"
    try:
        conn.sendall(reply + payload)
        conn.settimeout(TIMEOUT)
        while conn.recv(65536):   # Pings/Logoff are read and ignored
            pass
    except OSError:
        pass
    finally:
        conn.close()


def run_contender(name: str, n: int, payload: bytes) -> dict:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    server = threading.Thread(target=serve_once, args=(listener, payload), daemon=True)
    server.start()
    cmd = [sys.executable, __file__, "--contender", name, "--port", str(port), "--events", str(n)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            err = proc.stderr.strip().splitlines() or ["no output"]
            raised = [line for line in err if re.match(r"^\w+(Error|Exception): ", line)]
            return {"name": name, "error": " / ".join(raised[:1] + err[-1:])[:200]}
        return {"name": name, **json.loads(lines[-1])}
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"no result within {TIMEOUT:.0f} s"}
    finally:
        listener.close()


# -- contenders (each runs in its own subprocess) ----------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the forking parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def login_blocking(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"Action: Login\r\nActionID: 1\r\nUsername: bench\r\nSecret: bench\r\n\r\n")
    return sock


def contender_floor(port: int, n: int) -> tuple[int, float]:
    sock = login_blocking(port)
    start = time.perf_counter()
    tail, count, sep = b"", -1, b"\r\n\r\n"   # -1: the login reply is not an event
    while count < n:
        data = sock.recv(262144)
        if not data:
            break
        parts = (tail + data).split(sep)
        tail = parts.pop()
        count += len(parts)
    return count, time.perf_counter() - start


def contender_parser(port: int, n: int, touch: bool) -> tuple[int, float]:
    sys.path.insert(0, str(ROOT))
    from cti.ami.parser import AmiParser
    sock = login_blocking(port)
    parser = AmiParser()
    start = time.perf_counter()
    count = 0
    while count < n:
        data = sock.recv(262144)
        if not data:
            break
        for message in parser.feed(data):
            if message.kind == "event":
                count += 1
                if touch:
                    message.get("Uniqueid")
    return count, time.perf_counter() - start


def contender_hotline(port: int, n: int, with_tracker: bool) -> tuple[int, float]:
    sys.path.insert(0, str(ROOT))
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint

    from cti.ami.client import AmiClient

    state = {"count": 0, "start": 0.0, "end": 0.0}
    if with_tracker:
        from cti.tracker import CallTracker
        tracker = CallTracker()
        handle = tracker.handle
    else:
        def handle(event):
            return None

    def on_event(event):
        handle(event)
        state["count"] += 1
        if state["count"] == n:
            state["end"] = time.perf_counter()
            reactor.stop()

    client = AmiClient(TCP4ClientEndpoint(reactor, "127.0.0.1", port), "bench", "bench",
                       on_event=on_event, keepalive_interval=0, clock=reactor)
    client.on_connected(lambda c: state.__setitem__("start", time.perf_counter()))
    client.start()
    reactor.callLater(TIMEOUT - 5, reactor.stop)
    reactor.run()
    return state["count"], (state["end"] or time.perf_counter()) - state["start"]


def contender_panoramisk(port: int, n: int) -> tuple[int, float]:
    import asyncio
    import logging
    logging.disable(logging.CRITICAL)
    from panoramisk import Manager

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    state = {"count": 0, "start": 0.0, "end": 0.0}

    def on_login(manager):
        state["start"] = time.perf_counter()

    def on_event(manager, event):
        state["count"] += 1
        if state["count"] == n:
            state["end"] = time.perf_counter()
            loop.stop()

    manager = Manager(loop=loop, host="127.0.0.1", port=port, username="bench", secret="bench",
                      ping_delay=3600, ping_interval=3600, on_login=on_login)
    manager.register_event("*", on_event)
    manager.connect()
    loop.call_later(TIMEOUT - 5, loop.stop)
    loop.run_forever()
    start = state["start"] or state["end"]
    return state["count"], (state["end"] or time.perf_counter()) - start


def contender_pyst2(port: int, n: int) -> tuple[int, float]:
    import warnings
    warnings.simplefilter("ignore")
    from asterisk.manager import Manager

    done = threading.Event()
    state = {"count": 0, "end": 0.0}

    def on_event(event, manager):
        state["count"] += 1
        if state["count"] == n:
            state["end"] = time.perf_counter()
            done.set()

    manager = Manager()
    manager.connect("127.0.0.1", port)
    manager.register_event("*", on_event)
    manager.login("bench", "bench")
    start = time.perf_counter()
    done.wait(TIMEOUT - 5)
    return state["count"], (state["end"] or time.perf_counter()) - start


def run_in_subprocess(name: str, port: int, n: int) -> None:
    runners = {
        "floor": lambda: contender_floor(port, n),
        "parser-lazy": lambda: contender_parser(port, n, touch=False),
        "parser-full": lambda: contender_parser(port, n, touch=True),
        "hotline-client": lambda: contender_hotline(port, n, with_tracker=False),
        "hotline+tracker": lambda: contender_hotline(port, n, with_tracker=True),
        "panoramisk": lambda: contender_panoramisk(port, n),
        "pyst2": lambda: contender_pyst2(port, n),
        "pyst2-chanvariable": lambda: contender_pyst2(port, n),
    }
    count, seconds = runners[name]()
    if count < n:
        print(f"only {count} of {n} events arrived", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({"events": count, "seconds": seconds, "rate": count / seconds,
                      "rss_mb": peak_rss_mb()}))


# -- report ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--only", default=",".join(CONTENDERS))
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per contender; the fastest is reported")
    parser.add_argument("--contender")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.contender:
        run_in_subprocess(args.contender, args.port, args.events)
        return

    payload = load_events(args.events)
    print(f"AMI ingest: {args.events} events, {len(payload) / 1e6:.1f} MB over loopback TCP "
          f"(load_burst/ami.raw events, looped); Python {sys.version.split()[0]}")
    print(f"  (pyst2: {PYST2_EVENTS} events; pyst2-chanvariable: {CHANVAR_EVENTS} events "
          f"carrying 'ChanVariable: HOTLINE_SESSION=42')")
    rows = []
    started = time.perf_counter()
    for name in args.only.split(","):
        if name == "pyst2":
            n = min(args.events, PYST2_EVENTS)
            n_payload = (n, payload[:_offset_of_event(payload, n)])
        elif name == "pyst2-chanvariable":
            n_payload = (CHANVAR_EVENTS, load_events(CHANVAR_EVENTS, chanvariable=True))
        else:
            n_payload = (args.events, payload)
        runs = [run_contender(name, *n_payload) for _ in range(max(1, args.repeat))]
        row = max(runs, key=lambda r: r.get("rate", -1.0))   # the fastest, else an error
        rows.append(row)
        if "error" in row:
            print(f"  {name:<16} FAILED: {row['error']}", flush=True)
        else:
            print(f"  {name:<16} {row['rate']:>11,.0f} events/s  {row['seconds']:6.2f} s  "
                  f"peak RSS {row['rss_mb']:6.1f} MB", flush=True)
    by_name = {r["name"]: r.get("rate") for r in rows}

    def ratio(a: str, b: str) -> str:
        if by_name.get(a) and by_name.get(b):
            return f"{by_name[a] / by_name[b]:.2f}x"
        return "n/a"
    print("\nratios:")
    print(f"  hotline-client / panoramisk   {ratio('hotline-client', 'panoramisk')}")
    print(f"  hotline+tracker / panoramisk  {ratio('hotline+tracker', 'panoramisk')}")
    print(f"  parser-full / panoramisk      {ratio('parser-full', 'panoramisk')}")
    print(f"  floor / hotline-client        {ratio('floor', 'hotline-client')}")
    print(f"  floor / parser-lazy           {ratio('floor', 'parser-lazy')}")
    print(f"  floor / parser-full           {ratio('floor', 'parser-full')}")
    print(f"(whole bench: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
