"""The FastAGI server: a thin Twisted adapter moving bytes between Asterisk and ``CallDriver``.

Everything about the protocol lives in ``ivr.agi`` and everything about a call in
``ivr.driver``; this module only owns sockets, timers and threads: one connection per
call, one command in flight, database work in a thread pool (the reactor never blocks),
a reply timeout per kind of command, and the socket closed the moment the session ends
(Asterisk keeps the caller waiting until we close it).
"""
from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet import defer, tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from ivr.agi import (
    DEFAULT_MAX_LINE_LENGTH, NEED_DATA, AgiConnection, AgiEnvironment, ConnectionClosed,
    RemoteProtocolError,
)
from ivr.commands import AgiResult, CallerHangup, Exit, ServiceCall, ServiceResult
from ivr.driver import Action, CallDriver, CommandTimeouts, SessionFactory, SessionSink, run_service_call

__all__ = ["FastAGIProtocol", "FastAGIFactory", "FastAGIStats", "listen"]

TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


@dataclass
class FastAGIStats:
    """Counters for metrics: read them, never reset them."""

    connections: int = 0
    active: int = 0
    sessions: int = 0
    outcomes: Counter = field(default_factory=Counter)     # Outcome.kind -> sessions
    reply_codes: Counter = field(default_factory=Counter)  # 200/510/511/520... -> replies
    commands: int = 0
    timeouts: int = 0
    protocol_errors: int = 0
    save_errors: int = 0


def _set_quickack(transport: Any) -> None:
    """Ask Linux to ACK at once (it re-arms delayed ACK by itself, so we set it again when needed).

    Without it, a reply Asterisk sends right after its unsolicited ``HANGUP`` line waits
    ~40 ms for our delayed ACK (Nagle on Asterisk's side); see design.md.
    """
    if TCP_QUICKACK is None:
        return
    handle = getattr(transport, "getHandle", None)
    sock = handle() if handle else None
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)
        except OSError:
            pass


def _write_now(transport: Any, data: bytes) -> None:
    """Send at once when nothing is queued, else queue as usual.

    Twisted's ``write`` only queues and sends on the next reactor turn (two epoll_ctl
    calls and a poll per command). A call is strictly one command at a time, so the
    queue is almost always empty: sending right away halves the server's turnaround.
    Falls back to ``write`` for anything but a plain TCP connection.
    """
    if (type(transport) is tcp.Server and transport.connected and not transport.disconnecting
            and not transport.dataBuffer and not getattr(transport, "_tempDataBuffer", True)):
        sent = transport.writeSomeData(data)
        if isinstance(sent, int):
            if sent == len(data):
                return
            data = data[sent:]
    transport.write(data)


def _close_now(transport: Any) -> None:
    """Send our FIN now (Asterisk holds the caller until it sees it), then close as usual.

    ``loseConnection`` alone waits for the next reactor turn; when nothing is queued a
    ``shutdown(SHUT_WR)`` lets Asterisk carry on at once.
    """
    if (type(transport) is tcp.Server and transport.connected and not transport.dataBuffer
            and not getattr(transport, "_tempDataBuffer", True)):
        try:
            transport.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    transport.loseConnection()


