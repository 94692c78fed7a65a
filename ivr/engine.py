"""The flow engine: walks one call through a flow, as a sans-I/O state machine.

``FlowSession.start()`` returns the first command for the channel; ``feed(result)``
takes what the channel (or the database, for a ``ServiceCall``) answered and returns
the next command, until an ``Exit``. No sockets, threads or clocks of its own, so the
FastAGI server, classic AGI, the simulator and the tests all drive the same code.

Rules every call follows (``docs/flow-spec.md``):

- Start: ``ANSWER``, ``SET VARIABLE HOTLINE_SESSION <id>``, then the flow's start step.
- End: ``SET VARIABLE HOTLINE_OUTCOME <kind>`` then ``HANGUP`` (never HANGUP once the
  caller is gone; SET VARIABLE still works on a dead channel), then ``Exit(outcome)``.
  The outcome is the last routing a step did (``queued``, ``transferred``,
  ``voicemail``, ``callback``: kept even if the caller hangs up in the queue, or a
  survey runs after the agent call), else ``completed``.
- The caller hanging up (``CallerHangup``, ``511``, ``result=-1``) ends the session at
  once, keeping the trace: outcome ``caller_hangup`` at the step it happened in
  (or the routing outcome, if a step had already routed the call).
  Two ``result=-1`` replies are ambiguous in Asterisk and are *not* a hangup: STREAM
  FILE with ``endpos=0`` (the sound file is missing) and GET DATA (its prompt is
  missing); the prompt is skipped and the next command shows whether the caller is
  still there.
- Flow errors (an expression failing, a service error, a missing subflow, ``510`` /
  ``520`` / ``EXEC`` of a missing application, a menu out of retries without
  ``on_exhausted``...) go once to the nearest ``on_error`` step (innermost flow first);
  any later error, or one without ``on_error``, takes the built-in fallback:
  ``SET VARIABLE HOTLINE_ERROR <reason>``, ``EXEC Queue <operator_queue>,t``, outcome
  ``error`` (the dialplan decides what follows: no HANGUP). ``max_steps`` exceeded goes
  straight to the fallback with outcome ``step_limit``. Never dead air, never a silent
  hangup, and ``feed()`` never raises for anything Asterisk or the database says.
- Subflows share the variables; a subflow whose flow ends returns to the calling
  step's ``next``; a terminal step (hangup; queue, transfer, voicemail, callback with
  no continuation) ends the whole call.
"""
from __future__ import annotations

import copy
import inspect
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable, Generator, Iterable, Mapping

from ivr import prompt_refs
from ivr.commands import (
    AgiResult, Answer, CallerHangup, ChannelCommand, Command, Exec, Exit, GetData, Hangup,
    Outcome, Result, SayAlpha, SayDigits, SayNumber, ServiceCall, ServiceResult, SetVariable,
    StreamFile, Verbose,
)
from ivr.expr import ExprError, ExprRuntimeError, compile_expr, interpolate
from ivr.flow import STEP_TYPES, Flow, Step, StepType

__all__ = [
    "FlowSession", "StepContext", "FlowFailure", "CallSubflow", "END_CALL", "key_of", "part_command",
    "MASK", "ALL_KEYS", "DEFAULT_MAX_STEPS", "MAX_SUBFLOW_DEPTH",
]

log = logging.getLogger("hotline.engine")

MASK = "••••"
ALL_KEYS = "0123456789*#"
DEFAULT_MAX_STEPS = 200
MAX_SUBFLOW_DEPTH = 16          # a flow calling itself must not eat the stack
MAX_REASON = 200                # characters of HOTLINE_ERROR / outcome detail
_ARG_NAME = re.compile(r"[A-Za-z0-9_]{1,40}\Z")
_MAX_ARG_VALUE = 256


