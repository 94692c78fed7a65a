"""Shared helpers for AMI tests (parser, protocol, client, simulator, tracker replays).

Two ways to drive the AMI code, both without sleeping:

- ``ProtocolHarness``: an ``AmiProtocol`` on a ``StringTransport`` with a fake ``Clock``.
  ``receive()`` feeds server bytes, ``sent()`` parses what the client wrote, ``clock``
  advances timeouts and keep-alives.
- Real loopback sockets: subclass ``twisted.trial.unittest.TestCase`` (pytest runs it
  and trial spins the reactor until the returned Deferred fires), start the simulator
  (``tests/amisim.py``) with ``sim.listen(reactor)`` and bound every wait with
  ``within(d, seconds)`` so a bug fails the test instead of hanging it.
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from amisim import TRACES, encode_message
from cti.ami.parser import AmiMessage, AmiParser
from cti.ami.protocol import AmiProtocol

#: every recorded AMI stream: (scenario, file stem)
AMI_STREAMS = sorted(
    (path.parent.name, path.stem)
    for path in TRACES.glob("*/ami*.raw"))


def raw(scenario: str, stem: str = "ami") -> bytes:
    return (TRACES / scenario / f"{stem}.raw").read_bytes()


def summary(scenario: str) -> dict:
    return json.loads((TRACES / scenario / "summary.json").read_text())


def parse_all(data: bytes, *, banner: bool = True) -> list:
    return AmiParser(expect_banner=banner).feed(data)


def within(d: defer.Deferred, seconds: float = 5.0) -> defer.Deferred:
    """Bound a wait on the real reactor: fail with TimeoutError after ``seconds``."""
    from twisted.internet import reactor
    return d.addTimeout(seconds, reactor)


class ProtocolHarness:
    """An ``AmiProtocol`` wired to a StringTransport and a Clock, collecting its events."""

    def __init__(self, *, action_timeout: float = 10.0, banner: bool = True) -> None:
        self.clock = Clock()
        self.events: list[AmiMessage] = []
        self.protocol = AmiProtocol(self.events.append, clock=self.clock,
                                    action_timeout=action_timeout)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self._sent_parser = AmiParser(expect_banner=False)
        if banner:
            self.receive(b"Asterisk Call Manager/11.0.0\r\n")

    def receive(self, data: bytes | Mapping[str, object] | Iterable[tuple[str, object]]) -> None:
        """Feed bytes (or one message given as headers) as if Asterisk sent them."""
        if not isinstance(data, bytes):
            data = encode_message(data)
        self.protocol.dataReceived(data)

    def sent(self) -> list[AmiMessage]:
        """Actions the client wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return [m for m in self._sent_parser.feed(data) if isinstance(m, AmiMessage)]

    def last_action_id(self) -> str:
        return self.sent()[-1].action_id

    def lose(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure
        self.protocol.connectionLost(Failure(ConnectionDone()))


def results(d: defer.Deferred) -> list:
    """Collect a Deferred's outcome without a reactor: ``[value]`` / ``[Failure]`` / ``[]``."""
    out: list = []
    d.addBoth(out.append)
    return out


def recorded_reply(action_id: str, scenario: str = "ami_actions") -> bytes:
    """The recorded response + events carrying ``action_id``, re-encoded as on the wire."""
    messages = [m for m in parse_all(raw(scenario)) if isinstance(m, AmiMessage)
                and m.action_id == action_id]
    return b"".join(encode_message(m) for m in messages)


def rename_action_id(data: bytes, old: str, new: str) -> bytes:
    return data.replace(f"ActionID: {old}\r\n".encode(), f"ActionID: {new}\r\n".encode())


def interleaved(scenario: str = "ami_actions") -> bytes:
    """The raw stream minus the banner (what follows the greeting, as recorded)."""
    data = raw(scenario)
    return data[data.find(b"\n") + 1:]


__all__ = [
    "AMI_STREAMS", "TRACES", "ProtocolHarness", "interleaved", "parse_all", "raw",
    "recorded_reply", "rename_action_id", "results", "summary", "within", "InMemoryAsterisk",
]


class InMemoryAsterisk:
    """The simulator and an ``AmiClient`` joined in memory (iosim), on one fake clock.

    ``reactor`` is a ``MemoryReactorClock``: it is the client's clock and reactor, the
    simulator's clock, and the IOPump's clock. ``accept()`` completes the client's
    pending connection attempt and pumps the greeting/login; ``flush()`` moves bytes
    both ways until quiet; ``reactor.advance(s)`` drives timeouts, keep-alives and backoff.
    """

    PORT = 5038

    def __init__(self, users: Mapping[str, str] | None = None) -> None:
        from twisted.internet.endpoints import TCP4ClientEndpoint
        from twisted.internet.testing import MemoryReactorClock
        from twisted.test.iosim import ConnectionCompleter

        from amisim import AmiSimulator
        self.reactor = MemoryReactorClock()
        self.sim = AmiSimulator(users, clock=self.reactor)
        self.sim.listen(self.reactor, port=self.PORT)
        self.endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.PORT)
        self._completer = ConnectionCompleter(self.reactor)
        self.pump = None

    def client(self, secret: str = "secret", **options):
        from cti.ami.client import AmiClient
        options.setdefault("keepalive_interval", 0)
        return AmiClient(self.endpoint, options.pop("username", "hotline"), secret,
                         clock=self.reactor, **options)

    @property
    def attempts_waiting(self) -> int:
        """Connection attempts the client has made that are not completed yet."""
        return len(self.reactor.tcpClients)

    def accept(self):
        """Complete the oldest connection attempt and pump until quiet; returns the server side."""
        pump = self._completer.succeedOnce()
        assert pump is not None, "the client made no connection attempt"
        self.pump = pump
        pump.flush()
        return pump.server

    def refuse(self) -> None:
        self._completer.failOnce()

    def flush(self) -> None:
        if self.pump is not None:
            self.pump.flush()

    def advance(self, seconds: float) -> None:
        self.reactor.advance(seconds)
        self.flush()
