"""Helpers for the ``hotline serve`` end-to-end tests: the service as a real subprocess,
driven over loopback by the two Asterisk-side simulators.

Nothing here runs a Twisted reactor in the pytest process (other test modules own the
global reactor): the service runs in its own process, the AMI simulator
(``tests/amisim.py``) runs in another one (``python tests/serve_helpers.py ami-sim``,
controlled by lines on stdin/stdout), and the AGI side is ``ivr.agisim.SimulatedChannel``
(the sans-I/O simulated Asterisk) moved over a plain blocking socket, so a test can act
between a command and its reply. Every wait is bounded by a deadline; nothing sleeps a
fixed time.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
HOTLINE = Path(sys.executable).parent / "hotline"

#: A small flow for the end-to-end tests: a one-key menu, then queue ``support``.
SUPPORT_FLOW = """\
flow: support_line
description: End-to-end test line (menu, then the support queue).
language: en
steps:
  menu:
    type: menu
    prompt: {sound: beep}
    timeout: 3
    choices:
      1: to_support
  to_support:
    type: queue
    queue: support
    announce_position: false
"""


def free_port() -> int:
    """A loopback port nobody listens on right now (bind port 0, then close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Call ``predicate`` until it returns something truthy; AssertionError after ``timeout``.

    The pause between tries only paces the polling; the wait ends as soon as the
    condition holds and never lasts longer than ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def toml_config(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = repr(value)
            else:
                text = json.dumps(str(value))
            lines.append(f"{key} = {text}")
        lines.append("")
    return "\n".join(lines)


# --- the service as a subprocess ---------------------------------------------------------------
class ServeProcess:
    """``hotline serve`` running in ``cwd``; stdout/stderr go to files (no pipe can fill up)."""

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str] | None = None,
                 http: str | None = None):
        self.cwd = Path(cwd)
        self.args = args
        self.http = http
        self.stdout_path = self.cwd / "serve.stdout"
        self.stderr_path = self.cwd / "serve.stderr"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        full_env.update(env or {})
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([str(HOTLINE), "serve", *args], cwd=self.cwd,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env=full_env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_events(self) -> list[str]:
        """The ``event=`` values of the structured log lines so far."""
        events = []
        for line in self.stderr().splitlines():
            for part in line.split(" "):
                if part.startswith("event="):
                    events.append(part[len("event="):])
        return events

    def wait_log(self, event: str, timeout: float = 10.0) -> None:
        poll(lambda: event in self.log_events() or self._died(), timeout, f"log event={event}")
        if event not in self.log_events():
            raise AssertionError(f"hotline serve exited ({self.proc.returncode}) before "
                                 f"logging event={event}")

    def _died(self) -> bool:
        return self.proc.poll() is not None

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET ``http://<http>/path``: (status, body); (0, b"") when nothing answers."""
        assert self.http, "this service has no HTTP listener"
        try:
            with urllib.request.urlopen(f"http://{self.http}{path}", timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (TimeoutError, urllib.error.URLError, ConnectionError):
            return 0, b""

    def health(self) -> tuple[int, dict]:
        status, body = self.get("/healthz")
        try:
            return status, json.loads(body) if body else {}
        except ValueError:
            return status, {}

    def wait_healthy(self, timeout: float = 15.0, *, need: tuple[str, ...] = ()) -> dict:
        """Wait until ``/healthz`` says 200 and every part in ``need`` is ok."""
        def ready() -> dict | None:
            if self._died():
                raise AssertionError(f"hotline serve exited with {self.proc.returncode}:\n"
                                     f"{self.stderr()}")
            status, body = self.health()
            if status == 200 and all(body.get(part, {}).get("ok") for part in need):
                return body
            return None
        return poll(ready, timeout, f"/healthz 200 with {need or 'all parts'} ok")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if the process is still running after ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def run_serve(cwd: Path, args: list[str], env: dict[str, str] | None = None,
              timeout: float = 20.0) -> subprocess.CompletedProcess:
    """``hotline serve ...`` expected to exit by itself (errors, ``--check-config``)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    full_env.update(env or {})
    return subprocess.run([str(HOTLINE), "serve", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


def db_upgrade(url: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    result = subprocess.run([str(HOTLINE), "db", "upgrade", "--url", url], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def query(url: str, sql: str, **params: Any) -> list[dict]:
    """Rows of ``sql`` as dicts, read with a short-lived engine (SQLite or PostgreSQL)."""
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


# --- the AGI side: a simulated Asterisk over a blocking socket -----------------------------------
@dataclass
class AgiCallResult:
    commands: list[str]
    variables: dict[str, str]
    closed_by_server: bool
    timed_out: bool
    conversation: list[tuple[str, str]] = field(default_factory=list)

    @property
    def session_id(self) -> str | None:
        return self.variables.get("HOTLINE_SESSION")


def agi_call(host: str, port: int, script: Any, *, timeout: float = 10.0,
             before_reply: Callable[[int, str], None] | None = None) -> AgiCallResult:
    """One call to a FastAGI server as Asterisk makes it (``ivr.agisim.SimulatedChannel``).

    ``before_reply(n, line)`` runs when command number ``n`` has arrived and before the
    simulated Asterisk answers it: the place to make the AMI side emit events, or to
    signal the service mid-call. Ends when the server closes the socket (what Asterisk
    waits for) or after ``timeout`` seconds (``timed_out``).
    """
    from ivr.agisim import SimulatedChannel

    channel = SimulatedChannel(script)
    deadline = time.monotonic() + timeout
    closed = timed_out = False
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(channel.environment_block())
        buf = b""
        while not closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                timed_out = True
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if before_reply is not None:
                    before_reply(len(channel.commands) + 1, line)
                reply = channel.handle(line)
                if reply.close:
                    break
                if reply.data:
                    try:
                        sock.sendall(reply.data)
                    except (BrokenPipeError, ConnectionResetError):
                        closed = True
                        break
    return AgiCallResult(list(channel.commands), dict(channel.variables), closed, timed_out,
                         list(channel.conversation))


# --- the AMI side: the simulator in its own process ----------------------------------------------
def ivr_to_queue_events(*, session_id: str, base: int, queue: str = "support") -> list[tuple[str, bytes]]:
    """The recorded ``ivr_to_queue`` AMI events for a new call: ``(event name, wire bytes)``.

    Uniqueids/Linkedids are moved to ``base`` (the IVR leg is ``<base>.1``, the call's
    Linkedid ``<base>.0``), the queue is renamed to ``queue``, and the
    ``VarSet HOTLINE_SESSION=<session_id>`` our ``SET VARIABLE`` causes is inserted where
    the recorded IVR set its first variable. Login/boot events and the recorder's own
    responses are left out.
    """
    from amisim import TRACES, encode_message

    from cti.ami.parser import AmiMessage, AmiParser

    raw = (TRACES / "ivr_to_queue" / "ami.raw").read_bytes()
    old_call, old_agent = "1795388889.", "1795388892."
    new_call, new_agent = f"{base}.", f"{base + 3}."
    out: list[tuple[str, bytes]] = []
    for message in AmiParser(expect_banner=True).feed(raw):
        if not isinstance(message, AmiMessage) or message.kind != "event":
            continue
        if message.name in ("FullyBooted", "SuccessfulAuth", "OriginateResponse"):
            continue
        pairs = []
        for key, value in message.pairs():
            value = value.replace(old_call, new_call).replace(old_agent, new_agent)
            if key == "Queue" and value == "burst":
                value = queue
            pairs.append((key, value))
        headers = dict(pairs)
        if message.name == "VarSet" and headers.get("Variable") == "IVR_CHOICE":
            session = [(k, session_id if k == "Value" else ("HOTLINE_SESSION" if k == "Variable" else v))
                       for k, v in pairs]
            out.append(("VarSet", encode_message(session)))
        out.append((message.name, encode_message(pairs)))
    return out


class AmiSimProcess:
    """``tests/amisim.py`` serving on an ephemeral loopback port in a child process.

    It plays an idle Asterisk: resync lists (CoreShowChannels, QueueStatus) are empty.
    ``port=0`` picks a free port (``.port``); a given port lets a test start Asterisk late.
    ``send(data)`` writes raw AMI bytes to every logged-in connection and returns once
    they are written; ``logins()`` counts successful logins.
    """

    def __init__(self, secret: str, username: str = "hotline", *, port: int = 0,
                 timeout: float = 10.0):
        env = dict(os.environ, HOTLINE_SIM_SECRET=secret)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "ami-sim", username, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            cwd=TESTS)
        self._buf = b""
        self.timeout = timeout
        first = self._read_line()
        assert first.startswith("PORT "), first
        self.port = int(first.split()[1])

    def _read_line(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("the AMI simulator did not answer in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    raise AssertionError(f"the AMI simulator exited: {err}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def _command(self, text: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read_line()

    def send(self, data: bytes) -> int:
        """Send ``data`` to every logged-in client; returns how many connections got it."""
        reply = self._command("SEND " + data.hex())
        assert reply.startswith("SENT "), reply
        return int(reply.split()[1])

    def logins(self) -> int:
        reply = self._command("LOGINS")
        assert reply.startswith("LOGINS "), reply
        return int(reply.split()[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _ami_sim_main(username: str, port_number: int = 0) -> None:
    """Child-process side of ``AmiSimProcess`` (runs the reactor)."""
    from amisim import AmiServerConnection, AmiSimulator
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    class IdleAsterisk(AmiServerConnection):
        """No channels up, no queues configured: what a freshly started Asterisk lists."""

        def _empty_list(self, action: Any, message: str, complete: str, extra: dict | None = None) -> None:
            self.reply(action, "Success", EventList="start", Message=message)
            pairs: list[tuple[str, object]] = [("Event", complete)]
            if action.action_id is not None:
                pairs.append(("ActionID", action.action_id))
            pairs += [("EventList", "Complete"), ("ListItems", 0), *(extra or {}).items()]
            self.write(pairs)

        def action_coreshowchannels(self, action: Any) -> None:
            self._empty_list(action, "Channels will follow", "CoreShowChannelsComplete")

        def action_queuestatus(self, action: Any) -> None:
            self._empty_list(action, "Queue status will follow", "QueueStatusComplete")

    sim = AmiSimulator({username: os.environ["HOTLINE_SIM_SECRET"]})
    sim.protocol = IdleAsterisk
    logins = [0]

    def count_login(_conn: Any) -> None:
        logins[0] += 1
        sim.next_login().addCallback(count_login)
    sim.next_login().addCallback(count_login)

    class Control(LineReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 64 * 1024 * 1024

        def lineReceived(self, line: bytes) -> None:
            command, _, arg = line.decode().strip().partition(" ")
            if command == "SEND":
                data = bytes.fromhex(arg)
                targets = [c for c in sim.connections if c.logged_in]
                for conn in targets:
                    conn.send_raw(data)
                self.sendLine(f"SENT {len(targets)}".encode())
            elif command == "LOGINS":
                self.sendLine(f"LOGINS {logins[0]}".encode())
            else:
                self.sendLine(f"ERROR unknown command {command!r}".encode())

        def connectionLost(self, reason: Any = None) -> None:
            if reactor.running:
                reactor.stop()

    port = sim.listen(reactor, port=port_number)
    control = Control()
    stdio.StandardIO(control)
    control.sendLine(f"PORT {port.getHost().port}".encode())
    reactor.run()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "ami-sim":
        sys.path.insert(0, str(TESTS))
        _ami_sim_main(sys.argv[2] if len(sys.argv) > 2 else "hotline",
                      int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    else:
        print("usage: serve_helpers.py ami-sim [USERNAME [PORT]]", file=sys.stderr)
        sys.exit(2)
