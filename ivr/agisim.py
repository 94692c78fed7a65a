"""A simulated Asterisk for the AGI side: it dials our FastAGI server (or runs a classic
AGI script over pipes) and answers like Asterisk 22 does in the recorded traces.

Tests, the benchmark and the demo need callers without a PBX. ``SimulatedChannel`` is
the sans-I/O core (command line in, reply bytes out, a variable store, scripted DTMF,
caller hangup at any command with ``result=-1``, the unsolicited ``HANGUP`` line, ``511``
afterwards except for the commands Asterisk allows on a dead channel); the Twisted client
and the pipe runner around it only move bytes and keep the conversation.
"""
from __future__ import annotations

import os
import re
import selectors
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

__all__ = [
    "CallScript", "SimulatedChannel", "SimCall", "SimulatedAsteriskProtocol",
    "call", "run_calls", "run_classic", "split_agi_args", "DEAD_CHANNEL_OK",
]

DEAD = b"511 Command Not Permitted on a dead channel or intercept routine\n"
INVALID = b"510 Invalid or unknown command\n"

# `agi show commands`, column "Dead": what still works once the caller has hung up.
DEAD_CHANNEL_OK = frozenset({
    "ASYNCAGI BREAK", "DATABASE DEL", "DATABASE DELTREE", "DATABASE GET", "DATABASE PUT",
    "EXEC", "GET FULL VARIABLE", "GET VARIABLE", "NOOP", "SET VARIABLE", "VERBOSE",
    "SPEECH DESTROY", "SPEECH UNLOAD GRAMMAR",
})
_VERBS = sorted(DEAD_CHANNEL_OK | {
    "ANSWER", "CHANNEL STATUS", "GET DATA", "GET OPTION", "HANGUP", "RECEIVE CHAR",
    "RECEIVE TEXT", "RECORD FILE", "SAY ALPHA", "SAY DIGITS", "SAY NUMBER", "SAY PHONETIC",
    "SAY DATE", "SAY TIME", "SAY DATETIME", "SEND IMAGE", "SEND TEXT", "SET AUTOHANGUP",
    "SET CALLERID", "SET CONTEXT", "SET EXTENSION", "SET MUSIC", "SET PRIORITY", "STREAM FILE",
    "CONTROL STREAM FILE", "TDD MODE", "WAIT FOR DIGIT", "GOSUB",
}, key=lambda v: -len(v.split()))
_PLAYS = {"STREAM FILE", "CONTROL STREAM FILE", "SAY ALPHA", "SAY DIGITS", "SAY NUMBER",
          "SAY PHONETIC", "SAY DATE", "SAY TIME", "SAY DATETIME", "GET OPTION"}
_MIN_ARGS = {"STREAM FILE": 2, "GET DATA": 1, "WAIT FOR DIGIT": 1, "SAY DIGITS": 2,
             "SAY NUMBER": 2, "SAY ALPHA": 2, "SAY DATE": 2, "SAY DATETIME": 1,
             "SET VARIABLE": 2, "GET VARIABLE": 1, "GET FULL VARIABLE": 1, "EXEC": 1,
             "VERBOSE": 1, "DATABASE PUT": 3, "DATABASE GET": 2, "DATABASE DEL": 2}
_USAGE = (b"520-Invalid command syntax.  Proper usage follows:\n"
          b"Usage: see 'agi show commands' (simulated Asterisk).\n"
          b"520 End of proper usage.\n")
_FULL_VAR = re.compile(r"\$\{([^}]*)\}")


def split_agi_args(line: str) -> list[str]:
    """Split a command line as Asterisk's ``parse_args`` does: blanks, double quotes, backslash."""
    args: list[str] = []
    current: list[str] = []
    in_arg = quoted = escaped = False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
            in_arg = True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            in_arg = True
        elif ch in " \t" and not quoted:
            if in_arg:
                args.append("".join(current))
                current, in_arg = [], False
        else:
            current.append(ch)
            in_arg = True
    if in_arg:
        args.append("".join(current))
    return args


