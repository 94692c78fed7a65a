"""The long-lived AMI connection: connect, log in, resync, keep alive, reconnect with backoff.

``AmiClient`` wraps Twisted's ``ClientService``. Its ``prepareConnection`` logs in and
then runs the ``on_connected`` hooks (the call tracker registers its resync there:
CoreShowChannels + QueueStatus), so state is rebuilt after *every* (re)connect.

A ClientService quirk shapes ``_prepare``: if the connection drops while
``prepareConnection`` is still pending, or if it fails and the connection closes
afterwards, ClientService's state machine raises ``NoTransition`` (seen with Twisted
26.10). So ``_prepare`` always *succeeds*, and early enough: on a refused login it
closes the socket itself and counts the failure; the retry delay is then computed
from our own count of consecutive failed logins, so a wrong secret still backs off
(1 s, 2 s, 4 s ... up to ``max_delay``) instead of hammering Asterisk.
``whenConnected()`` is ours too: it fires once logged in and resynchronised.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Mapping

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from .errors import AmiAuthError, AmiNotConnected
from .parser import AmiMessage
from .protocol import DEFAULT_ACTION_TIMEOUT, ActionResult, AmiProtocol

__all__ = ["AmiClient", "ConnectedHook"]

log = logging.getLogger(__name__)

#: ``hook(client)`` run after each login; may return a Deferred (the client waits for it).
ConnectedHook = Callable[["AmiClient"], object]


class _AmiFactory(Factory):
    def __init__(self, client: "AmiClient") -> None:
        self.client = client

    def buildProtocol(self, addr) -> AmiProtocol:
        client = self.client
        protocol = AmiProtocol(client._dispatch_event, clock=client.clock,
                               action_timeout=client.action_timeout,
                               action_id_prefix=client.action_id_prefix)
        protocol.factory = self
        client.state = "logging_in"
        client._current = protocol
        return protocol


class AmiClient:
    """A logged-in AMI session that survives Asterisk restarts.

    ``events``: ``on``, ``off`` or an event-class mask (``call,agent``) sent at Login.
    ``event_filters``: ``Filter`` action expressions (e.g. ``Event: Newchannel``) added
    after each login, when Asterisk should drop uninteresting events at the source.
    ``keepalive_interval``: seconds between ``Ping``s (0 disables); a Ping without a
    reply within the interval drops the connection, which triggers a reconnect.
    """

    def __init__(self, endpoint: IStreamClientEndpoint, username: str, secret: str, *,
                 auth_type: str = "plain", events: str = "on",
                 event_filters: Iterable[str] = (),
                 on_event: Callable[[AmiMessage], object] | None = None,
                 clock: IReactorTime | None = None,
                 action_timeout: float = DEFAULT_ACTION_TIMEOUT,
                 keepalive_interval: float = 30.0,
                 retry_policy: Callable[[int], float] | None = None,
                 action_id_prefix: str = "hl") -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[no-redef]
        self.clock = clock
        self.username = username
        self._secret = secret          # never logged
        self.auth_type = auth_type
        self.events = events
        self.event_filters = list(event_filters)
        self.action_timeout = action_timeout
        self.keepalive_interval = keepalive_interval
        self.action_id_prefix = action_id_prefix
        self._retry_policy = retry_policy or backoffPolicy(initialDelay=0.5, maxDelay=60.0,
                                                          factor=2.0, jitter=lambda: 0.0)
        self._event_handlers: list[Callable[[AmiMessage], object]] = []
        if on_event is not None:
            self._event_handlers.append(on_event)
        self._connected_hooks: list[ConnectedHook] = []
        self._waiters: list[defer.Deferred] = []
        self._protocol: AmiProtocol | None = None    # logged in
        self._current: AmiProtocol | None = None     # connected, maybe not logged in yet
        self._consecutive_failures = 0
        self._stopping = False
        # state + counters, read by metrics
        self.state = "stopped"   # stopped|connecting|logging_in|syncing|connected
        self.events_received = 0
        self.logins = 0
        self.reconnects = 0
        self.login_failures = 0
        self.connection_losses = 0
        self.hook_failures = 0
        self.service = ClientService(endpoint, _AmiFactory(self),
                                     retryPolicy=self._next_retry_delay, clock=clock,
                                     prepareConnection=self._prepare)

    # -- public API ------------------------------------------------------------------
    @property
    def logged_in(self) -> bool:
        return self._protocol is not None and self._protocol.logged_in

    @property
    def protocol(self) -> AmiProtocol | None:
        """The current logged-in connection (None between connections)."""
        return self._protocol

    def add_event_handler(self, handler: Callable[[AmiMessage], object]) -> None:
        """``handler(message)`` for every event (not list items); exceptions are logged."""
        self._event_handlers.append(handler)

    def on_connected(self, hook: ConnectedHook) -> None:
        """Run ``hook(client)`` after every login, before ``whenConnected`` fires."""
        self._connected_hooks.append(hook)

    def start(self) -> None:
        self._stopping = False
        self.state = "connecting"
        self.service.startService()

    def whenConnected(self) -> defer.Deferred:
        """Fires with this client once logged in and the on_connected hooks have run."""
        if self.state == "connected":
            return defer.succeed(self)
        waiter: defer.Deferred = defer.Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(waiter)
        return waiter

    def send_action(self, name: str, headers: Mapping[str, object] | Iterable[tuple[str, object]]
                    | None = None, *, timeout: float | None = None,
                    completion_event: str | None = None, **more_headers: object) -> defer.Deferred:
        """Send an action on the current connection -> Deferred[ActionResult].

        Fails at once with ``AmiNotConnected`` between connections (actions are not
        queued across a reconnect: the caller decides whether a retry is still right).
        """
        protocol = self._protocol
        if protocol is None or not protocol.logged_in:
            return defer.fail(AmiNotConnected(f"AMI not logged in: cannot send {name}"))
        items = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        items.extend(more_headers.items())
        return protocol.send_action(name, items, timeout=timeout,
                                    completion_event=completion_event)

    def stop(self) -> defer.Deferred:
        """Send ``Logoff`` (best effort, 2 s), close the connection, stop reconnecting."""
        self._stopping = True
        protocol = self._current
        if protocol is not None and protocol.logged_in:
            d = protocol.send_action("Logoff", timeout=2.0)
            d.addErrback(lambda failure: None)
        else:
            d = defer.succeed(None)

        def close(_: object) -> defer.Deferred | None:
            # Also covers a connection still logging in, which ClientService would
            # leave open when stopped in its Connecting state.
            if protocol is not None and protocol.connected_:
                protocol.abort()
                return protocol.lost
            return None

        def stopped(result: object) -> object:
            self.state = "stopped"
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.errback(AmiNotConnected("AMI client stopped"))
            return result
        d.addCallback(close)
        d.addCallback(lambda _: self.service.stopService())
        return d.addBoth(stopped)

    # -- internals ---------------------------------------------------------------------
    def _dispatch_event(self, message: AmiMessage) -> None:
        self.events_received += 1
        for handler in self._event_handlers:
            try:
                handler(message)
            except Exception:
                log.exception("ami.event_handler_failed event=%s handler=%r", message.name, handler)

    def _next_retry_delay(self, failed_attempts: int) -> float:
        return self._retry_policy(max(failed_attempts, self._consecutive_failures))

    def _prepare(self, protocol: AmiProtocol) -> defer.Deferred:
        settled: defer.Deferred = defer.Deferred()

        def settle(_: object = None) -> None:
            if not settled.called:
                settled.callback(None)

        def lost(reason: Failure) -> None:
            if self._current is protocol:
                self._current = None
            if self._protocol is protocol:
                self._protocol = None
                self.connection_losses += 1
                log.warning("ami.connection_lost reason=%s", reason.getErrorMessage() if reason else "")
            self.state = "stopped" if self._stopping else "connecting"
            settle()   # before ClientService hears of the loss (see module docstring)
        protocol.add_lost_callback(lost)

        d = protocol.login(self.username, self._secret, auth_type=self.auth_type,
                           events=self.events)
        d.addCallback(self._logged_in, protocol)
        d.addErrback(self._login_failed, protocol)
        d.addBoth(settle)
        return settled

    @defer.inlineCallbacks
    def _logged_in(self, result: ActionResult, protocol: AmiProtocol):
        self._consecutive_failures = 0
        if self.logins:
            self.reconnects += 1
        self.logins += 1
        self._protocol = protocol
        self.state = "syncing"
        for expression in self.event_filters:
            yield protocol.send_action("Filter", [("Operation", "Add"), ("Filter", expression)])
        if self.keepalive_interval:
            protocol.start_keepalive(self.keepalive_interval)
        for hook in list(self._connected_hooks):
            try:
                yield defer.maybeDeferred(hook, self)
            except Exception as error:   # a failed resync must not cause a reconnect loop
                self.hook_failures += 1
                log.error("ami.on_connected_hook_failed hook=%r error=%s", hook, error)
        if self._protocol is protocol and protocol.connected_:
            self.state = "connected"
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(self)

    def _login_failed(self, failure: Failure, protocol: AmiProtocol) -> None:
        self._consecutive_failures += 1
        if failure.check(AmiAuthError):
            self.login_failures += 1
            log.error("ami.login_refused user=%s reply=%r: check the AMI username/secret "
                      "(manager.conf); retrying in %.0f s", self.username,
                      failure.value.message, self._retry_policy(self._consecutive_failures))
        else:
            log.warning("ami.login_failed user=%s error=%s", self.username,
                        failure.getErrorMessage())
        protocol.abort()