class FastAGIProtocol(Protocol):
    """One FastAGI connection = one call."""

    log = Logger()
    factory: "FastAGIFactory"

    def __init__(self) -> None:
        self.conn: AgiConnection | None = None
        self.driver: CallDriver | None = None
        self._timer: Any = None
        self._deadline: float | None = None
        self._on_deadline: Callable[[], None] = lambda: None
        self._closed = False
        self._ended = False
        self._dispatch: dict[type, Callable[[Any], None]] = {
            AgiEnvironment: self._on_environment,
            AgiResult: self._on_reply,
            CallerHangup: self._on_hangup_line,
            RemoteProtocolError: self._on_protocol_error,
            ConnectionClosed: self._on_closed,
        }

    # -- Twisted ---------------------------------------------------------------------------
    def connectionMade(self) -> None:
        factory = self.factory
        factory.stats.connections += 1
        self.conn = AgiConnection(max_line_length=factory.max_line_length)
        for option in ("setTcpNoDelay", "setTcpKeepAlive"):
            setter = getattr(self.transport, option, None)
            if setter is not None:
                try:
                    setter(True)
                except OSError:
                    pass
        if factory.quickack:
            _set_quickack(self.transport)
        # A peer that never finishes its environment block must not hold a socket forever.
        self._arm(factory.timeouts.quick, self._on_env_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self._ended:
            return
        assert self.conn is not None
        sent = self.factory.stats.commands
        self.conn.receive_data(data)
        self._pump()
        if self.factory.quickack and self.factory.stats.commands == sent and not self._ended:
            # We read something and answered nothing (Asterisk's HANGUP line, a reply while
            # the DB works): ACK now, or Asterisk's next reply waits ~40 ms for it.
            _set_quickack(self.transport)

    def connectionLost(self, reason: Any = None) -> None:
        self._closed = True
        self._cancel_timer()
        if self.conn is not None:
            self.conn.receive_data(b"")
        driver = self.driver
        if driver is not None and not driver.finished:
            action = driver.on_channel_gone("caller_hangup")
            if action is not None:
                self._act(action)
        self.factory.connection_closed(self)

    def interrupt(self, reason: str) -> None:
        """End this call now (service shutdown): record it as interrupted, close the socket."""
        if self.driver is None:
            self.transport.loseConnection()
            return
        if self.driver.interrupt(reason) is not None:
            self._end()

    # -- events from the parser ----------------------------------------------------------
    def _pump(self) -> None:
        conn = self.conn
        assert conn is not None
        while not self._ended:
            event = conn.next_event()
            if event is NEED_DATA:
                return
            self._dispatch[type(event)](event)

    def _on_environment(self, env: AgiEnvironment) -> None:
        self._cancel_timer()
        factory = self.factory
        self.driver = CallDriver(env, factory.session_factory, fetch_linkedid=factory.fetch_linkedid,
                                 fallback_queue=factory.fallback_queue, now=factory.clock.seconds)
        factory.session_started(self)
        self._act(self.driver.start())

    def _on_reply(self, result: AgiResult) -> None:
        self._clear_deadline()
        self.factory.stats.reply_codes[result.code] += 1
        if self.driver is None or self.driver.finished or self.driver.pending is None:
            return
        self._act(self.driver.on_reply(result))

    def _on_hangup_line(self, _event: CallerHangup) -> None:
        if self.driver is not None:
            self.driver.on_hangup_line()

    def _on_protocol_error(self, error: RemoteProtocolError) -> None:
        self.factory.stats.protocol_errors += 1
        self.log.warn("AGI peer sent a bad line: {error}", error=str(error), line=error.line[:80],
                      fatal=error.fatal, event="agi_remote_protocol_error")

    def _on_closed(self, event: ConnectionClosed) -> None:
        if event.reason != "eof":   # we gave up on the peer (fatal protocol error)
            self.transport.loseConnection()

    # -- driving the call ----------------------------------------------------------------
    def _act(self, action: Action) -> None:
        if isinstance(action, Exit):
            self._end()
        elif isinstance(action, ServiceCall):
            d = self.factory.run_in_thread(run_service_call, self.factory.services, action)
            d.addErrback(lambda f: ServiceResult(error=f.getErrorMessage()))
            d.addCallback(self._on_service_result)
        else:
            assert self.conn is not None
            _write_now(self.transport, self.conn.send(action))
            self.factory.stats.commands += 1
            self._arm(self.factory.timeouts.for_command(action), self._on_command_timeout)

    def _on_service_result(self, result: ServiceResult) -> None:
        driver = self.driver
        if driver is None or driver.finished:
            return
        self._act(driver.on_service_result(result))

    def _on_command_timeout(self) -> None:
        driver = self.driver
        if driver is None or driver.finished:
            return
        self.factory.stats.timeouts += 1
        self.log.warn("no reply from Asterisk to {command}", command=(driver.pending.agi_line()[:80]
                      if driver.pending else "?"), uniqueid=driver.env.uniqueid, event="agi_timeout")
        assert self.conn is not None
        self.conn.abandon_pending()
        action = driver.on_channel_gone("timeout")
        if action is not None:
            self._act(action)

    def _on_env_timeout(self) -> None:
        if self.driver is None:
            self.log.warn("no AGI environment block: closing", event="agi_env_timeout")
            self.transport.loseConnection()

    def _end(self) -> None:
        """The session is over: close at once (Asterisk waits for it), then store the record."""
        self._ended = True
        self._cancel_timer()
        if not self._closed:
            _close_now(self.transport)
        assert self.driver is not None
        self.factory.session_ended(self, self.driver.record())

    # -- timers ----------------------------------------------------------------------------
    # One DelayedCall per connection, re-armed lazily: a reply only clears the deadline
    # (most commands are answered long before it), so a command costs no heap churn.
    def _arm(self, seconds: float | None, callback: Callable[[], None]) -> None:
        if seconds is None:
            self._cancel_timer()
            return
        clock = self.factory.clock
        self._deadline = clock.seconds() + seconds
        self._on_deadline = callback
        timer = self._timer
        if timer is None or not timer.active():
            self._timer = clock.callLater(seconds, self._check_deadline)
        elif timer.getTime() > self._deadline:
            timer.reset(seconds)

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        remaining = self._deadline - self.factory.clock.seconds()
        if remaining > 0:
            self._timer = self.factory.clock.callLater(remaining, self._check_deadline)
            return
        self._deadline = None
        self._on_deadline()

    def _clear_deadline(self) -> None:
        self._deadline = None

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None


class FastAGIFactory(Factory):
    """Builds a ``FastAGIProtocol`` per Asterisk connection and keeps what they share.

    ``session_factory(env)`` picks the flow and builds the engine session (``UnknownFlow``
    sends the caller to ``fallback_queue``); ``sink.save(record)`` stores each finished
    session (may return a Deferred). ``services`` (default: ``session_factory.services``)
    answer the engine's ``ServiceCall``s in ``threadpool`` (default: the reactor's).
    """

    protocol = FastAGIProtocol
    log = Logger()

    def __init__(self, session_factory: SessionFactory, sink: SessionSink | None, *,
                 services: Any = None, command_timeout: float = 30.0,
                 timeouts: CommandTimeouts | None = None, reactor: Any = None,
                 clock: Any = None, threadpool: Any = None,
                 run_in_thread: Callable[..., defer.Deferred] | None = None,
                 fetch_linkedid: bool = True, fallback_queue: str = "operator",
                 max_line_length: int = DEFAULT_MAX_LINE_LENGTH, quickack: bool = True):
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.session_factory = session_factory
        self.sink = sink
        self.services = services if services is not None else getattr(session_factory, "services", None)
        self.timeouts = timeouts or CommandTimeouts(quick=command_timeout)
        self.threadpool = threadpool
        self._run_in_thread = run_in_thread
        self.fetch_linkedid = fetch_linkedid
        self.fallback_queue = fallback_queue
        self.max_line_length = max_line_length
        self.quickack = quickack
        self.stats = FastAGIStats()
        self.protocols: set[FastAGIProtocol] = set()
        self._pending_saves: set[defer.Deferred] = set()
        self._idle_waiters: list[defer.Deferred] = []

    def buildProtocol(self, addr: Any) -> FastAGIProtocol:
        proto = super().buildProtocol(addr)
        self.protocols.add(proto)
        return proto

    def run_in_thread(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        if self._run_in_thread is not None:
            return self._run_in_thread(fn, *args)
        pool = self.threadpool if self.threadpool is not None else self.reactor.getThreadPool()
        return deferToThreadPool(self.reactor, pool, fn, *args)

    def listen(self, host: str = "127.0.0.1", port: int = 4573, backlog: int = 1024) -> Any:
        """Start accepting Asterisk connections; returns the listening port."""
        return listen(self.reactor, host, port, self, backlog=backlog)

    # -- bookkeeping called by the protocols -----------------------------------------------
    def session_started(self, proto: FastAGIProtocol) -> None:
        self.stats.active += 1

    def session_ended(self, proto: FastAGIProtocol, record: dict) -> None:
        self.stats.active -= 1
        self.stats.sessions += 1
        self.stats.outcomes[record["outcome"]] += 1
        self.log.info("IVR session ended: {outcome}", outcome=record["outcome"], flow=record["flow"],
                      session=record["id"], uniqueid=record["uniqueid"],
                      agi_commands=record["agi_commands"], event="ivr_session_end")
        self._save(record)
        self._check_idle()

    def connection_closed(self, proto: FastAGIProtocol) -> None:
        self.protocols.discard(proto)
        self._check_idle()

    def _save(self, record: dict) -> None:
        if self.sink is None:
            return
        d = defer.maybeDeferred(self.sink.save, record)
        self._pending_saves.add(d)

        def failed(failure: Any) -> None:
            self.stats.save_errors += 1
            self.log.failure("cannot store IVR session {session}", failure, session=record["id"],
                             event="ivr_session_save_error")

        def done(_: Any) -> None:
            self._pending_saves.discard(d)
            self._check_idle()

        d.addErrback(failed).addBoth(done)

    def wait_idle(self) -> defer.Deferred:
        """Fires when no connection is open and every record has been handed to the sink."""
        d: defer.Deferred = defer.Deferred()
        self._idle_waiters.append(d)
        self._check_idle()
        return d

    def _check_idle(self) -> None:
        if self.protocols or self._pending_saves or self.stats.active or not self._idle_waiters:
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)


def listen(reactor: Any, host: str, port: int, factory: FastAGIFactory, *, backlog: int = 1024) -> Any:
    """Listen for Asterisk on host:port (port 0 picks a free one: ``.getHost().port``)."""
    return reactor.listenTCP(port, factory, backlog=backlog, interface=host)