@dataclass
class CallScript:
    """What the simulated caller and Asterisk do on one call.

    ``keys`` are consumed one entry per command that reads DTMF (GET DATA, WAIT FOR
    DIGIT, and STREAM FILE / SAY * with escape digits); ``None`` or ``""`` = no key
    (timeout); ``"1234#"`` ends GET DATA with ``#``. Command numbers are 1-based in the
    order our server sends them. ``hangup_at``: the caller hangs up during that command
    (``result=-1``), then Asterisk sends ``HANGUP`` — by default just before its reply to
    the next command, as recorded. ``close_at``: Asterisk drops the socket on receiving
    that command. ``silent_at``: that command and later ones are never answered.
    ``inject``: raw bytes sent just before the reply to command N (0 = after the env).
    """

    request: str = "agi://127.0.0.1:4573/main"
    caller_id: str = "5551234"
    caller_name: str = "Alice Caller"
    channel: str | None = None
    uniqueid: str = "1795388557.1"
    linkedid: str | None = None
    language: str = "en"
    dnid: str = "unknown"
    args: Sequence[str] = ()
    network: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    keys: Sequence[str | None] = ()
    variables: dict[str, str] = field(default_factory=dict)
    queue_status: str = "TIMEOUT"      # "CONNECTED" = an agent took the call: result -1, unset
    dial_status: str = "NOANSWER"
    missing_files: frozenset[str] = frozenset()
    missing_apps: frozenset[str] = frozenset()
    hangup_at: int | None = None
    hangup_line: str = "before_next_reply"   # or "after_reply"
    close_at: int | None = None
    silent_at: int | None = None
    inject: dict[int, list[bytes]] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        path = self.request.split("://", 1)[-1].split("/", 1)[-1] if "://" in self.request else self.request
        env: dict[str, str] = {}
        if self.network:
            env["agi_network"] = "yes"
            env["agi_network_script"] = path
        exten = path.split("?", 1)[0] or "s"
        env.update({
            "agi_request": self.request,
            "agi_channel": self.channel or f"Local/{exten}@ivr-in-00000000;2",
            "agi_language": self.language, "agi_type": "Local",
            "agi_uniqueid": self.uniqueid, "agi_version": "22.10.1",
            "agi_callerid": self.caller_id, "agi_calleridname": self.caller_name,
            "agi_callingpres": "0", "agi_callingani2": "0", "agi_callington": "0",
            "agi_callingtns": "0", "agi_dnid": self.dnid, "agi_rdnis": "unknown",
            "agi_context": "ivr-in", "agi_extension": exten, "agi_priority": "3",
            "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": "140304432805568",
        })
        for n, arg in enumerate(self.args, 1):
            env[f"agi_arg_{n}"] = arg
        env.update(self.extra_env)
        return env

    def environment_block(self) -> bytes:
        return "".join(f"{k}: {v}\n" for k, v in self.environment().items()).encode() + b"\n"


@dataclass
class Reply:
    """What the simulated Asterisk does with one command line."""

    data: bytes = b""
    close: bool = False   # drop the socket (no reply)
    silent: bool = False  # never answer