class FlowFailure(Exception):
    """A flow error: routed to ``on_error`` or the operator fallback, never out of ``feed``."""

    def __init__(self, reason: str, *, kind: str = "error"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class _CallerGone(Exception):
    """The channel is gone; only SET VARIABLE may still be sent."""


@dataclass(frozen=True)
class CallSubflow:
    """What a step returns to run another flow (the ``subflow`` step type)."""

    flow: str


class _EndCall:
    def __repr__(self) -> str:
        return "END_CALL"


END_CALL: Any = _EndCall()
"""What a terminal step returns to end the whole call, even from inside a subflow."""


@dataclass
class _Frame:
    flow: Flow
    return_to: str | None = None   # step of the calling flow when this subflow ends


def _default_voices() -> Mapping[str, str]:
    """The voices ``hotline prompts build`` renders with by default (they name the files)."""
    try:
        from ivr.prompts import DEFAULT_VOICES
        return DEFAULT_VOICES
    except Exception:   # the engine must start even if the prompt builder is broken
        log.exception("event=prompts_import_failed: using built-in voices")
        return {"en": "gmw/en-us", "zh": "sit/cmn"}


def _known(value: Any) -> str | None:
    """Asterisk says ``unknown`` (or nothing) when it has no value."""
    if value is None:
        return None
    text = str(value)
    return None if text in ("", "unknown") else text


class StepContext:
    """What a running step may see and do. One per session; ``step`` is the current step."""

    def __init__(self, session: "FlowSession"):
        self._session = session

    # -- what the step sees ---------------------------------------------------------------
    @property
    def variables(self) -> dict[str, Any]:
        return self._session.variables

    @property
    def flow(self) -> Flow:
        """The flow the current step belongs to (a subflow's own file inside a subflow)."""
        return self._session._stack[-1].flow

    @property
    def root_flow(self) -> Flow:
        return self._session.flow

    @property
    def env(self) -> Mapping[str, Any]:
        return self._session.env

    @property
    def step(self) -> Step | None:
        return self._session._step

    @property
    def session_id(self) -> str:
        return self._session.session_id

    @property
    def language(self) -> str:
        return self._session.language

    @property
    def customer_id(self) -> Any:
        return self._session.customer_id

    @property
    def voices(self) -> Mapping[str, str]:
        return self._session.voices

    @property
    def sounds_prefix(self) -> str:
        return self._session.sounds_prefix

    @property
    def operator_queue(self) -> str:
        return self._session.flow.operator_queue or "operator"

    def now(self) -> float:
        """Epoch seconds of "now" for this call (``env['now']`` when the caller fixed it)."""
        return self._session.now()

    def now_in(self, zone: tzinfo) -> datetime:
        """The call's "now" as a local time in ``zone`` (a naive ``env['now']`` is taken as local)."""
        return self._session.now_in(zone)

    def state(self) -> dict[str, Any]:
        """Per-call scratch space of the current step (e.g. a menu's failed tries), kept
        across visits of the same step."""
        step = self.step
        key = (self.flow.name, step.name if step else "")
        return self._session._step_state.setdefault(key, {})

    # -- values -----------------------------------------------------------------------------
    def interpolate(self, text: Any) -> str:
        """``text`` with ``${var}`` filled in; an undefined variable is a flow error."""
        if text is None:
            return ""
        if not isinstance(text, str):
            return str(text)
        try:
            return interpolate(text, self.variables)
        except ExprError as exc:
            raise FlowFailure(f"bad text {text[:40]!r}: {exc}") from None

    def evaluate(self, source: Any) -> Any:
        """The value of an expression (a YAML literal — number, bool, none — is its own value)."""
        if source is None or isinstance(source, (bool, int, float)):
            return source
        try:
            return compile_expr(str(source)).evaluate(self.variables)
        except ExprError as exc:
            raise FlowFailure(f"bad expression {str(source)[:40]!r}: {exc}") from None

    # -- prompts ------------------------------------------------------------------------------
    def prompt_parts(self, value: Any) -> list[prompt_refs.PromptPart]:
        """What to play for a prompt value in the current language (``ivr.prompt_refs``)."""
        flow = self.flow
        try:
            return prompt_refs.resolve_prompt(
                value, language=self.language, flow_language=flow.language, flow_voice=flow.voice,
                voices=self._session.voices, variables=self.variables,
                prefix=self._session.sounds_prefix)
        except (ExprError, ValueError, TypeError) as exc:
            raise FlowFailure(f"bad prompt: {exc}") from None

    def prompt_file(self, value: Any) -> str | None:
        """The one sound name of a static prompt (first sound of a prompt with ``${var}``)."""
        for part in self.prompt_parts(value):
            if part.kind == "file":
                return str(part.value)
        return None

    def play(self, value: Any, escape_digits: str = "") -> Generator[Command, Result, str | None]:
        """Play a prompt value; returns the key that interrupted it (one of ``escape_digits``)."""
        return (yield from self.play_parts(self.prompt_parts(value), escape_digits))

    def play_parts(self, parts: Iterable[prompt_refs.PromptPart],
                   escape_digits: str = "") -> Generator[Command, Result, str | None]:
        for part in parts:
            result = yield part_command(part, escape_digits)
            key = key_of(result)
            if escape_digits and key is not None and key in escape_digits:
                return key
        return None

    # -- what the step does -------------------------------------------------------------------
    def record_input(self, var: str, value: Any, masked: bool = False) -> None:
        """Note what the caller entered; a masked value is kept as ``••••`` everywhere."""
        self._session._record_input(var, value, masked)

    def set_language(self, code: str) -> Generator[Command, Result, None]:
        """Switch prompts to ``code`` and tell Asterisk (its own sounds, SAY NUMBER)."""
        self.variables["language"] = code
        yield SetVariable("CHANNEL(language)", code)

    def set_customer(self, record: Mapping[str, Any]) -> None:
        """The caller is now known (authenticated or looked up)."""
        for key in ("customer_id", "tier"):
            if record.get(key) is not None:
                self.variables[key] = record[key]

    def route(self, kind: str, target: str | None, detail: str = "") -> None:
        """The call has been handed somewhere (queue, extension, voicemail, callback)."""
        step = self.step.name if self.step else None
        self._session._routed = Outcome(kind, step=step, target=target, detail=detail)

    def unroute(self) -> None:
        """The last routing did not happen (queue timed out, dial failed)."""
        self._session._routed = None

    def fail(self, reason: str) -> None:
        """Raise a flow error (``on_error``, else the operator fallback)."""
        name = self.step.name if self.step else "?"
        raise FlowFailure(f"step '{name}': {reason}")

    def warn(self, message: str) -> None:
        """Something went wrong that the caller need not suffer for (kept with the session)."""
        message = self._session.scrub(message)[:MAX_REASON]
        self._session.warnings.append(message)
        log.warning("event=flow_warning session=%s message=%s", self.session_id, message)

    def service(self, method: str, *, optional: bool = False,
                **kwargs: Any) -> Generator[Command, Result, Any]:
        """Ask the driver for ``services.<method>(**kwargs)``; an error is a flow error,
        or (``optional``) a warning and ``None``: for writes the caller must not wait on."""
        result = yield ServiceCall(method, kwargs)
        if not isinstance(result, ServiceResult):
            raise FlowFailure(f"no answer from service {method}")
        if result.error:
            if optional:
                self.warn(f"service {method} failed: {result.error}")
                return None
            raise FlowFailure(f"service {method} failed: {result.error}")
        return result.value


def key_of(result: Any) -> str | None:
    """The phone key in a playback / WAIT FOR DIGIT reply (its ASCII code), else None.

    Only ``0-9 * #`` count: any other code (a garbled or hostile reply) is "no key".
    """
    if not isinstance(result, AgiResult) or result.code != 200:
        return None
    text = result.result.strip()
    # str.isdigit() alone accepts '²' or '١', which int() refuses or reads: ASCII only.
    if not (text.isascii() and text.isdigit()) or len(text) > 3:
        return None
    char = chr(int(text))
    return char if char in ALL_KEYS else None


def part_command(part: prompt_refs.PromptPart, escape_digits: str = "") -> ChannelCommand:
    """The AGI command that plays one prompt part."""
    if part.kind == "number":
        return SayNumber(int(part.value), escape_digits)
    if part.kind == "digits":
        return SayDigits(str(part.value), escape_digits)
    if part.kind == "alpha":
        return SayAlpha(str(part.value), escape_digits)
    return StreamFile(str(part.value), escape_digits)


class FlowSession:
    """One call through one flow (see the module docstring for the rules)."""

    def __init__(self, flow: Flow, env: Mapping[str, Any], services: Any = None, *,
                 flows: Any = None, clock: Callable[[], float] = time.time,
                 max_steps: int | None = None, session_id: str | None = None,
                 voices: Mapping[str, str] | None = None, sounds_prefix: str = "hotline",
                 registry: Mapping[str, StepType] | None = None):
        self.flow = flow
        self.env = env
        self.services = services
        self.flows = flows
        self.clock = clock
        self.max_steps = max_steps if max_steps is not None else (flow.max_steps or DEFAULT_MAX_STEPS)
        self.session_id = session_id or uuid.uuid4().hex
        self.voices = dict(voices if voices is not None else _default_voices())
        self.sounds_prefix = sounds_prefix
        self.registry = STEP_TYPES if registry is None else registry
        self.trace: list[dict[str, Any]] = []
        self.inputs: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self.outcome: Outcome | None = None
        self.finished = False
        self.steps_taken = 0
        self._fixed_now = self._parse_now(env.get("now"))
        self.variables: dict[str, Any] = self._initial_variables()
        self._masked: set[str] = set()
        self._stack: list[_Frame] = [_Frame(flow)]
        self._step: Step | None = None
        self._step_state: dict[tuple[str, str], dict[str, Any]] = {}
        self._routed: Outcome | None = None
        self._error_routed = False
        self._dead = False
        self._script: Generator[Command, Result, None] | None = None
        self._exit: Exit | None = None
        self.context = StepContext(self)

    # -- public API ---------------------------------------------------------------------------
    @property
    def language(self) -> str:
        lang = self.variables.get("language")
        return lang if isinstance(lang, str) and lang else self.flow.language

    @property
    def customer_id(self) -> Any:
        return self.variables.get("customer_id")

    @property
    def current_step(self) -> str | None:
        return self._step.name if self._step else None

    @property
    def routed(self) -> Outcome | None:
        """Where the caller was handed on (queued to X, transferring...), while that
        hand-off runs: what an interrupted session should be recorded as."""
        return self._routed

    def public_variables(self) -> dict[str, Any]:
        """The variables with every masked one shown as ``••••`` (for display and records)."""
        return {k: (MASK if k in self._masked else v) for k, v in self.variables.items()}

    def start(self) -> Command:
        if self._script is not None:
            raise RuntimeError("FlowSession.start() called twice")
        self._script = self._main()
        return self._advance(None, first=True)

    def feed(self, result: Result) -> Command:
        if self._script is None:
            raise RuntimeError("FlowSession.feed() before start()")
        if self._exit is not None:
            return self._exit
        return self._advance(result)

    # -- driving the script ----------------------------------------------------------------------
    def _advance(self, result: Result | None, *, first: bool = False) -> Command:
        assert self._script is not None
        try:
            command = next(self._script) if first else self._script.send(result)
        except StopIteration:
            return self._exit or self._broken("the flow engine stopped without an exit")
        except Exception:
            log.exception("event=engine_bug session=%s step=%s", self.session_id, self.current_step)
            return self._broken("internal error in the flow engine")
        if isinstance(command, Exit):
            self._exit = command
            self.outcome = command.outcome
            self.finished = True
        return command

    def _broken(self, reason: str) -> Command:
        """The engine itself failed: still hand the caller to a human."""
        self._script = self._fallback_only(reason)
        try:
            return next(self._script)
        except Exception:   # pragma: no cover - the fallback is a few lines; last resort
            log.exception("event=engine_fallback_bug session=%s", self.session_id)
            self._exit = Exit(Outcome("error", step=self.current_step, detail=reason))
            self.outcome, self.finished = self._exit.outcome, True
            return self._exit

    def _fallback_only(self, reason: str) -> Generator[Command, Result, None]:
        outcome = yield from self._fallback(FlowFailure(reason))
        yield from self._end(outcome, hangup=False)

    # -- the call -------------------------------------------------------------------------------
    def _main(self) -> Generator[Command, Result, None]:
        try:
            try:
                yield from self._channel(Answer())
                yield from self._channel(SetVariable("HOTLINE_SESSION", self.session_id))
            except FlowFailure as failure:
                outcome = yield from self._fallback(failure)
                hangup = False
            else:
                outcome, hangup = yield from self._run_flow()
        except _CallerGone:
            self._dead = True
            outcome = self._routed or Outcome("caller_hangup", step=self.current_step)
            hangup = False
        yield from self._end(outcome, hangup=hangup)

    def _end(self, outcome: Outcome, *, hangup: bool) -> Generator[Command, Result, None]:
        self.outcome = outcome
        result = yield SetVariable("HOTLINE_OUTCOME", outcome.kind)
        if isinstance(result, CallerHangup) or (isinstance(result, AgiResult) and result.dead):
            self._dead = True
        if hangup and not self._dead:
            yield Hangup()
        self.finished = True
        yield Exit(outcome)

    def _channel(self, command: ChannelCommand, *, tolerate: bool = False) -> Generator[Command, Result, AgiResult]:
        """Send one engine-level command; errors raise unless ``tolerate``."""
        result = yield command
        try:
            return self._check(command, result)
        except FlowFailure:
            if tolerate:
                return AgiResult(200, "0")
            raise

    def _run_flow(self) -> Generator[Command, Result, tuple[Outcome, bool]]:
        """Walk the steps; returns (outcome, hang up?)."""
        step_name: str | None = self.flow.start
        while True:
            try:
                return (yield from self._walk(step_name))
            except FlowFailure as failure:
                failure.reason = self.scrub(failure.reason)[:MAX_REASON]
                self.errors.append(failure.reason)
                log.warning("event=flow_error session=%s flow=%s step=%s reason=%s", self.session_id,
                            self._stack[-1].flow.name, self.current_step, failure.reason)
                handler = None if (failure.kind == "step_limit" or self._error_routed) else self._error_frame()
                if handler is None:
                    return ((yield from self._fallback(failure)), False)
                self._error_routed = True
                del self._stack[handler + 1:]
                yield from self._channel(SetVariable("HOTLINE_ERROR", failure.reason), tolerate=True)
                step_name = self._stack[-1].flow.on_error

    def _error_frame(self) -> int | None:
        for index in range(len(self._stack) - 1, -1, -1):
            on_error = self._stack[index].flow.on_error
            if on_error and on_error in self._stack[index].flow.steps:
                return index
        return None

    def _walk(self, step_name: str | None) -> Generator[Command, Result, tuple[Outcome, bool]]:
        while True:
            if step_name is None:
                if len(self._stack) > 1:
                    step_name = self._stack.pop().return_to
                    continue
                return self._normal_outcome(), True
            frame = self._stack[-1]
            step = frame.flow.steps.get(step_name)
            if step is None:
                raise FlowFailure(f"flow '{frame.flow.name}' has no step '{step_name}'")
            self.steps_taken += 1
            if self.steps_taken > self.max_steps:
                raise FlowFailure(f"more than {self.max_steps} steps in one call (a loop?)",
                                  kind="step_limit")
            self._enter(frame.flow, step)
            step_type = self.registry.get(step.type)
            if step_type is None:
                raise FlowFailure(f"step '{step.name}': unknown step type '{step.type}'")
            if step.params.get("log"):
                message = self.context.interpolate(step.params["log"])
                yield from self._channel(Verbose(f"hotline {self.session_id[:8]} {step.name}: {message}"[:500]),
                                         tolerate=True)
            nxt = yield from self._run_step(step, step_type)
            if nxt is END_CALL:
                return self._normal_outcome(), True
            if isinstance(nxt, CallSubflow):
                step_name = self._enter_subflow(nxt.flow, step)
                continue
            if nxt is not None and not isinstance(nxt, str):
                raise FlowFailure(f"step '{step.name}' returned {type(nxt).__name__}, not a step name")
            step_name = nxt

    def _enter(self, flow: Flow, step: Step) -> None:
        self._step = step
        self.variables["now"] = int(self.now())
        entry: dict[str, Any] = {"step": step.name, "type": step.type, "at": round(self.clock(), 3)}
        if flow is not self.flow:
            entry["flow"] = flow.name
        self.trace.append(entry)

    def _enter_subflow(self, name: str, step: Step) -> str:
        if len(self._stack) > MAX_SUBFLOW_DEPTH:
            raise FlowFailure(f"step '{step.name}': subflows nested more than {MAX_SUBFLOW_DEPTH} deep")
        sub = self._find_flow(name)
        if sub is None:
            raise FlowFailure(f"step '{step.name}': flow '{name}' not found")
        for key, value in (sub.variables or {}).items():
            self.variables.setdefault(key, copy.deepcopy(value))
        self._stack.append(_Frame(sub, return_to=step.params.get("next")))
        return sub.start

    def _find_flow(self, name: str) -> Flow | None:
        flows = self.flows
        try:
            if flows is None:
                return None
            if callable(flows):
                found = flows(name)
            elif hasattr(flows, "__getitem__"):
                found = flows[name]
            else:
                found = flows.get(name)
        except LookupError:
            return None
        return found if isinstance(found, Flow) else None

    def _normal_outcome(self) -> Outcome:
        if self._routed is not None:
            if self.errors and not self._routed.detail:
                return Outcome(self._routed.kind, self._routed.step, self._routed.target,
                               f"on_error: {self.errors[0]}")
            return self._routed
        detail = f"on_error: {self.errors[0]}" if self.errors else ""
        return Outcome("completed", step=self.current_step, detail=detail)

    def _run_step(self, step: Step, step_type: StepType) -> Generator[Command, Result, Any]:
        ctx = self.context
        try:
            runner = step_type.run(step, ctx)
        except (FlowFailure, _CallerGone):
            raise
        except ExprRuntimeError as exc:
            raise FlowFailure(f"step '{step.name}': {exc}") from None
        except Exception as exc:
            log.exception("event=step_bug step=%s type=%s", step.name, step.type)
            raise FlowFailure(f"step '{step.name}': internal error ({type(exc).__name__})") from None
        if not inspect.isgenerator(runner):
            return runner
        reply: Any = None
        try:
            while True:
                try:
                    command = runner.send(reply)
                except StopIteration as stop:
                    return stop.value
                except (FlowFailure, _CallerGone):
                    raise
                except ExprRuntimeError as exc:
                    raise FlowFailure(f"step '{step.name}': {exc}") from None
                except Exception as exc:
                    log.exception("event=step_bug step=%s type=%s", step.name, step.type)
                    raise FlowFailure(f"step '{step.name}': internal error ({type(exc).__name__})") from None
                if not isinstance(command, (ChannelCommand, ServiceCall)):
                    raise FlowFailure(f"step '{step.name}' yielded {type(command).__name__}, not a command")
                result = yield command
                reply = self._check(command, result)
        finally:
            runner.close()

    # -- results -----------------------------------------------------------------------------------
    def _check(self, command: Command, result: Any) -> Any:
        """What a step gets back: clean results only; hangups and errors raise."""
        if isinstance(result, CallerHangup):
            raise _CallerGone(result.reason)
        if isinstance(command, ServiceCall):
            if not isinstance(result, ServiceResult):
                raise FlowFailure(f"expected the result of service {command.method}, got {type(result).__name__}")
            return result
        verb = getattr(command, "verb", "?")
        if not isinstance(result, AgiResult):
            raise FlowFailure(f"expected Asterisk's reply to {verb}, got {type(result).__name__}")
        if result.code == 511:
            raise _CallerGone("dead channel")
        if result.code != 200:
            raise FlowFailure(f"Asterisk answered {result.code} to {verb}")
        if result.result == "-1":
            if isinstance(command, StreamFile) and result.endpos == 0:
                self.context.warn(f"sound file '{command.filename}' not found")
                return AgiResult(200, "0", endpos=0)
            if isinstance(command, GetData):
                self.context.warn(f"GET DATA of '{command.filename}' failed (missing sound file?)")
                return AgiResult(200, "", data="timeout")
            raise _CallerGone("result=-1")
        if isinstance(command, Exec) and result.result == "-2":
            raise FlowFailure(f"Asterisk has no application {command.application}")
        return result

    # -- errors --------------------------------------------------------------------------------------
    def _fallback(self, failure: FlowFailure) -> Generator[Command, Result, Outcome]:
        queue = self.flow.operator_queue or "operator"
        kind = "step_limit" if failure.kind == "step_limit" else "error"
        failure.reason = self.scrub(failure.reason)[:MAX_REASON]
        if failure.reason not in self.errors:
            self.errors.append(failure.reason)
        outcome = Outcome(kind, step=self.current_step, target=queue, detail=failure.reason)
        self._routed = outcome
        if self._dead:
            return outcome
        try:
            yield from self._channel(SetVariable("HOTLINE_ERROR", failure.reason), tolerate=True)
            yield from self._channel(Exec("Queue", f"{queue},t"), tolerate=True)
        except _CallerGone:
            self._dead = True
        return outcome

    # -- setup ------------------------------------------------------------------------------------------
    @staticmethod
    def _parse_now(value: Any) -> float | datetime | None:
        """``env['now']``: epoch seconds, or ISO text (naive = local time of the hours step)."""
        if value is None or value == "":
            return None
        if isinstance(value, datetime):
            return value.timestamp() if value.tzinfo else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        text = str(value).strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            log.warning("event=bad_now value=%r: using the clock", text[:40])
            return None
        return parsed.timestamp() if parsed.tzinfo else parsed

    def now(self) -> float:
        fixed = self._fixed_now
        if fixed is None:
            return float(self.clock())
        if isinstance(fixed, datetime):
            return fixed.replace(tzinfo=timezone.utc).timestamp()
        return fixed

    def now_in(self, zone: tzinfo) -> datetime:
        fixed = self._fixed_now
        if isinstance(fixed, datetime):
            return fixed.replace(tzinfo=zone)
        return datetime.fromtimestamp(self.now(), tz=zone)

    def _initial_variables(self) -> dict[str, Any]:
        env = self.env
        variables: dict[str, Any] = {}
        for key, value in (self.flow.variables or {}).items():
            variables[key] = copy.deepcopy(value)
        variables.update({
            "caller_id": _known(env.get("agi_callerid")),
            "caller_name": _known(env.get("agi_calleridname")),
            "dnid": _known(env.get("agi_dnid")),
            "channel": _known(env.get("agi_channel")),
            "uniqueid": _known(env.get("agi_uniqueid")),
            "linkedid": _known(env.get("agi_linkedid")),
            "language": self.flow.language or "en",
            "session_id": self.session_id,
            "flow": self.flow.name,
            "now": int(self.now()),
            "customer_id": None,
            "tier": "regular",
            "authenticated": False,
        })
        for key, value in env.items():
            if isinstance(key, str) and key.startswith("agi_arg_") and key[8:].isascii() and key[8:].isdigit():
                variables[f"arg_{int(key[8:])}"] = str(value)[:_MAX_ARG_VALUE]
        query = env.get("hotline_args")
        if query is None:
            query = getattr(env, "query", None)
        for name, value in (query or {}).items():
            if isinstance(name, str) and _ARG_NAME.match(name):
                variables[f"arg_{name}"] = str(value)[:_MAX_ARG_VALUE]
        return variables

    def scrub(self, text: str) -> str:
        """``text`` with the value of every masked variable replaced by ``••••`` (error
        messages may quote a value: ``int() cannot read '12a4'``)."""
        for name in self._masked:
            value = self.variables.get(name)
            if value is not None and len(str(value)) >= 2:
                text = text.replace(str(value), MASK)
        return text

    def _record_input(self, var: str, value: Any, masked: bool) -> None:
        if masked:
            self._masked.add(var)
        self.inputs.append({"step": self.current_step, "var": var,
                            "value": MASK if masked else value})
