"""``hotline serve``: FastAGI, the AMI client + call tracker, and ``/metrics`` in one process.

This module only wires parts that live elsewhere (``ivr.fastagi``, ``cti.ami.client``,
``cti.tracker``, ``cti.records``, ``db``); it owns the start order (database and schema
first, so a misconfigured server fails before it accepts a call), the graceful stop
(stop accepting, let calls finish within a grace period, send the rest to their flow's
error path, flush records, log off AMI), and the translation of start-up failures into
one clear line (``StartupError``) for the CLI.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from twisted.application.internet import backoffPolicy
from twisted.internet import defer, error as twisted_error, task
from twisted.internet.endpoints import TCP4ClientEndpoint

from hotline.config import Config, parse_listen, parse_voices
from hotline.http import make_site
from hotline.metrics import HotlineMetrics

log = logging.getLogger("hotline.serve")

__all__ = ["StartupError", "HotlineService"]


class StartupError(Exception):
    """The service cannot start; the message is one line an admin can act on."""


class HotlineService:
    """The running service. ``start()`` raises ``StartupError``; ``stop()`` is graceful."""

    def __init__(self, config: Config, reactor: Any = None):
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.metrics = HotlineMetrics()
        self.database: Any = None
        self.writer: Any = None
        self.library: Any = None
        self.agi_factory: Any = None
        self.agi_port: Any = None
        self.http_port: Any = None
        self.watcher: Any = None
        self.ami: Any = None
        self.tracker: Any = None
        self.recorder: Any = None
        self.resyncs = 0
        self.prompts_missing: int | None = None   # text prompts not rendered in sounds_dir
        self._synced_protocol: Any = None   # the AMI connection the last resync ran on
        self.started_at: float | None = None   # reactor clock; what the tracker counts in
        self._tick: task.LoopingCall | None = None
        self._stopping: defer.Deferred | None = None

    # -- start -------------------------------------------------------------------------
    def start(self) -> None:
        """Bring every enabled part up, in an order that fails early and cleanly."""
        self.started_at = self.reactor.seconds()
        self._start_database()
        if self.config.agi.enabled:
            self._start_agi()
        if self.config.ami.enabled:
            self._start_ami()
        if self.config.http.enabled:
            self._start_http()
        self._register_metrics()
        log.info("hotline started", extra={"fields": {
            "event": "service_start",
            "agi": self.config.agi.listen if self.config.agi.enabled else "off",
            "ami": f"{self.config.ami.host}:{self.config.ami.port}" if self.config.ami.enabled else "off",
            "http": self.config.http.listen if self.config.http.enabled else "off",
            "db": self.database.masked_url if self.database else "off"}})

    def _start_database(self) -> None:
        from db import migrate
        from db.database import Database, DatabaseUnavailable
        url = self.config.db_url()
        try:
            self.database = Database(url, pool_threads=self.config.db.pool_threads)
            self.database.ping()
            if self.config.db.auto_migrate:
                migrate.upgrade(url)
                log.info("database schema upgraded", extra={"fields": {
                    "event": "db_migrated", "revision": migrate.head_revision()}})
            else:
                migrate.check_schema(url)
        except DatabaseUnavailable as exc:
            raise StartupError(str(exc)) from None
        except migrate.SchemaOutOfDate as exc:
            raise StartupError(str(exc)) from None
        self.database.start()
        self.writer = TimedWriter(self.database, self.metrics.db_write_seconds)

    def _start_agi(self) -> None:
        from pathlib import Path

        from db.ivr_services import DatabaseServices
        from ivr.driver import CommandTimeouts, DatabaseSink, FlowLibrarySessionFactory, FlowWatcher
        from ivr.fastagi import FastAGIFactory
        from ivr.library import FlowLibrary
        import ivr.steps  # noqa: F401  (registers every step type)

        flows_dir = Path(self.config.agi.flows_dir)
        if not flows_dir.is_dir():
            raise StartupError(f"flows directory {flows_dir} does not exist "
                               f"(set [agi] flows_dir or HOTLINE_AGI_FLOWS_DIR)")
        self.library = FlowLibrary(flows_dir)
        services = DatabaseServices(self.database)
        self.agi_factory = FastAGIFactory(
            FlowLibrarySessionFactory(self.library, services,
                                      voices=parse_voices(self.config.prompts.voices),
                                      sounds_prefix=self.config.prompts.sounds_prefix),
            DatabaseSink(self.writer), services=services,
            timeouts=CommandTimeouts(quick=self.config.agi.command_timeout,
                                     playback=self.config.agi.playback_timeout,
                                     exec=self.config.agi.exec_timeout or None),
            reactor=self.reactor,
            threadpool=self.database.threadpool)
        host, port = parse_listen(self.config.agi.listen)
        self.agi_port = self._listen("FastAGI", self.config.agi.listen,
                                     lambda: self.agi_factory.listen(host, port))
        self.watcher = FlowWatcher(self.library, interval=self.config.agi.reload_interval,
                                   clock=self.reactor)
        self.watcher.check()   # logs the files refused at start, once (then only changes)
        self.watcher.start()
        self._check_prompts()

    def _check_prompts(self) -> None:
        """Warn when the flows' text prompts are not built: Asterisk would play nothing."""
        from ivr.prompts import missing_prompts
        cfg = self.config.prompts
        flows = [self.library.get(name) for name in self.library.names()]
        missing = missing_prompts(flows, cfg.sounds_dir, parse_voices(cfg.voices),
                                  prefix=cfg.sounds_prefix)
        self.prompts_missing = len(missing)
        if missing:
            log.warning("text prompts not built: callers would hear nothing for them", extra={"fields": {
                "event": "prompts_missing", "missing": len(missing), "sounds_dir": cfg.sounds_dir,
                "first": missing[0].where, "fix": "hotline prompts build"}})

    def _start_ami(self) -> None:
        from cti.ami.client import AmiClient
        from cti.records import CallRecorder
        from cti.tracker import CallTracker

        cfg = self.config.ami
        self.tracker = CallTracker(clock=self.reactor.seconds)
        self.recorder = CallRecorder(self.writer)
        self.recorder.attach(self.tracker.bus)
        self.tracker.bus.subscribe(_log_finished_call, kinds=["call_ended"])
        endpoint = TCP4ClientEndpoint(self.reactor, cfg.host, cfg.port, timeout=10)
        self.ami = AmiClient(
            endpoint, cfg.username, cfg.secret, auth_type=cfg.auth, events=cfg.events,
            on_event=self.tracker.handle, clock=self.reactor,
            action_timeout=cfg.action_timeout, keepalive_interval=cfg.ping_interval,
            retry_policy=backoffPolicy(initialDelay=cfg.reconnect_initial,
                                       maxDelay=cfg.reconnect_max))
        self.ami.on_connected(self._resync)
        self.ami.start()
        self._tick = task.LoopingCall(self.tracker.tick)
        self._tick.clock = self.reactor
        self._tick.start(1.0, now=False)

    @defer.inlineCallbacks
    def _resync(self, client: Any):
        """After every login: rebuild live state from Asterisk's own lists."""
        from cti.resync import resync
        protocol = client.protocol
        if protocol is not None:
            protocol.add_lost_callback(lambda _reason: self.tracker.on_disconnect())
        channels = yield client.send_action("CoreShowChannels", {})
        queues = yield client.send_action("QueueStatus", {})
        events = resync(self.tracker, channels.items, queues.items)
        self._synced_protocol = protocol
        first = self.resyncs == 0
        self.resyncs += 1
        left_open = 0
        if first:
            # Calls a previous run saw (stopped mid-call, or killed) that Asterisk no
            # longer has: nobody else will ever close their rows.
            live = {call["linkedid"] for call in self.tracker.live_calls()}
            try:
                left_open = yield self.writer.run(close_calls_left_open, live, self.started_at)
            except Exception as exc:  # the service runs on; the rows wait for the next start
                log.warning("cannot close calls left open by a previous run", extra={"fields": {
                    "event": "calls_left_open_error", "error": f"{type(exc).__name__}: {exc}"}})
        log.info("AMI resynchronised", extra={"fields": {
            "event": "ami_resync", "live_calls": len(self.tracker.live_calls()),
            "changes": len(events), "closed_left_open": left_open}})

    def _start_http(self) -> None:
        host, port = parse_listen(self.config.http.listen)
        site = make_site(self.metrics, self._health_checks())
        self.http_port = self._listen("HTTP", self.config.http.listen,
                                      lambda: self.reactor.listenTCP(port, site, interface=host))

    def _listen(self, what: str, address: str, listen: Any) -> Any:
        try:
            return listen()
        except twisted_error.CannotListenError as exc:
            reason = getattr(exc.socketError, "strerror", None) or str(exc.socketError)
            raise StartupError(f"cannot listen on {address} for {what}: {reason}") from None

    # -- health and metrics ------------------------------------------------------------
    def _health_checks(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"db": self.database.health_check}
        if self.config.ami.enabled:
            checks["ami"] = self._ami_health
        if self.config.agi.enabled:
            checks["flows"] = lambda: {
                "ok": bool(self.library and self.library.names()),
                "loaded": sorted(self.library.names()) if self.library else [],
                "refused": [str(p) for p in self.library.problems] if self.library else [],
                "prompts_missing_at_start": self.prompts_missing}
        return checks

    def _ami_health(self) -> dict[str, Any]:
        """Healthy once logged in AND resynchronised on this connection: before that, the
        live state may still hold calls that ended while we were away."""
        logged_in = bool(self.ami and self.ami.logged_in)
        synced = logged_in and self._synced_protocol is self.ami.protocol
        return {"ok": synced, "state": self.ami.state if self.ami else "off",
                "logged_in": logged_in, "resynced": synced}

    def _register_metrics(self) -> None:
        m = self.metrics
        if self.agi_factory is not None:
            stats = self.agi_factory.stats
            m.gauge("hotline_ivr_sessions_active", "IVR sessions in progress", lambda: stats.active)
            m.counter("hotline_ivr_sessions_total", "Finished IVR sessions by outcome",
                      lambda: dict(stats.outcomes), labels=("outcome",))
            m.counter("hotline_agi_replies_total", "AGI replies from Asterisk by reply code",
                      lambda: {str(k): v for k, v in stats.reply_codes.items()}, labels=("code",))
            m.counter("hotline_agi_command_timeouts_total", "AGI commands Asterisk never answered",
                      lambda: stats.timeouts)
            m.gauge("hotline_flows_loaded", "Flows being served", lambda: len(self.library.names()))
        if self.ami is not None:
            m.counter("hotline_ami_events_total", "AMI events received", lambda: self.ami.events_received)
            m.counter("hotline_ami_reconnects_total", "AMI reconnections", lambda: self.ami.reconnects)
            m.counter("hotline_ami_resyncs_total", "Resynchronisations after (re)connect",
                      lambda: self.resyncs)
            m.gauge("hotline_ami_logged_in", "1 when logged in to AMI", lambda: int(self.ami.logged_in))
            m.gauge("hotline_live_calls", "Calls live on Asterisk", lambda: len(self.tracker.live_calls()))

    # -- stop --------------------------------------------------------------------------
    def stop(self) -> defer.Deferred:
        """Stop accepting calls, let calls finish (grace), then flush and log off."""
        if self._stopping is None:
            self._stopping = defer.ensureDeferred(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        started = time.monotonic()
        log.info("stopping: no new calls", extra={"fields": {"event": "service_stopping"}})
        if self.agi_port is not None:
            await defer.maybeDeferred(self.agi_port.stopListening)
        if self.watcher is not None:
            self.watcher.stop()
        if self.agi_factory is not None:
            await self._drain_agi(self.config.service.shutdown_grace)
        if self._tick is not None and self._tick.running:
            self._tick.stop()
        if self.recorder is not None:
            await defer.maybeDeferred(self.recorder.idle)
        if self.ami is not None:
            try:
                await self.ami.stop()
            except Exception:  # logging off a dead link is not worth failing the stop
                pass
        if self.http_port is not None:
            await defer.maybeDeferred(self.http_port.stopListening)
        if self.database is not None:
            self.database.stop()
        log.info("stopped", extra={"fields": {"event": "service_stopped",
                                              "seconds": round(time.monotonic() - started, 3)}})

    async def _drain_agi(self, grace: float) -> None:
        idle = self.agi_factory.wait_idle()
        if not idle.called and self.agi_factory.stats.active:
            log.info("waiting for calls in progress", extra={"fields": {
                "event": "service_draining", "active": self.agi_factory.stats.active,
                "grace_seconds": grace}})
        timer = self.reactor.callLater(grace, self._interrupt_sessions)
        try:
            await idle
        finally:
            if timer.active():
                timer.cancel()

    def _interrupt_sessions(self) -> None:
        """Grace is over: every call still in the IVR goes to its flow's error path."""
        for proto in list(self.agi_factory.protocols):
            proto.interrupt("shutdown")


class TimedWriter:
    """The database as record writers see it: ``run`` timed into the write-latency histogram."""

    def __init__(self, database: Any, histogram: Any, clock: Any = time.perf_counter):
        self.database = database
        self.histogram = histogram
        self.clock = clock

    def run(self, fn: Any, *args: Any) -> defer.Deferred:
        started = self.clock()

        def observe(result: Any) -> Any:
            self.histogram.observe(self.clock() - started)
            return result
        return self.database.run(fn, *args).addBoth(observe)

    def run_sync(self, fn: Any, *args: Any) -> Any:
        return self.database.run_sync(fn, *args)


def close_calls_left_open(session: Any, live: set[str], started_before: float) -> int:
    """Close the ``calls`` rows a previous run left open whose call Asterisk no longer has.

    Rows of calls that started before this run (``started_before``, POSIX seconds) and
    are not live in the tracker after the first resync are closed as ``resync_missing``
    at their last recorded event (the last moment we know the call was up), with the
    disposition the tracker would give a call that vanished (answered / ivr_only /
    unknown). Calls still up on Asterisk were adopted by the resync and are left alone.
    Returns how many rows were closed.
    """
    from sqlalchemy import select

    from db import repository
    from db.models import CallEvent
    from db.types import to_utc

    cutoff = to_utc(started_before)
    closed = 0
    for call in repository.open_calls(session):
        if call.linkedid in live or call.started_at >= cutoff:
            continue
        last_event = session.scalars(select(CallEvent.at).where(CallEvent.call_id == call.id)
                                     .order_by(CallEvent.at.desc()).limit(1)).first()
        if call.answered_at is not None:
            disposition = "answered"
        elif call.ivr_entered_at is not None or call.ivr_session_id:
            disposition = "ivr_only"
        else:
            disposition = "unknown"
        repository.close_call(session, call.linkedid, last_event or call.started_at,
                              "resync_missing", disposition=disposition)
        closed += 1
    return closed


def _log_finished_call(event: Any) -> None:
    record = event.record
    log.info("call ended", extra={"fields": {
        "event": "call_ended", "linkedid": record.linkedid, "disposition": record.disposition,
        "queue": record.queue, "agent": record.agent, "wait": record.wait_seconds,
        "talk": record.talk_seconds, "ivr_session": record.ivr_session_id,
        "close_reason": record.close_reason}})