class SimulatedChannel:
    """Asterisk's side of one AGI conversation, sans I/O."""

    def __init__(self, script: CallScript):
        self.script = script
        self.variables: dict[str, str] = {"CALLERID(num)": script.caller_id,
                                          "CALLERID(name)": script.caller_name,
                                          "CHANNEL(linkedid)": script.linkedid or script.uniqueid,
                                          "UNIQUEID": script.uniqueid,
                                          "CHANNEL": script.channel or "",
                                          **script.variables}
        self.database: dict[tuple[str, str], str] = {}
        self.keys = deque(script.keys)
        self.commands: list[str] = []
        self.dead = False
        self.hung_up_by_script = False
        self._hangup_line_due = False
        self.silent = False
        self.conversation: list[tuple[str, str]] = []   # ("AST"|"APP", line)

    def environment_block(self) -> bytes:
        block = self.script.environment_block()
        for line in block.decode().split("\n")[:-1]:
            self.conversation.append(("AST", line))
        return block + b"".join(self.script.inject.get(0, []))

    def handle(self, line: str) -> Reply:
        """Answer one command line from the AGI script."""
        self.conversation.append(("APP", line))
        if self.silent:
            return Reply(silent=True)
        self.commands.append(line)
        n = len(self.commands)
        s = self.script
        if s.close_at == n:
            return Reply(close=True)
        if s.silent_at is not None and n >= s.silent_at:
            self.silent = True
            return Reply(silent=True)
        out = b"".join(s.inject.get(n, []))
        if self._hangup_line_due:
            self._hangup_line_due = False
            out += b"HANGUP\n"
        verb, args = self._verb(line)
        if s.hangup_at == n and not self.dead:
            reply = self._hangup_during(verb, args)
        elif self.dead and verb not in DEAD_CHANNEL_OK:
            reply = DEAD
        else:
            reply = self._answer(verb, args)
        out += reply
        for text in out.decode("utf-8", "replace").split("\n")[:-1]:
            self.conversation.append(("AST", text))
        return Reply(data=out)

    def _verb(self, line: str) -> tuple[str, list[str]]:
        args = split_agi_args(line)
        upper = [a.upper() for a in args]
        for verb in _VERBS:
            words = verb.split()
            if upper[:len(words)] == words:
                return verb, args[len(words):]
        return " ".join(upper[:1]), args[1:]

    def _hangup_during(self, verb: str, args: list[str]) -> bytes:
        self.dead = True
        if self.script.hangup_line == "after_reply":
            tail = b"HANGUP\n"
        else:
            self._hangup_line_due = True
            tail = b""
        if verb in DEAD_CHANNEL_OK and verb != "EXEC":
            return self._answer(verb, args) + tail
        if verb in ("STREAM FILE", "CONTROL STREAM FILE"):
            return b"200 result=-1 endpos=24160\n" + tail
        return b"200 result=-1\n" + tail

    def _next_key(self) -> str:
        return (self.keys.popleft() or "") if self.keys else ""

    def _answer(self, verb: str, args: list[str]) -> bytes:
        if verb not in _VERBS:
            return INVALID
        if len(args) < _MIN_ARGS.get(verb, 0):
            return _USAGE
        handler = getattr(self, "_do_" + verb.lower().replace(" ", "_"), None)
        if handler is None:
            return b"200 result=0\n"
        return handler(args)

    # -- commands ------------------------------------------------------------------------------
    def _do_answer(self, args: list[str]) -> bytes:
        return b"200 result=0\n"

    def _do_hangup(self, args: list[str]) -> bytes:
        self.dead = True
        self.hung_up_by_script = True
        return b"200 result=1\nHANGUP\n"

    def _do_channel_status(self, args: list[str]) -> bytes:
        return b"200 result=6\n"

    def _do_verbose(self, args: list[str]) -> bytes:
        return b"200 result=1\n"

    def _do_noop(self, args: list[str]) -> bytes:
        return b"200 result=0\n"

    def _do_set_variable(self, args: list[str]) -> bytes:
        self.variables[args[0]] = args[1]
        return b"200 result=1\n"

    def _do_get_variable(self, args: list[str]) -> bytes:
        value = self.variables.get(args[0])
        return b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode()

    def _do_get_full_variable(self, args: list[str]) -> bytes:
        text = _FULL_VAR.sub(lambda m: self.variables.get(m.group(1), ""), args[0])
        return f"200 result=1 ({text})\n".encode()

    def _do_database_put(self, args: list[str]) -> bytes:
        self.database[(args[0], args[1])] = args[2]
        return b"200 result=1\n"

    def _do_database_get(self, args: list[str]) -> bytes:
        value = self.database.get((args[0], args[1]))
        return b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode()

    def _do_database_del(self, args: list[str]) -> bytes:
        return b"200 result=1\n" if self.database.pop((args[0], args[1]), None) else b"200 result=0\n"

    def _play(self, escape: str, length: int) -> bytes:
        if escape:
            key = self._next_key()[:1]
            if key and key in escape:
                return f"200 result={ord(key)} endpos={length // 2}\n".encode()
        return f"200 result=0 endpos={length}\n".encode()

    def _do_stream_file(self, args: list[str]) -> bytes:
        if args[0] in self.script.missing_files:
            return b"200 result=-1 endpos=0\n"
        return self._play(args[1], 14080)

    _do_control_stream_file = _do_stream_file

    def _say(self, args: list[str]) -> bytes:
        escape = args[1] if len(args) > 1 else ""
        reply = self._play(escape, 8000)
        return reply.split(b" endpos=")[0] + b"\n" if b" endpos=" in reply else reply

    _do_say_digits = _do_say_number = _do_say_alpha = _do_say_phonetic = _say
    _do_say_date = _do_say_time = _do_say_datetime = _say

    def _do_get_data(self, args: list[str]) -> bytes:
        max_digits = int(args[2]) if len(args) > 2 and args[2].lstrip("-").isdigit() else 1024
        pressed = self._next_key()
        digits = pressed.split("#", 1)[0][:max_digits]
        if "#" in pressed or (digits and len(digits) >= max_digits):
            return f"200 result={digits}\n".encode()
        return f"200 result={digits} (timeout)\n".encode()

    def _do_wait_for_digit(self, args: list[str]) -> bytes:
        key = self._next_key()[:1]
        return f"200 result={ord(key) if key else 0}\n".encode()

    def _do_exec(self, args: list[str]) -> bytes:
        app = args[0]
        if app in self.script.missing_apps:
            return b"200 result=-2\n"
        if app.lower() == "queue":
            if self.script.queue_status == "CONNECTED":
                return b"200 result=-1\n"
            self.variables["QUEUESTATUS"] = self.script.queue_status
        elif app.lower() == "dial":
            self.variables["DIALSTATUS"] = self.script.dial_status
        return b"200 result=0\n"


