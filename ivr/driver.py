"""One IVR call over one AGI channel: what the FastAGI server and classic AGI share.

``CallDriver`` sits between the transport and the engine session and owns every rule
that must not differ between the two: fetch the linkedid, pick the flow (an unknown
flow sends the caller to the operator queue — never dead air), deliver Asterisk's
``HANGUP`` line to the engine exactly once, keep answering the engine locally once the
socket is gone, survive an engine bug, count commands, and build the ``ivr_sessions``
record. It is sans-I/O: the transport sends what it returns and feeds back what it hears.
"""
from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Union

from ivr.agi import AgiEnvironment
from ivr.commands import (
    AgiResult, CallerHangup, ChannelCommand, Command, Exec, Exit, GetData, GetVariable,
    Hangup, Outcome, Result, ServiceCall, ServiceResult, SetVariable, WaitForDigit,
)

if TYPE_CHECKING:  # pragma: no cover
    from twisted.internet.defer import Deferred

__all__ = [
    "SessionFactory", "SessionSink", "SessionLike", "UnknownFlow", "CommandTimeouts",
    "OperatorFallback", "CallDriver", "Action", "run_service_call", "build_record",
    "FlowWatcher", "FlowLibrarySessionFactory", "DatabaseSink", "is_safe_flow_name",
]

log = logging.getLogger(__name__)

LINKEDID_COMMAND = GetVariable("CHANNEL(linkedid)")
MAX_UNSENT_COMMANDS = 100   # an engine that keeps talking to a closed socket is stopped here


class SessionLike(Protocol):
    """What the driver needs of an engine session (``ivr.engine.FlowSession``)."""

    session_id: str
    trace: list
    inputs: list
    variables: dict
    customer_id: Any
    language: str | None

    def start(self) -> Command: ...
    def feed(self, result: Result) -> Command: ...


class SessionFactory(Protocol):
    """Picks the flow from the AGI request and builds a session; raises ``UnknownFlow``.

    ``services`` is what the driver calls for a ``ServiceCall`` (``ivr.services.Services``).
    """

    services: Any

    def __call__(self, env: AgiEnvironment) -> SessionLike: ...


class SessionSink(Protocol):
    """Stores the finished IVR session record (a dict per docs/data-model.md ``ivr_sessions``)."""

    def save(self, record: dict) -> "Deferred | None": ...


