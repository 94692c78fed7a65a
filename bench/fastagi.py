"""FastAGI throughput and turnaround: Hotline's server vs panoramisk vs a bare asyncio floor.

Each server runs in its own subprocess (fresh per concurrency level, so its peak RSS is
its own); another process plays C concurrent Asterisk callers, each looping calls of the
same 10-command IVR script until the measuring window closes. Figures are taken on the
simulated-Asterisk side: *turnaround* is the time from our reply (or the env block)
leaving ``send()`` to the kernel receiving the server's next command, i.e. the server's
latency (processing + queueing) plus loopback. Server CPU per call is the server
process's user+system time over the run divided by the calls it completed.

    .venv/bin/python bench/fastagi.py [--seconds 3] [--levels 10,100,500,1000] [--servers ...]

Servers: ``hotline`` = ivr.fastagi.FastAGIFactory with a scripted 10-command session
(no engine, no DB, no linkedid fetch: the protocol + driver path only); ``hotline-flow``
= the real path (FlowLibrary + engine) running a 4-step YAML flow of prompts, 7 commands
per call (not in the paced run); ``panoramisk`` = panoramisk.fast_agi.Application (asyncio);
``floor`` = a bare asyncio server that writes the 10 lines and reads the replies.
The default asyncio loop is used (no uvloop); Twisted uses its default reactor (epoll).
Prints figures only; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SCRIPT = [
    "ANSWER",
    "GET VARIABLE CALLERID(num)",
    'STREAM FILE welcome ""',
    "GET DATA menu 3000 4",
    'SET VARIABLE IVR_CHOICE "1"',
    'SAY DIGITS 1234 ""',
    "WAIT FOR DIGIT 2000",
    'EXEC Playback "goodbye"',
    'SET VARIABLE HOTLINE_OUTCOME "completed"',
    "HANGUP",
]
REPLIES = {
    b"ANSWER": b"200 result=0\n",
    b"GET VARIABLE": b"200 result=1 (5551234)\n",
    b"STREAM FILE": b"200 result=0 endpos=14080\n",
    b"GET DATA": b"200 result=1234\n",
    b"SET VARIABLE": b"200 result=1\n",
    b"SAY DIGITS": b"200 result=0\n",
    b"WAIT FOR": b"200 result=49\n",
    b"EXEC": b"200 result=0\n",
    b"HANGUP": b"200 result=1\nHANGUP\n",
}


# --- servers (each runs in its own process) ---------------------------------------------------

def _quiet_twisted_logs() -> None:
    """Begin Twisted logging to nowhere, as ``hotline serve`` begins it to its log file.

    Until someone calls ``beginLoggingTo`` Twisted keeps the last 64K log events in
    memory, which a benchmark would otherwise measure (memory, and GC passes over them).
    """
    from twisted.logger import globalLogBeginner
    globalLogBeginner.beginLoggingTo([lambda event: None], redirectStandardIO=False)


def serve_hotline(port: int) -> None:
    from twisted.internet import reactor
    _quiet_twisted_logs()

    from ivr.commands import (Answer, Exec, Exit, GetData, GetVariable, Hangup, Outcome,
                              SayDigits, SetVariable, StreamFile, WaitForDigit)
    from ivr.fastagi import FastAGIFactory

    commands = [Answer(), GetVariable("CALLERID(num)"), StreamFile("welcome"),
                GetData("menu", 3000, 4), SetVariable("IVR_CHOICE", "1"), SayDigits("1234"),
                WaitForDigit(2000), Exec("Playback", "goodbye"),
                SetVariable("HOTLINE_OUTCOME", "completed"), Hangup()]
    assert [c.agi_line() for c in commands] == SCRIPT

    class Session:
        def __init__(self) -> None:
            self.i = 0
            self.session_id = os.urandom(16).hex()
            self.trace, self.inputs, self.variables = [], [], {}
            self.customer_id, self.language = None, "en"

        def start(self):
            return self.feed(None)

        def feed(self, result):
            if self.i == len(commands):
                return Exit(Outcome("completed"))
            self.i += 1
            return commands[self.i - 1]

    class Factory:
        services = None

        def __call__(self, env):
            return Session()

    class CountingSink:
        def save(self, record):
            return None

    server = FastAGIFactory(Factory(), CountingSink(), fetch_linkedid=False)
    listening = server.listen("127.0.0.1", port, backlog=2048)
    print(listening.getHost().port, flush=True)
    reactor.run()


BENCH_FLOW = """\
flow: bench
description: FastAGI benchmark flow (prompts only, no input, no database)
steps:
  welcome:
    type: say
    prompt: {sound: welcome}
    next: hours
  hours:
    type: say
    prompt: {sound: hours}
    next: number
  number:
    type: say
    digits: "1234"
    next: bye
  bye:
    type: say
    prompt: {sound: goodbye}