@dataclass
class SimCall:
    """One finished simulated call, as Asterisk saw it."""

    script: CallScript
    conversation: list[tuple[str, str]]
    commands: list[str]
    variables: dict[str, str]
    closed_by_server: bool = False     # we (the AGI side) closed the socket: what Asterisk waits for
    timed_out: bool = False            # the bounded wait ran out
    turnarounds: list[float] = field(default_factory=list)   # reply sent -> next command received
    connect_failed: str | None = None
    returncode: int | None = None      # classic AGI: the script's exit status

    def lines(self, who: str) -> list[str]:
        return [line for side, line in self.conversation if side == who]


# --- Twisted client (FastAGI) ------------------------------------------------------------------
from twisted.internet import defer  # noqa: E402  (kept below the sans-I/O part on purpose)
from twisted.internet.protocol import ClientFactory, Protocol  # noqa: E402


class SimulatedAsteriskProtocol(Protocol):
    """Connects like Asterisk: sends the environment, answers each command line."""

    def __init__(self, script: CallScript, done: defer.Deferred, *, timeout: float, clock: Any):
        self.channel = SimulatedChannel(script)
        self.done = done
        self.timeout = timeout
        self.clock = clock
        self._buf = b""
        self._sent_at = 0.0
        self._we_closed = False
        self._timed_out = False
        self._timer: Any = None
        self.turnarounds: list[float] = []

    def connectionMade(self) -> None:
        setter = getattr(self.transport, "setTcpNoDelay", None)
        if setter is not None:
            setter(True)
        self._timer = self.clock.callLater(self.timeout, self._give_up)
        self.transport.write(self.channel.environment_block())
        self._sent_at = time.perf_counter()

    def dataReceived(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buf += data
        while b"\n" in self._buf:
            raw, self._buf = self._buf.split(b"\n", 1)
            self.turnarounds.append(now - self._sent_at)
            reply = self.channel.handle(raw.decode("utf-8", "replace").rstrip("\r"))
            if reply.close:
                self._we_closed = True
                self.transport.loseConnection()
                return
            if reply.data:
                self.transport.write(reply.data)
                self._sent_at = time.perf_counter()

    def _give_up(self) -> None:
        self._timer = None
        self._timed_out = True
        self._we_closed = True
        self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        ch = self.channel
        self.done.callback(SimCall(ch.script, ch.conversation, ch.commands, ch.variables,
                                   closed_by_server=not self._we_closed, timed_out=self._timed_out,
                                   turnarounds=self.turnarounds))


class _OneCallFactory(ClientFactory):
    def __init__(self, script: CallScript, done: defer.Deferred, timeout: float, clock: Any):
        self.script, self.done, self.timeout, self.clock = script, done, timeout, clock

    def buildProtocol(self, addr: Any) -> SimulatedAsteriskProtocol:
        proto = SimulatedAsteriskProtocol(self.script, self.done, timeout=self.timeout, clock=self.clock)
        proto.factory = self
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.done.callback(SimCall(self.script, [], [], {}, connect_failed=reason.getErrorMessage()))


def call(reactor: Any, host: str, port: int, script: CallScript | None = None, *,
         timeout: float = 10.0) -> defer.Deferred:
    """One simulated call to a FastAGI server; fires with a ``SimCall`` (never errbacks).

    ``timeout`` bounds the whole call: if our server has not closed the socket by then the
    simulator drops it and the result says ``timed_out``.
    """
    done: defer.Deferred = defer.Deferred()
    reactor.connectTCP(host, port, _OneCallFactory(script or CallScript(), done, timeout, reactor),
                       timeout=timeout)
    return done


def run_calls(reactor: Any, host: str, port: int, scripts: Iterable[CallScript], *,
              concurrency: int | None = None, timeout: float = 10.0) -> defer.Deferred:
    """Many simulated calls, at most ``concurrency`` at a time; fires with the ``SimCall`` list."""
    scripts = list(scripts)
    results: list[SimCall | None] = [None] * len(scripts)
    limit = defer.DeferredSemaphore(concurrency or max(1, len(scripts)))

    def one(i: int) -> defer.Deferred:
        d = call(reactor, host, port, scripts[i], timeout=timeout)
        d.addCallback(lambda r: results.__setitem__(i, r))
        return d

    d = defer.gatherResults([limit.run(one, i) for i in range(len(scripts))])
    d.addCallback(lambda _: results)
    return d


# --- classic AGI over pipes ---------------------------------------------------------------------
def run_classic(argv: Sequence[str], script: CallScript | None = None, *, timeout: float = 20.0,
                env: dict[str, str] | None = None, cwd: str | None = None) -> SimCall:
    """Run a classic AGI script as Asterisk does (env on stdin, replies per command line).

    Bounded by ``timeout`` (then the process is killed and ``timed_out`` is set).
    ``closed_by_server`` is True when the script closed its stdout (it exited).
    """
    script = script or CallScript(network=False, request=os.path.basename(argv[0]))
    channel = SimulatedChannel(script)
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert proc.stdin and proc.stdout and proc.stderr
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    buf, err = b"", b""
    timed_out = closed = False

    def write(data: bytes) -> None:
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    write(channel.environment_block())
    while not closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        for key, _ in sel.select(remaining):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if key.data == "err":
                if chunk:
                    err += chunk
                else:
                    sel.unregister(proc.stderr)
                continue
            if not chunk:
                closed = True
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                reply = channel.handle(raw.decode("utf-8", "replace").rstrip("\r"))
                if reply.close:
                    proc.stdin.close()
                elif reply.data:
                    write(reply.data)
    if timed_out:
        proc.kill()
    try:
        proc.stdin.close()
    except (BrokenPipeError, ValueError):
        pass
    try:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        timed_out = True
    rest = proc.stderr.read() if not proc.stderr.closed else b""
    sel.close()
    result = SimCall(script, channel.conversation, channel.commands, channel.variables,
                     closed_by_server=closed, timed_out=timed_out, returncode=proc.returncode)
    result.stderr = (err + (rest or b"")).decode("utf-8", "replace")  # type: ignore[attr-defined]
    return result


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - manual tool
    """``python -m ivr.agisim HOST PORT FLOW [KEYS...]``: one call, print the conversation."""
    import sys

    from twisted.internet import reactor, task

    args = list(argv if argv is not None else sys.argv[1:])
    if len(args) < 3:
        print("usage: python -m ivr.agisim HOST PORT FLOW [KEY...]", file=sys.stderr)
        return 2
    host, port, flow, keys = args[0], int(args[1]), args[2], args[3:]
    script = CallScript(request=f"agi://{host}:{port}/{flow}", keys=keys)

    def run(r: Any) -> defer.Deferred:
        def show(result: SimCall) -> None:
            for side, line in result.conversation:
                print(f"{side}> {line}")
            print(f"--- closed by server: {result.closed_by_server}, timed out: {result.timed_out}")
        return call(r, host, port, script).addCallback(show)

    task.react(run)
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
