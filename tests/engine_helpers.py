"""Shared pieces for the engine and step tests: flows built from dicts, replies, and a
small scripted Asterisk that answers the engine's commands like the real one does.

``make_flow`` applies each step type's key defaults the way the loader does, so tests
do not depend on YAML. ``Phone`` plays the caller and the PBX: ``inputs`` are what the
caller does at each key-reading moment — a string of keys (``"1"``, ``"100001#"``),
``TIMEOUT`` or ``HANGUP`` — consumed like a real keypad (keys typed during a prompt
interrupt it if they are escape digits; keys written after ``>`` are typed only once the
prompt has ended; GET DATA reads up to ``#`` or ``max_digits``).
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import ivr.steps  # noqa: F401  (registers the step types)
from ivr.commands import (
    AgiResult, Answer, CallerHangup, ChannelCommand, Command, Exec, Exit, GetData, GetVariable,
    Hangup, Outcome, Result, SayAlpha, SayDate, SayDigits, SayNumber, ServiceCall,
    SetVariable, StreamFile, Verbose, WaitForDigit,
)
from ivr.engine import FlowSession
from ivr.flow import STEP_TYPES, Flow, SourcePos, Step

TIMEOUT = object()
HANGUP = object()

ENV = {
    "agi_callerid": "13800000001", "agi_calleridname": "Wang Fang", "agi_dnid": "4008001234",
    "agi_channel": "PJSIP/trunk-00000001", "agi_uniqueid": "1795388889.1", "agi_language": "en",
}


def make_step(name: str, params: Mapping[str, Any], flow_name: str = "test") -> Step:
    """A Step with the type's defaults applied (like ``ivr.loader``)."""
    params = dict(params)
    step_type_name = params.pop("type")
    step_type = STEP_TYPES[step_type_name]
    for key, spec in step_type.keys.items():
        if key not in params and spec.default is not None:
            params[key] = copy.deepcopy(spec.default)
        elif spec.kind == "digit_targets" and isinstance(params.get(key), dict):
            params[key] = {str(k): v for k, v in params[key].items()}
    return Step(name=name, type=step_type_name, params=params, pos=SourcePos(f"{flow_name}.yaml", 1, 1))


def make_flow(steps: Mapping[str, Mapping[str, Any]], *, name: str = "test", start: str | None = None,
              **options: Any) -> Flow:
    """A Flow from ``{step name: {type: ..., key: value}}``; ``options`` are Flow fields."""
    built = {step_name: make_step(step_name, params, name) for step_name, params in steps.items()}
    return Flow(name=name, path=f"{name}.yaml", version="test", start=start or next(iter(built)),
                steps=built, **options)


def ok(result: str = "0", data: str | None = None, endpos: int | None = None) -> AgiResult:
    return AgiResult(200, result, data, endpos)


def key(ch: str) -> AgiResult:
    """The reply of a playback or WAIT FOR DIGIT interrupted by ``ch``."""
    return AgiResult(200, str(ord(ch)))


def typed(digits: str, timeout: bool = False) -> AgiResult:
    """The reply of GET DATA."""
    return AgiResult(200, digits, "timeout" if timeout else None)


def variable(value: str | None) -> AgiResult:
    """The reply of GET VARIABLE."""
    return AgiResult(200, "0") if value is None else AgiResult(200, "1", value)


DEAD = AgiResult(511, message="Command Not Permitted on a dead channel or intercept routine")


