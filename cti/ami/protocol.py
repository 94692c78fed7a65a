"""Thin Twisted adapter over the sans-I/O AMI parser: bytes in, Deferreds and events out.

Why not pyst2's ``asterisk.manager``: it is thread-based (a blocking reader thread,
queues, ``send_action`` blocks its caller until the reply) and not fully ported to
Python 3 -- ``ManagerMsg.parse`` still calls ``self.headers.has_key('ChanVariable')``
(pyst2 0.5.1, ``asterisk/manager.py`` line 123; checked in our venv: ``AttributeError:
'dict' object has no attribute 'has_key'``). The first message carrying a
``ChanVariable`` header (any ``channelvars=`` in manager.conf, e.g. to carry
``HOTLINE_SESSION`` on every event) ends its message loop, which then blocks in
``finally: t.join()``: no event or response is delivered any more, and nothing is
raised (``bench/ami_ingest.py``, contender ``pyst2-chanvariable``: 0 of 1000 events).
Without ChanVariable it runs, at ~1,300 events/s. Everything here runs on the
reactor and never blocks.

Dispatch rules (one dict lookup per message kind):

- a response is matched to its pending action by ``ActionID``; ``Response: Error``
  fails the action's Deferred with ``AmiActionError``;
- a response with ``EventList: start`` keeps the action open: the events carrying its
  ActionID are collected (and **not** passed to ``on_event`` -- they are replies, not
  news) until the ``...Complete`` event with ``EventList: Complete``; the Deferred then
  fires with ``ActionResult(response, events)``;
- an action may name a ``completion_event`` (``Originate`` with ``Async: true`` waits
  for ``OriginateResponse``, matched by ActionID because a failed one carries
  ``Uniqueid: <unknown>``). That event completes the action *and* is passed to
  ``on_event`` too (it is call state the tracker wants);
- every other event goes to ``on_event`` (unknown event names included);
  ``Event: Shutdown`` is also remembered in ``shutdown_event`` (Asterisk closes the
  socket right after it; the client reconnects);
- each action has its own timeout (``AmiActionTimeout`` names it), and a lost
  connection fails every pending action with ``AmiConnectionLost``.

Long-running actions: Asterisk handles one action at a time per AMI session, so a
``PlayDTMF`` with a long ``Duration`` holds *that session's* replies and events for the
whole tone. Nothing on our side blocks while it runs; keep such actions rare, or send
them on a second connection if event latency matters.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from .errors import (
    AmiActionError, AmiActionTimeout, AmiAuthError, AmiConnectionLost, RemoteProtocolError,
)
from .parser import AmiMessage, AmiParser, encode_action

__all__ = ["AmiProtocol", "ActionResult", "DEFAULT_ACTION_TIMEOUT"]

log = logging.getLogger(__name__)

DEFAULT_ACTION_TIMEOUT = 10.0


@dataclass
class ActionResult:
    """What an action got back: its response and, for lists/originate, the events."""

    response: AmiMessage
    events: list[AmiMessage] = field(default_factory=list)

    @property
    def message(self) -> str:
        """The response's ``Message:`` header ('' if none)."""
        return self.response.get("Message", "")

    def get(self, key: str, default=None):
        """A header of the response."""
        return self.response.get(key, default)

    @property
    def items(self) -> list[AmiMessage]:
        """List items only (events without the closing ``...Complete``)."""
        return [e for e in self.events if not e.is_list_complete]

    @property
    def complete_event(self) -> AmiMessage | None:
        """The closing ``...Complete`` event of a list, if any."""
        for event in reversed(self.events):
            if event.is_list_complete:
                return event
        return None


class _Pending:
    __slots__ = ("name", "action_id", "deferred", "timer", "response", "events",
                 "collecting", "completion_event")

    def __init__(self, name: str, action_id: str, deferred: defer.Deferred,
                 completion_event: str | None) -> None:
        self.name = name
        self.action_id = action_id
        self.deferred = deferred
        self.timer = None
        self.response: AmiMessage | None = None
        self.events: list[AmiMessage] = []
        self.collecting = False
        self.completion_event = completion_event


def _ignore_event(message: AmiMessage) -> None:
    pass