"""


def serve_hotline_flow(port: int) -> None:
    """The real path: FlowLibrary + engine + CallDriver, a 4-step flow (~8 commands)."""
    import tempfile
    from pathlib import Path

    from twisted.internet import reactor

    import ivr.steps  # noqa: F401
    _quiet_twisted_logs()
    from ivr.driver import FlowLibrarySessionFactory
    from ivr.fastagi import FastAGIFactory
    from ivr.library import FlowLibrary

    flows = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    (flows / "bench.yaml").write_text(BENCH_FLOW)
    library = FlowLibrary(flows)
    assert library.names() == ["bench"], library.problems

    class NullSink:
        def save(self, record):
            return None

    server = FastAGIFactory(FlowLibrarySessionFactory(library, None), NullSink(), fetch_linkedid=False)
    print(server.listen("127.0.0.1", port, backlog=2048).getHost().port, flush=True)
    reactor.run()


def serve_panoramisk(port: int) -> None:
    import asyncio
    import logging

    logging.disable(logging.CRITICAL)

    async def main() -> None:
        from panoramisk.fast_agi import Application
        app = Application(loop=asyncio.get_running_loop())

        async def bench(request):
            for line in SCRIPT:
                await request.send_command(line)

        app.add_route("bench", bench)
        server = await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=2048)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def serve_floor(port: int) -> None:
    import asyncio
    import socket

    lines = [(line + "\n").encode() for line in SCRIPT]

    async def handle(reader, writer):
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await reader.readuntil(b"\n\n")
            for line in lines:
                writer.write(line)
                await reader.readline()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


SERVERS = {"hotline": serve_hotline, "hotline-flow": serve_hotline_flow,
           "panoramisk": serve_panoramisk, "floor": serve_floor}


# --- the simulated Asterisk side ------------------------------------------------------------

SO_TIMESTAMPNS = 35   # Linux: the kernel stamps each received segment (not in the socket module)


def run_load(port: int, concurrency: int, seconds: float, warmup: float, think_ms: float = 0.0) -> dict:
    """C callers looping 10-command calls against 127.0.0.1:port; figures for the window.

    A bare epoll client (lighter than the servers under test). Turnaround = the kernel's
    receive timestamp of a command (SO_TIMESTAMPNS) minus the time our reply left
    ``send()``: the server's processing and queueing plus loopback, without the time this
    client takes to get round to reading the socket. ``think_ms`` delays every reply
    (a prompt playing, a caller thinking), which turns the closed loop into a paced one.
    """
    import errno
    import heapq
    import itertools
    import random
    import selectors
    import socket
    import struct

    env = "".join(f"{k}: {v}\n" for k, v in {
        "agi_network": "yes", "agi_network_script": "bench",
        "agi_request": f"agi://127.0.0.1:{port}/bench", "agi_channel": "Local/bench@ivr-in-00000000;2",
        "agi_language": "en", "agi_type": "Local", "agi_uniqueid": "1795388557.1",
        "agi_version": "22.10.1", "agi_callerid": "5551234", "agi_calleridname": "Bench Caller",
        "agi_callingpres": "0", "agi_callingani2": "0", "agi_callington": "0", "agi_callingtns": "0",
        "agi_dnid": "unknown", "agi_rdnis": "unknown", "agi_context": "ivr-in",
        "agi_extension": "bench", "agi_priority": "3", "agi_enhanced": "0.0",
        "agi_accountcode": "", "agi_threadid": "140304432805568"}.items()).encode() + b"\n"
    sel = selectors.EpollSelector()
    cmsg_size = socket.CMSG_SPACE(16)
    now = time.time
    sessions = all_sessions = bad = commands = 0
    turnarounds: list[float] = []
    measuring = False
    think = think_ms / 1000
    due: list = []                  # (when, seq, caller, reply) for paced replies
    seq = itertools.count()
    rng = random.Random(4573)

    class Caller:
        __slots__ = ("sock", "buf", "count", "sent_at", "connected", "hung_up")

    def connect() -> None:
        c = Caller()
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.sock.setblocking(False)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        c.buf, c.count, c.sent_at, c.connected, c.hung_up = b"", 0, 0.0, False, False
        err = c.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, "connect failed")
        sel.register(c.sock, selectors.EVENT_WRITE, c)

    def finish(c: Caller) -> None:
        nonlocal sessions, all_sessions, bad, commands
        sel.unregister(c.sock)
        c.sock.close()
        if c.hung_up:   # a complete call ends with the server's HANGUP
            all_sessions += 1
            if measuring:
                sessions += 1
                commands += c.count
        elif measuring:
            bad += 1
        if not stopping:
            connect()

    stopping = False
    for _ in range(concurrency):
        connect()
    t0 = time.perf_counter()
    window_start = window_end = 0.0
    while True:
        elapsed = time.perf_counter() - t0
        if not measuring and not stopping and elapsed >= warmup:
            measuring, window_start = True, time.perf_counter()
        if measuring and elapsed >= warmup + seconds:
            measuring, stopping, window_end = False, True, time.perf_counter()
        if stopping and (not sel.get_map() or elapsed >= warmup + seconds + 2):
            break
        wait = 0.05
        while due and due[0][0] <= now():
            _, _, c, reply = heapq.heappop(due)
            try:
                c.sock.send(reply)
            except OSError:
                pass
            c.sent_at = now()
        if due:
            wait = max(0.0, min(wait, due[0][0] - now()))
        for key, events in sel.select(wait):
            c = key.data
            if not c.connected:
                if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    bad += 1
                    finish(c)
                    continue
                c.connected = True
                sel.modify(c.sock, selectors.EVENT_READ, c)
                c.sock.send(env)
                c.sent_at = now()
                continue
            try:
                data, anc, _, _ = c.sock.recvmsg(65536, cmsg_size)
            except (ConnectionError, BlockingIOError):
                data, anc = b"", []
            if not data:
                finish(c)
                continue
            arrived = c.sent_at
            for level, kind, stamp in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", stamp[:16])
                    arrived = sec + nsec * 1e-9
            c.buf += data
            while True:
                i = c.buf.find(b"\n")
                if i < 0:
                    break
                line, c.buf = c.buf[:i], c.buf[i + 1:]
                if measuring:
                    turnarounds.append(arrived - c.sent_at)
                c.count += 1
                c.hung_up = line == b"HANGUP"
                head = line.split(b" ", 2)
                reply = REPLIES.get(b" ".join(head[:2])) or REPLIES.get(head[0])
                if reply is None:
                    bad += 1
                    reply = b"510 Invalid or unknown command\n"
                if think:   # uniformly 0.5-1.5x: real callers are not in lock-step
                    heapq.heappush(due, (now() + think * (0.5 + rng.random()), next(seq), c, reply))
                    continue
                try:
                    c.sock.send(reply)
                except OSError:
                    pass
                c.sent_at = now()
    t = sorted(turnarounds)

    def pct(p: float) -> float:
        return t[min(len(t) - 1, int(p * len(t)))] * 1000 if t else float("nan")

    return {"sessions_s": sessions / (window_end - window_start), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "bad": bad, "sessions": sessions, "all_sessions": all_sessions,
            "commands_per_call": commands / max(1, sessions)}


def peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server: str, concurrency: int, seconds: float, warmup: float, think_ms: float = 0.0) -> dict:
    """Start the server, run the load in a child process (one reactor per run), stop the server."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", server], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(proc.stdout.readline())
        cpu_before = cpu_seconds(proc.pid)
        out = subprocess.run([sys.executable, __file__, "--load", str(port), str(concurrency),
                              str(seconds), str(warmup), str(think_ms)],
                             capture_output=True, text=True, timeout=120)
        result = eval(out.stdout.strip().splitlines()[-1], {"nan": float("nan")})  # our own dict repr
        result["rss_mb"] = peak_rss_mb(proc.pid)
        result["cpu_us"] = (cpu_seconds(proc.pid) - cpu_before) / max(1, result["all_sessions"]) * 1e6
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring window per run")
    parser.add_argument("--warmup", type=float, default=0.7)
    parser.add_argument("--levels", default="10,100,500,1000")
    parser.add_argument("--servers", default="hotline,hotline-flow,panoramisk,floor")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--paced-levels", default="500,1000",
                        help="concurrency levels of the paced run (empty: skip it)")
    parser.add_argument("--think-ms", type=float, default=100.0,
                        help="delay before each reply in the paced run (a prompt playing)")
    parser.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve](0)
        return
    if args.load:
        port, c, s, w, think = args.load
        print(repr(run_load(int(port), int(c), float(s), float(w), float(think))))
        return
    levels = [int(x) for x in args.levels.split(",")]
    servers = args.servers.split(",")
    print(f"FastAGI bench: {args.seconds:.0f} s window per run, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    header = (f"{'server':<13} {'C':>5} {'cmds/call':>9} {'sessions/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'server CPU us/call':>19} {'peak RSS MB':>12} {'bad':>5}")

    def row(server: str, c: int, r: dict) -> str:
        return (f"{server:<13} {c:>5} {r['commands_per_call']:>9.1f} {r['sessions_s']:>11.0f} "
                f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['cpu_us']:>19.0f} {r['rss_mb']:>12.1f} "
                f"{r['bad']:>5}")
    print(header)
    table: dict[tuple[str, int], dict] = {}
    for c in levels:
        for server in servers:
            r = measure(server, c, args.seconds, args.warmup)
            table[(server, c)] = r
            print(row(server, c, r), flush=True)
    if "hotline" in servers and "panoramisk" in servers:
        print("hotline / panoramisk sessions/s: " + ", ".join(
            f"C={c}: {table[('hotline', c)]['sessions_s'] / max(1e-9, table[('panoramisk', c)]['sessions_s']):.2f}x"
            for c in levels))
        print("panoramisk / hotline server CPU per call: " + ", ".join(
            f"C={c}: {table[('panoramisk', c)]['cpu_us'] / max(1e-9, table[('hotline', c)]['cpu_us']):.2f}x"
            for c in levels))
    paced = [int(x) for x in args.paced_levels.split(",") if x]
    if paced:
        print(f"\npaced: every reply sent 0.5-1.5 x {args.think_ms:.0f} ms after its command (a prompt playing)")
        print(header)
        for c in paced:
            for server in [s for s in servers if s != "hotline-flow"]:
                r = measure(server, c, args.seconds, args.warmup + args.think_ms * 11 / 1000,
                            args.think_ms)
                print(row(server, c, r), flush=True)


if __name__ == "__main__":
    main()