@dataclass
class Phone:
    """A scripted caller + PBX for one session (see the module docstring)."""

    flow: Flow
    inputs: Iterable[Any] = ()
    env: Mapping[str, Any] = field(default_factory=lambda: dict(ENV))
    services: Any = None
    flows: Any = None
    queue_status: str | None = None     # None = an agent answered; "TIMEOUT"...; "HANGUP" = caller left
    dial_status: str = "ANSWER"         # or BUSY, NOANSWER...; "HANGUP" = caller left
    missing_sounds: set = field(default_factory=set)
    session_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pending: deque = deque(self.inputs)
        self.session = FlowSession(self.flow, self.env, self.services, flows=self.flows,
                                   clock=lambda: 1_795_388_889.0, **self.session_options)
        self.commands: list[Command] = []
        self.channel_vars: dict[str, str] = {}
        self.dead = False
        self.exit: Exit | None = None

    # -- running ---------------------------------------------------------------------------------
    def run(self, max_commands: int = 2000) -> Outcome:
        command = self.session.start()
        for _ in range(max_commands):
            self.commands.append(command)
            if isinstance(command, Exit):
                self.exit = command
                return command.outcome
            command = self.session.feed(self.answer(command))
        raise AssertionError(f"no Exit after {max_commands} commands: {self.commands[-5:]}")

    @property
    def outcome(self) -> Outcome:
        assert self.exit is not None
        return self.exit.outcome

    def lines(self) -> list[str]:
        """The AGI lines sent, in order (ServiceCall/Exit shown by name)."""
        out = []
        for c in self.commands:
            out.append(c.agi_line() if isinstance(c, ChannelCommand) else repr(c))
        return out

    def of_type(self, kind: type) -> list[Command]:
        return [c for c in self.commands if isinstance(c, kind)]

    def visited(self) -> list[str]:
        return [entry["step"] for entry in self.session.trace]

    # -- answering ----------------------------------------------------------------------------------
    def _hangup_now(self) -> Result:
        self.pending.popleft()
        self.dead = True
        return CallerHangup()

    def answer(self, command: Command) -> Result:
        if isinstance(command, ServiceCall):
            from ivr.driver import run_service_call
            return run_service_call(self.services, command)
        if self.dead and not isinstance(command, (SetVariable, GetVariable, Verbose)):
            return DEAD
        if isinstance(command, SetVariable):
            self.channel_vars[command.name] = command.value
            return ok("1")
        if isinstance(command, GetVariable):
            value = self.channel_vars.get(command.name)
            return variable(value)
        if isinstance(command, (Answer, Verbose)):
            return ok("0")
        if isinstance(command, Hangup):
            self.dead = True
            return ok("1")
        if isinstance(command, (StreamFile, SayAlpha, SayDigits, SayNumber, SayDate)):
            if isinstance(command, StreamFile) and command.filename in self.missing_sounds:
                return ok("-1", endpos=0)
            head = self.pending[0] if self.pending else None
            if head is HANGUP:
                return self._hangup_now()
            escape = command.escape_digits
            if isinstance(head, str) and head and escape and head[0] in escape and not head.startswith(">"):
                return key(self._take(1))
            return ok("0", endpos=1000) if isinstance(command, StreamFile) else ok("0")
        if isinstance(command, WaitForDigit):
            head = self._pop_input()
            if head is HANGUP:
                self.pending.appendleft(head)
                return self._hangup_now()
            if isinstance(head, str) and head:
                if len(head) > 1:
                    self.pending.appendleft(head[1:])
                return key(head[0])
            return ok("0")
        if isinstance(command, GetData):
            head = self._pop_input()
            if head is HANGUP:
                self.pending.appendleft(head)
                return self._hangup_now()
            if not isinstance(head, str):
                return typed("", timeout=True)
            text, ended, rest = head.partition("#")
            got = text[:command.max_digits]
            leftover = text[command.max_digits:] + (ended + rest if ended else "")
            if leftover and leftover != "#":
                self.pending.appendleft(leftover)
            return typed(got, timeout=not ended and len(got) < command.max_digits)
        if isinstance(command, Exec):
            app = command.application.lower()
            if app == "queue":
                if self.queue_status == "HANGUP":
                    self.dead = True
                    return ok("-1")
                if self.queue_status:
                    self.channel_vars["QUEUESTATUS"] = self.queue_status
                else:
                    self.channel_vars.pop("QUEUESTATUS", None)
                return ok("0")
            if app == "dial":
                if self.dial_status == "HANGUP":
                    self.dead = True
                    return ok("-1")
                self.channel_vars["DIALSTATUS"] = self.dial_status
                return ok("0")
            return ok("0")
        return AgiResult(510, message="Invalid or unknown command")

    def _pop_input(self) -> Any:
        head = self.pending.popleft() if self.pending else TIMEOUT
        return head[1:] if isinstance(head, str) and head.startswith(">") else head

    def _take(self, count: int) -> str:
        head = self.pending.popleft()
        taken, rest = head[:count], head[count:]
        if rest:
            self.pending.appendleft(rest)
        return taken


def drive(session: FlowSession, reply: Callable[[Command], Result], max_feeds: int = 2000) -> list[Command]:
    """Run ``session`` answering each command with ``reply``; the commands, Exit last."""
    command = session.start()
    seen = [command]
    for _ in range(max_feeds):
        if isinstance(command, Exit):
            return seen
        command = session.feed(reply(command))
        seen.append(command)
    raise AssertionError(f"no Exit after {max_feeds} feeds")