class AmiProtocol(Protocol):
    """One AMI connection. Create with ``on_event`` (called for each event) and a clock."""

    def __init__(self, on_event: Callable[[AmiMessage], object] = _ignore_event, *,
                 clock: IReactorTime | None = None,
                 action_timeout: float = DEFAULT_ACTION_TIMEOUT,
                 action_id_prefix: str = "hl",
                 max_message_size: int | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[no-redef]
        self.on_event = on_event
        self.clock = clock
        self.action_timeout = action_timeout
        self._prefix = action_id_prefix
        self._sequence = 0
        kwargs = {} if max_message_size is None else {"max_message_size": max_message_size}
        self.parser = AmiParser(**kwargs)
        self._pending: dict[str, _Pending] = {}
        self._keepalive: LoopingCall | None = None
        self.connected_ = False
        self.logged_in = False
        self.events_received = 0
        self.protocol_errors = 0
        self.shutdown_event: AmiMessage | None = None
        self.lost = defer.Deferred()   # fires (with None) on connectionLost; see lost_reason
        self.lost_reason: Failure | None = None
        self._lost_callbacks: list[Callable[[Failure], object]] = []

    # -- Twisted ---------------------------------------------------------------------
    def connectionMade(self) -> None:
        self.connected_ = True

    def dataReceived(self, data: bytes) -> None:
        # The hot path: one pass per read over what the parser completed, with locals
        # instead of attribute lookups per event. An event's ``action_id`` (a search of
        # its text) is only read while an action is pending, the only time it can route
        # the event to one.
        pending = self._pending
        on_event = self.on_event
        for item in self.parser.feed(data):
            if type(item) is not AmiMessage:
                self._on_protocol_error(item)
            elif item.kind == "event":
                if pending:
                    action_id = item.action_id
                    if (action_id is not None and action_id in pending
                            and self._event_for_action(item, pending[action_id])):
                        continue
                self.events_received += 1
                if item.name == "Shutdown":
                    self._on_shutdown(item)
                on_event(item)
            elif item.kind == "response":
                self._on_response(item)
            else:
                log.warning("ami.unexpected_message kind=%s name=%r", item.kind, item.name)
            if not self.connected_:   # an event handler dropped the connection
                return

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[override]
        self.connected_ = False
        self.logged_in = False
        for item in self.parser.feed_eof():
            self._on_protocol_error(item)
        self.stop_keepalive()
        pending, self._pending = self._pending, {}
        for action in pending.values():
            if action.timer is not None and action.timer.active():
                action.timer.cancel()
            action.deferred.errback(AmiConnectionLost(
                f"AMI connection lost before the reply to {action.name} "
                f"(ActionID {action.action_id})"))
        for callback in self._lost_callbacks:
            callback(reason)
        self.lost_reason = reason
        self.lost.callback(None)

    # -- sending ---------------------------------------------------------------------
    @property
    def banner(self) -> str | None:
        """The greeting line (``Asterisk Call Manager/11.0.0``) once received."""
        return self.parser.banner

    @property
    def pending_actions(self) -> int:
        return len(self._pending)

    def next_action_id(self) -> str:
        self._sequence += 1
        return f"{self._prefix}-{self._sequence}"

    def send_action(self, name: str,
                    headers: Mapping[str, object] | Iterable[tuple[str, object]] = (), *,
                    action_id: str | None = None, timeout: float | None = None,
                    completion_event: str | None = None) -> defer.Deferred:
        """Send one action; the Deferred fires with an ``ActionResult``.

        ``completion_event``: an event name (e.g. ``OriginateResponse``) that carries
        this ActionID and completes the action. Encoding errors (CR/LF in a value)
        raise ``LocalProtocolError`` here, synchronously.
        """
        if action_id is None:
            action_id = self.next_action_id()
        data = encode_action(name, headers, action_id)
        if not self.connected_:
            return defer.fail(AmiConnectionLost(f"AMI not connected: cannot send {name}"))
        if action_id in self._pending:
            raise ValueError(f"ActionID {action_id!r} is already pending")
        deferred = defer.Deferred(lambda d: self._forget(action_id))
        action = _Pending(name, action_id, deferred, completion_event)
        self._pending[action_id] = action
        timeout = self.action_timeout if timeout is None else timeout
        if timeout:
            action.timer = self.clock.callLater(timeout, self._time_out, action_id, timeout)
        log.debug("ami.send action=%s action_id=%s", name, action_id)
        self.transport.write(data)
        return deferred

    def login(self, username: str, secret: str, *, auth_type: str = "plain",
              events: str = "on") -> defer.Deferred:
        """Log in (plain ``Secret`` or MD5 ``Challenge``/``Key``); fails with ``AmiAuthError``.

        ``events``: ``on``, ``off`` or a class mask such as ``call,agent``.
        """
        if auth_type.lower() == "md5":
            d = self.send_action("Challenge", {"AuthType": "MD5"})

            def answer(result: ActionResult) -> defer.Deferred:
                challenge = result.get("Challenge", "")
                key = hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()
                return self.send_action("Login", [("AuthType", "MD5"), ("Username", username),
                                                  ("Key", key), ("Events", events)])
            d.addCallback(answer)
        else:
            d = self.send_action("Login", [("Username", username), ("Secret", secret),
                                           ("Events", events)])

        def accepted(result: ActionResult) -> ActionResult:
            self.logged_in = True
            log.info("ami.logged_in user=%s banner=%r", username, self.banner)
            return result

        def refused(failure: Failure) -> Failure:
            if failure.check(AmiActionError) and not failure.check(AmiAuthError):
                error = failure.value
                return Failure(AmiAuthError("Login", error.message, error.response))
            return failure
        return d.addCallbacks(accepted, refused)

    # -- keep-alive ------------------------------------------------------------------
    def start_keepalive(self, interval: float, timeout: float | None = None) -> None:
        """Ping every ``interval`` s; a Ping without reply (``timeout``) drops the connection."""
        self.stop_keepalive()
        ping_timeout = interval if timeout is None else timeout
        loop = LoopingCall(self._ping, ping_timeout)
        loop.clock = self.clock
        self._keepalive = loop
        loop.start(interval, now=False)

    def stop_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        self._keepalive = None

    def _ping(self, timeout: float) -> None:
        def missed(failure: Failure) -> None:
            if failure.check(AmiActionTimeout):
                log.warning("ami.keepalive_missed timeout=%g: dropping the connection", timeout)
                self.abort()
            elif not failure.check(AmiConnectionLost):
                log.warning("ami.keepalive_failed error=%s", failure.getErrorMessage())
        self.send_action("Ping", timeout=timeout).addErrback(missed)

    def abort(self) -> None:
        """Drop the connection now (no flush): the peer is not answering."""
        transport = self.transport
        if transport is not None:
            getattr(transport, "abortConnection", transport.loseConnection)()

    def add_lost_callback(self, callback: Callable[[Failure], object]) -> None:
        """Call ``callback(reason)`` in connectionLost, after pending actions failed."""
        self._lost_callbacks.append(callback)

    # -- dispatch internals --------------------------------------------------------------
    def _event_for_action(self, event: AmiMessage, action: _Pending) -> bool:
        """Route an event carrying a pending ActionID; True if it was consumed."""
        if action.completion_event is not None and event.name == action.completion_event:
            action.events.append(event)
            if action.response is not None:
                self._finish(action)
            return False   # OriginateResponse is call state too: on_event gets it
        if event.is_list_complete:
            action.events.append(event)
            self._finish(action)
            return True
        action.events.append(event)
        return True

    def _on_response(self, response: AmiMessage) -> None:
        action_id = response.action_id   # a search of the text: read it once
        action = self._pending.get(action_id) if action_id else None
        if action is None:
            log.warning("ami.unmatched_response status=%s action_id=%r message=%r",
                        response.name, action_id, response.get("Message"))
            return
        action.response = response
        if response.name == "Error":
            self._fail(action, AmiActionError(action.name, response.get("Message", ""), response))
        elif response.is_list_start:
            action.collecting = True
        elif (action.completion_event is not None
              and not any(e.name == action.completion_event for e in action.events)):
            pass   # wait for the completion event
        else:
            self._finish(action)

    def _on_shutdown(self, event: AmiMessage) -> None:
        self.shutdown_event = event
        log.warning("ami.shutdown shutdown=%s restart=%s: expecting EOF, will reconnect",
                    event.get("Shutdown"), event.get("Restart"))

    def _on_protocol_error(self, error: RemoteProtocolError) -> None:
        self.protocol_errors += 1
        log.warning("ami.remote_protocol_error error=%r data=%r", str(error), error.data)

    def _take(self, action: _Pending) -> bool:
        if self._pending.get(action.action_id) is not action:
            return False
        del self._pending[action.action_id]
        if action.timer is not None and action.timer.active():
            action.timer.cancel()
        return True

    def _finish(self, action: _Pending) -> None:
        if self._take(action):
            assert action.response is not None
            action.deferred.callback(ActionResult(action.response, action.events))

    def _fail(self, action: _Pending, error: Exception) -> None:
        if self._take(action):
            action.deferred.errback(error)

    def _time_out(self, action_id: str, timeout: float) -> None:
        action = self._pending.get(action_id)
        if action is not None:
            action.timer = None
            self._fail(action, AmiActionTimeout(action.name, action_id, timeout))

    def _forget(self, action_id: str) -> None:
        """The caller cancelled the Deferred: stop waiting (Asterisk may still reply)."""
        action = self._pending.pop(action_id, None)
        if action is not None and action.timer is not None and action.timer.active():
            action.timer.cancel()