class UnknownFlow(LookupError):
    """The AGI request names a flow we do not have (the dialplan's fault, not the caller's)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


_SAFE_FLOW = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _is_unknown_flow(exc: BaseException) -> bool:
    """Ours, or ``ivr.library.UnknownFlow`` (checked without importing the library)."""
    if isinstance(exc, UnknownFlow):
        return True
    library = sys.modules.get("ivr.library")
    other = getattr(library, "UnknownFlow", None)
    return other is not None and isinstance(exc, other)


def is_safe_flow_name(name: str) -> bool:
    """A flow name from the (untrusted) request: a plain file stem, no path, no dots first."""
    return bool(_SAFE_FLOW.fullmatch(name)) and ".." not in name


@dataclass(frozen=True)
class CommandTimeouts:
    """How long to wait for Asterisk's reply, by kind of command (seconds; None = forever).

    - quick commands (ANSWER, SET/GET VARIABLE, VERBOSE, HANGUP...): ``quick``;
    - playback (STREAM FILE, SAY *): ``playback`` — prompts have no known length;
    - GET DATA: ``playback`` + ``max_digits`` x its own timeout (the prompt plays first,
      then each digit may take the full timeout);
    - WAIT FOR DIGIT: its own timeout + ``quick`` (a negative timeout waits forever: ``exec``);
    - EXEC (Queue, Dial, VoiceMail can hold a caller for an hour) and any other command:
      ``exec``, None by default. Asterisk answers ``result=-1`` as soon as the caller
      hangs up, so a missing reply there means Asterisk itself is gone (TCP keepalive).
    """

    quick: float = 30.0
    playback: float = 300.0
    exec: float | None = None

    _QUICK = frozenset({"ANSWER", "SET VARIABLE", "GET VARIABLE", "GET FULL VARIABLE",
                        "VERBOSE", "HANGUP", "CHANNEL STATUS", "NOOP", "DATABASE PUT",
                        "DATABASE GET", "DATABASE DEL", "DATABASE DELTREE", "SET MUSIC",
                        "SET CALLERID", "SET CONTEXT", "SET EXTENSION", "SET PRIORITY",
                        "SET AUTOHANGUP", "TDD MODE", "ASYNCAGI BREAK"})
    _PLAYBACK = frozenset({"STREAM FILE", "CONTROL STREAM FILE", "SAY DIGITS", "SAY NUMBER",
                           "SAY ALPHA", "SAY PHONETIC", "SAY DATE", "SAY TIME",
                           "SAY DATETIME", "SEND IMAGE", "SEND TEXT"})

    def for_command(self, command: ChannelCommand | str) -> float | None:
        if isinstance(command, GetData):
            return self.playback + max(1, command.max_digits) * max(0, command.timeout_ms) / 1000
        if isinstance(command, WaitForDigit):
            if command.timeout_ms < 0:
                return self.exec
            return command.timeout_ms / 1000 + self.quick
        verb = command.verb if isinstance(command, ChannelCommand) else _verb_of(command)
        if verb in self._QUICK:
            return self.quick
        if verb in self._PLAYBACK:
            return self.playback
        return self.exec


def _verb_of(line: str) -> str:
    words = line.split()
    for n in (3, 2, 1):
        verb = " ".join(words[:n]).upper()
        if verb in CommandTimeouts._QUICK or verb in CommandTimeouts._PLAYBACK:
            return verb
    return " ".join(words[:1]).upper()


class OperatorFallback:
    """A tiny session that hands the caller to a human: the answer to every failure.

    ``SET VARIABLE HOTLINE_SESSION``, ``SET VARIABLE HOTLINE_ERROR "<why>"``, then
    ``EXEC Queue <queue>,t``; outcome ``error`` with the reason as detail.
    """

    def __init__(self, reason: str, *, queue: str = "operator", session_id: str | None = None,
                 flow: str | None = None):
        self.reason = reason
        self.queue = queue
        self.session_id = session_id or uuid.uuid4().hex
        self.flow_name = flow
        self.trace: list = []
        self.inputs: list = []
        self.variables: dict = {}
        self.customer_id = None
        self.language = None
        self.outcome: Outcome | None = None
        self._script = [SetVariable("HOTLINE_SESSION", self.session_id),
                        SetVariable("HOTLINE_ERROR", reason),
                        Exec("Queue", f"{queue},t")]

    def start(self) -> Command:
        return self._script.pop(0)

    def feed(self, result: Result) -> Command:
        dead = isinstance(result, CallerHangup) or (isinstance(result, AgiResult) and result.dead
                                                     and result.code == 511)
        if self._script and not dead:
            return self._script.pop(0)
        self.outcome = Outcome("error", target=self.queue, detail=self.reason)
        return Exit(self.outcome)


# What the transport gets back: send this line, run this service call, or finish.
Action = Union[ChannelCommand, ServiceCall, Exit]


class CallDriver:
    """Runs one session for one AGI channel; see the module docstring for the rules.

    Transport protocol: ``start()``, then feed ``on_reply`` / ``on_service_result`` with
    what it hears, call ``on_hangup_line`` for Asterisk's ``HANGUP`` line and
    ``on_channel_gone`` when the socket closes or a reply times out. Each returns the
    next ``Action``; after an ``Exit`` ``record()`` is the ``ivr_sessions`` row.
    """

    def __init__(self, env: AgiEnvironment, session_factory: Callable[[AgiEnvironment], SessionLike], *,
                 fetch_linkedid: bool = True, fallback_queue: str = "operator",
                 now: Callable[[], float] = time.time):
        self.env = env
        self.session_factory = session_factory
        self.fetch_linkedid = fetch_linkedid
        self.fallback_queue = fallback_queue
        self.now = now
        self.started_at = now()
        self.ended_at: float | None = None
        self.session: SessionLike | None = None   # the flow session (for the record)
        self._runner: SessionLike | None = None   # who produces commands (session or fallback)
        self.phase = "new"                         # new, preamble, running, finished
        self.linkedid: str | None = None
        self.agi_commands = 0
        self.pending: ChannelCommand | None = None
        self.hangup_line = False        # Asterisk said HANGUP
        self._hangup_delivered = False  # the engine has been told the caller is gone
        self._we_hung_up = False        # we sent HANGUP ourselves: the HANGUP line is expected
        self.gone: str | None = None    # why we can no longer talk to Asterisk
        self._unsent = 0
        self.outcome: Outcome | None = None
        self.error: str | None = None

    # -- transport entry points -------------------------------------------------------------
    def start(self) -> Action:
        if self.fetch_linkedid:
            self.phase = "preamble"
            return self._advance(LINKEDID_COMMAND)
        return self._begin()

    def on_reply(self, result: AgiResult) -> Action:
        if self.pending is None:
            raise RuntimeError("a reply was fed with no command pending")
        command, self.pending = self.pending, None
        if self.phase == "preamble":
            if result.ok and result.value == 1 and result.data:
                self.linkedid = result.data
                self.env["agi_linkedid"] = result.data
            return self._begin()
        if result.ok and (isinstance(command, Hangup) or command.agi_line().strip().upper() == "HANGUP"):
            self._we_hung_up = True
        if self.hangup_line and not self._hangup_delivered and not self._we_hung_up:
            self._hangup_delivered = True
            return self._feed(CallerHangup("caller_hangup"))
        return self._feed(result)

    def on_hangup_line(self) -> None:
        self.hangup_line = True

    def on_service_result(self, result: ServiceResult) -> Action:
        return self._feed(result)

    def on_channel_gone(self, reason: str) -> Action | None:
        """The socket closed (``caller_hangup``) or Asterisk fell silent (``timeout``).

        Returns the next action if a command was waiting, None if a service call is in
        flight (its result will carry on) or the call is already finished.
        """
        if self.gone is None:
            self.gone = reason
        if self.phase == "finished" or self.pending is None:
            return None
        self.pending = None
        if self.phase == "preamble":
            return self._begin()
        self._hangup_delivered = True
        return self._feed(CallerHangup(reason))

    def interrupt(self, reason: str) -> Exit | None:
        """End the call now from our side (service shutdown): outcome ``error``.

        Nothing more is sent: a command may still be running (a caller in a queue), so the
        transport just closes the socket and Asterisk carries on with the dialplan after
        ``AGI()``. Returns None if the call had already finished.
        """
        if self.phase == "finished":
            return None
        self.pending = None
        routed = getattr(self.session, "routed", None)
        if routed is not None:
            # The caller is already in Asterisk's hands (waiting in a queue, being
            # dialled): closing our socket does not end that, so the record says so.
            detail = f"{routed.detail}; interrupted: {reason}" if routed.detail else f"interrupted: {reason}"
            return self._finish(Exit(Outcome(routed.kind, step=routed.step, target=routed.target,
                                             detail=detail)))
        step = getattr(self.session, "current_step", None)
        return self._finish(Exit(Outcome("error", step=step, detail=f"interrupted: {reason}")))

    @property
    def finished(self) -> bool:
        return self.phase == "finished"

    # -- internals ----------------------------------------------------------------------------
    def _begin(self) -> Action:
        self.phase = "running"
        flow = self.env.flow
        try:
            if not is_safe_flow_name(flow):
                raise UnknownFlow(flow)
            self.session = self.session_factory(self.env)
            self._runner = self.session
        except Exception as exc:
            if not _is_unknown_flow(exc):
                return self._cannot_start(flow)
            log.warning("unknown flow", extra={"fields": {
                "event": "agi_unknown_flow", "flow": flow[:80],
                "channel": self.env.channel, "uniqueid": self.env.uniqueid}})
            self._runner = OperatorFallback(f"unknown flow {flow[:80]}",
                                            queue=self.fallback_queue, flow=flow)
        try:
            command = self._runner.start()
        except Exception:
            return self._engine_failed("start")
        return self._advance(command)

    def _cannot_start(self, flow: str) -> Action:
        log.exception("cannot start session", extra={"fields": {
                "event": "agi_session_start_failed", "flow": flow[:80]}})
        self._runner = OperatorFallback(f"cannot start flow {flow[:80]}",
                                        queue=self.fallback_queue, flow=flow)
        return self._advance(self._runner.start())

    def _feed(self, result: Result) -> Action:
        assert self._runner is not None
        try:
            command = self._runner.feed(result)
        except Exception:
            return self._engine_failed("feed")
        return self._advance(command)

    def _engine_failed(self, where: str) -> Action:
        log.exception("engine failed", extra={"fields": {
            "event": "agi_engine_error", "where": where, "flow": self.env.flow[:80],
            "uniqueid": self.env.uniqueid}})
        if isinstance(self._runner, OperatorFallback):   # even the fallback failed: give up
            return self._advance(Exit(Outcome("error", detail="internal error")))
        session_id = getattr(self.session, "session_id", None)
        self._runner = OperatorFallback("internal error", queue=self.fallback_queue,
                                        session_id=session_id, flow=self.env.flow)
        if self.gone or self._hangup_delivered:
            return self._advance(Exit(Outcome("error", detail="internal error")))
        return self._advance(self._runner.start())

    def _advance(self, command: Command) -> Action:
        while True:
            if isinstance(command, Exit):
                return self._finish(command)
            if isinstance(command, ServiceCall):
                return command
            if not isinstance(command, ChannelCommand):
                log.error("engine yielded a non-command", extra={"fields": {
                    "event": "agi_engine_error", "value": repr(command)[:200]}})
                return self._finish(Exit(Outcome("error", detail="engine yielded a non-command")))
            if self.gone is None:
                self.pending = command
                self.agi_commands += 1
                return command
            # The socket is gone: answer locally so the engine can finish (and be recorded).
            self._unsent += 1
            if self._unsent > MAX_UNSENT_COMMANDS:
                return self._finish(Exit(Outcome("error", detail="engine kept sending after hangup")))
            if self.phase == "preamble":
                return self._begin()
            if not self._hangup_delivered:
                self._hangup_delivered = True
                result: Result = CallerHangup(self.gone)
            else:
                result = AgiResult(code=511, message="not sent: the AGI connection is closed")
            assert self._runner is not None
            try:
                command = self._runner.feed(result)
            except Exception:
                log.exception("engine failed after hangup", extra={"fields": {
                    "event": "agi_engine_error", "flow": self.env.flow[:80]}})
                command = Exit(Outcome("error", detail="internal error"))

    def _finish(self, exit_: Exit) -> Exit:
        self.phase = "finished"
        self.ended_at = self.now()
        outcome = exit_.outcome
        if self.gone == "timeout" and outcome.kind != "timeout":
            outcome = Outcome("timeout", step=outcome.step, target=outcome.target,
                              detail=outcome.detail or "no reply from Asterisk")
        self.outcome = outcome
        return Exit(outcome)

    def record(self) -> dict:
        """The ``ivr_sessions`` row for this call (valid once finished)."""
        return build_record(self.env, self.session or self._runner, self.outcome,
                            started_at=self.started_at, ended_at=self.ended_at,
                            agi_commands=self.agi_commands, linkedid=self.linkedid)


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


def build_record(env: AgiEnvironment, session: Any, outcome: Outcome | None, *,
                 started_at: float, ended_at: float | None, agi_commands: int,
                 linkedid: str | None = None) -> dict:
    """An ``ivr_sessions`` row (docs/data-model.md) from the env, the session and the outcome.

    ``"unknown"`` caller ids / dnid (what Asterisk sends when there is none) become None.
    ``linkedid`` comes from ``GET VARIABLE CHANNEL(linkedid)`` at session start (one quick
    round trip; None if that failed), so the AMI side can join on it directly.
    """
    outcome = outcome or Outcome("error", detail="session did not finish")
    variables = getattr(session, "variables", None) or {}
    flow_obj = getattr(session, "flow", None)
    flow_name = getattr(flow_obj, "name", None) or getattr(session, "flow_name", None) or env.flow
    session_id = getattr(session, "session_id", None) or uuid.uuid4().hex
    return {
        "id": session_id,
        "channel": env.channel,
        "uniqueid": env.uniqueid,
        "linkedid": linkedid or env.get("agi_linkedid") or None,
        "caller_id_num": env.caller_id_num,
        "caller_id_name": env.caller_id_name,
        "dnid": env.dnid,
        "flow": flow_name,
        "flow_version": getattr(flow_obj, "version", None),
        "language": getattr(session, "language", None) or env.language,
        "started_at": _utc(started_at),
        "ended_at": _utc(ended_at),
        "steps": [_step_name(entry) for entry in (getattr(session, "trace", None) or [])],
        "inputs": [dict(i) if isinstance(i, dict) else i for i in (getattr(session, "inputs", None) or [])],
        "customer_id": getattr(session, "customer_id", None),
        "tier": variables.get("tier"),
        "outcome": outcome.kind,
        "outcome_target": outcome.target,
        "outcome_step": outcome.step,
        "outcome_detail": outcome.detail,
        "agi_commands": agi_commands,
    }


def _step_name(entry: Any) -> str:
    """A trace entry as a step name (the engine's entries are ``{"step": ..., "type": ...}``)."""
    if isinstance(entry, dict):
        return str(entry.get("step") or entry.get("name"))
    return str(entry)


def run_service_call(services: Any, call: ServiceCall) -> ServiceResult:
    """``services.<method>(**kwargs)`` as a ``ServiceResult``; never raises.

    Runs in a worker thread under FastAGI, inline under classic AGI. The error text is
    the exception's type and message: it goes to the engine and the log, never to the caller.
    """
    method = getattr(services, call.method, None) if services is not None else None
    if method is None or call.method.startswith("_"):
        return ServiceResult(error=f"no service {call.method!r}")
    try:
        return ServiceResult(value=method(**dict(call.kwargs)))
    except Exception as exc:  # the DB failing must not kill the call: the flow decides
        log.warning("service call failed", extra={"fields": {
            "event": "agi_service_error", "method": call.method, "error": type(exc).__name__}})
        return ServiceResult(error=f"{type(exc).__name__}: {exc}")


class FlowWatcher:
    """Reloads the flow library every ``interval`` seconds; refusals are logged with file:line.

    Sessions in progress keep the ``Flow`` object they started with; the library keeps
    the last good version of a file whose new version is refused. A refusal is logged
    once, not every interval, until the set of problems changes.
    """

    def __init__(self, library: Any, *, interval: float = 2.0, clock: Any = None):
        self.library = library
        self.interval = interval
        self.clock = clock
        self._loop: Any = None
        self.last_problems: list = []

    def check(self) -> list:
        try:
            problems = list(self.library.reload() or [])
        except Exception:
            log.exception("flow reload failed", extra={"fields": {"event": "flows_reload_error"}})
            return self.last_problems
        if [str(p) for p in problems] != [str(p) for p in self.last_problems]:
            for problem in problems:
                log.warning(str(problem), extra={"fields": {
                    "event": "flow_refused", "problem": str(problem)}})
        self.last_problems = problems
        return problems

    def start(self) -> None:
        if self.interval <= 0 or self._loop is not None:
            return
        from twisted.internet.task import LoopingCall
        self._loop = LoopingCall(self.check)
        if self.clock is not None:
            self._loop.clock = self.clock
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: log.error("flow watcher stopped: %s", f.getErrorMessage()))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None


class FlowLibrarySessionFactory:
    """The production session factory: the flow named by the request, from a ``FlowLibrary``.

    Each call gets the ``Flow`` object the library serves at that moment, so a hot reload
    never changes a call already in progress.
    """

    def __init__(self, library: Any, services: Any, *, voices: Mapping[str, str] | None = None,
                 sounds_prefix: str = "hotline"):
        self.library = library
        self.services = services
        # The same voices and prefix `hotline prompts build` used: they name the files.
        self.voices = dict(voices) if voices is not None else None
        self.sounds_prefix = sounds_prefix

    def __call__(self, env: AgiEnvironment) -> SessionLike:
        flow = self.library.get(env.flow)     # raises ivr.library.UnknownFlow
        from ivr.engine import FlowSession   # imported late: the driver must not need the engine
        return FlowSession(flow, env, self.services, flows=self.library, voices=self.voices,
                           sounds_prefix=self.sounds_prefix)


class DatabaseSink:
    """Stores records with ``db.repository.save_ivr_session`` through a ``db.database.Database``.

    ``sync=False`` (FastAGI): ``save`` returns the Deferred of ``Database.run``;
    ``sync=True`` (classic AGI): ``save`` runs ``Database.run_sync`` and returns None.
    """

    def __init__(self, database: Any, *, sync: bool = False):
        self.database = database
        self.sync = sync

    def save(self, record: dict) -> "Deferred | None":
        from db.repository import save_ivr_session
        if self.sync:
            self.database.run_sync(save_ivr_session, record)
            return None
        return self.database.run(save_ivr_session, record)
