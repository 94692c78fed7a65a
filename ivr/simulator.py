"""A caller and an Asterisk in one object, so a flow can run without a PBX.

``hotline simulate`` (terminal) and ``ivr.testing`` (pytest) both need to drive the real
engine (``ivr.engine.FlowSession``) through its public API and answer its commands the
way Asterisk 22 would: play a prompt, read keys, run Queue. Everything here is sans-I/O:
``SimulatedCall`` stops at each *decision point* (the caller must press keys, or the
queue/dial must end somehow) and whoever drives it — the terminal, a script of digit
groups, a pytest helper — supplies the answer.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from ivr.agi import AgiEnvironment
from ivr.commands import (
    AgiResult, Answer, CallerHangup, ChannelCommand, Command, Exec, Exit, GetData,
    GetVariable, Hangup, Outcome, Result, SayAlpha, SayDate, SayDateTime, SayDigits,
    SayNumber, ServiceCall, SetVariable, StreamFile, Verbose, WaitForDigit,
)
from ivr.driver import run_service_call
from ivr.flow import Flow

__all__ = [
    "HANGUP", "MASK", "Heard", "Pressed", "Note", "PromptCatalogue", "FakeAsterisk",
    "SimulatedCall", "DEMO_CUSTOMERS", "demo_services", "parse_now", "parse_digit_groups",
    "ScriptedCaller", "SimulationError",
]

HANGUP = "h"          # in a digit group: the caller hangs up instead of pressing keys
MASK = "••••"         # what a masked value looks like everywhere
MAX_COMMANDS = 20_000  # a flow that sends this many commands without waiting is broken

# The demo customers (``ivr.memory_services.DEMO_CUSTOMERS``): account, PIN, tier...
from ivr.memory_services import DEMO_CUSTOMERS  # noqa: E402


class SimulationError(AssertionError):
    """The simulated call cannot go on as asked (a test or script asked the impossible)."""


# ------------------------------------------------------------------ what the caller hears

@dataclass(frozen=True)
class Heard:
    """One thing the caller heard: TTS text, a recording, a stock sound, a spoken number..."""

    kind: str      # text | file | sound | number | digits | alpha | date | datetime
    value: str

    def __str__(self) -> str:
        if self.kind == "text":
            return f'🔊 "{self.value}"'
        if self.kind in ("file", "sound"):
            return f"🔊 [{self.kind}: {self.value}]"
        if self.kind == "date":
            return f"📅 says date {self.value}"
        if self.kind == "datetime":
            return f"📅 says date and time {self.value}"
        if self.kind == "alpha":
            return f"🔤 spells {self.value}"
        return f"🔢 says {self.kind} {self.value}"


@dataclass(frozen=True)
class Pressed:
    """What the caller did at an input: keys, a timeout (``keys=""``), or a hangup."""

    keys: str
    hangup: bool = False

    def __str__(self) -> str:
        if self.hangup:
            return "📴 caller hangs up"
        return f"⌨️  pressed {self.keys}" if self.keys else "⌛ no key (timeout)"


@dataclass(frozen=True)
class Note:
    """Anything else worth showing in a transcript (queue, dial, channel variables)."""

    text: str

    def __str__(self) -> str:
        return self.text


class PromptCatalogue:
    """Turns the sound names the engine plays back into what they say.

    The engine plays TTS text as ``STREAM FILE hotline/tts/<hash>`` (the hash covers
    text, voice and language; ``ivr.prompt_refs``). The simulator has no audio, so it
    computes the name of every text of every flow in the directory (as ``hotline prompts
    build`` does) and maps it back. Recordings (``{file: x}``, played as ``hotline/x``)
    show as ``[file: x]``, stock sounds as ``[sound: x]``.
    """

    def __init__(self, flows: Iterable[Flow], voices: Mapping[str, str] | None = None):
        from ivr import prompts
        self.voices = dict(prompts.DEFAULT_VOICES if voices is None else voices)
        self._texts: dict[str, str] = {}
        for flow in flows:
            self.add_flow(flow)
        self._add_engine_texts()

    def add_flow(self, flow: Flow) -> None:
        from ivr import prompts
        for prompt in prompts.iter_flow_prompts(flow, self.voices):
            self._texts[prompt.name] = prompt.text

    def _add_engine_texts(self) -> None:
        from ivr.prompt_refs import ENGINE_TEXTS
        for language, words in ENGINE_TEXTS.items():
            for word in words:
                self.add_text(word, language, self.voices.get(language))

    def add_text(self, text: str, language: str, voice: str | None) -> None:
        """Make one more text known (words the engine says on its own, like "yuan")."""
        from ivr.prompt_refs import tts_prompt_name
        self._texts[tts_prompt_name(text, voice, language)] = text

    def describe(self, filename: str) -> Heard:
        from ivr.prompt_refs import DEFAULT_SOUNDS_PREFIX
        if filename in self._texts:
            return Heard("text", self._texts[filename])
        tts = f"{DEFAULT_SOUNDS_PREFIX}/tts/"
        if filename.startswith(tts):
            return Heard("text", f"<speech {filename[len(tts):]}>")
        if filename.startswith(DEFAULT_SOUNDS_PREFIX + "/"):
            return Heard("file", filename[len(DEFAULT_SOUNDS_PREFIX) + 1:])
        return Heard("sound", filename)


# ------------------------------------------------------------------ Asterisk's side

_OK0 = AgiResult(200, "0")
_OK1 = AgiResult(200, "1")
_QUEUE_STATUSES = {"answered": None, "timeout": "TIMEOUT", "full": "FULL",
                   "joinempty": "JOINEMPTY", "leaveempty": "LEAVEEMPTY"}


class FakeAsterisk:
    """Answers channel commands as Asterisk 22 does, and records what the caller heard.

    Input commands (``GET DATA``, ``WAIT FOR DIGIT``) are answered by ``keys()`` with
    what the caller typed; ``STREAM FILE``/``SAY *`` with escape digits are interrupted
    only by keys already typed ahead. ``EXEC Queue``/``Dial`` are answered by
    ``queue()``/``dial()``, and ``GET VARIABLE QUEUESTATUS``/``DIALSTATUS`` then report
    what happened, as in the recorded traces.
    """

    def __init__(self, catalogue: PromptCatalogue):
        self.catalogue = catalogue
        self.channel_vars: dict[str, str] = {}
        self.transcript: list[Heard | Pressed | Note] = []
        self.typeahead = ""           # keys typed but not read yet
        self.queues: list[tuple[str, int | None]] = []   # (queue, priority) joined, in order
        self.dials: list[str] = []
        self.voicemails: list[str] = []
        self.hung_up = False

    # -- classification
    @staticmethod
    def is_input(command: Command) -> bool:
        return isinstance(command, (GetData, WaitForDigit))

    @staticmethod
    def is_queue(command: Command) -> bool:
        return isinstance(command, Exec) and command.application.lower() == "queue"

    @staticmethod
    def is_dial(command: Command) -> bool:
        return isinstance(command, Exec) and command.application.lower() == "dial"

    def heard(self) -> list[Heard]:
        return [item for item in self.transcript if isinstance(item, Heard)]

    # -- answers
    def play(self, command: ChannelCommand) -> Heard | None:
        """Record what a playback command makes the caller hear."""
        heard: Heard | None = None
        if isinstance(command, (StreamFile, GetData)):
            heard = self.catalogue.describe(command.filename) if command.filename else None
            if heard and heard.kind == "sound" and heard.value in ("silence/1", "silence/0"):
                heard = None
        elif isinstance(command, SayNumber):
            heard = Heard("number", str(command.number))
        elif isinstance(command, SayDigits):
            heard = Heard("digits", command.digits)
        elif isinstance(command, SayAlpha):
            heard = Heard("alpha", command.text)
        elif isinstance(command, (SayDate, SayDateTime)):
            tz = timezone.utc
            if isinstance(command, SayDateTime) and command.timezone:
                try:
                    tz = ZoneInfo(command.timezone)
                except Exception:
                    pass
            when = datetime.fromtimestamp(command.epoch, tz)
            heard = (Heard("date", when.date().isoformat()) if isinstance(command, SayDate)
                     else Heard("datetime", when.isoformat(timespec="minutes")))
        elif isinstance(command, Exec) and command.application.lower() in ("playback", "background"):
            heard = self.catalogue.describe(command.options.split(",")[0])
        if heard is not None:
            self.transcript.append(heard)
        return heard

    def answer(self, command: Command) -> Result:
        """The reply to any channel command that needs no decision from the caller."""
        dead_ok = (SetVariable, GetVariable, Verbose, Exec)   # Asterisk allows these on a dead channel
        if self.hung_up and not isinstance(command, dead_ok):
            return AgiResult(511, message="Command Not Permitted on a dead channel or intercept routine")
        if isinstance(command, (StreamFile, SayDigits, SayNumber, SayAlpha, SayDate, SayDateTime)):
            self.play(command)
            escape = command.escape_digits
            if self.typeahead and escape and self.typeahead[0] in escape:
                key, self.typeahead = self.typeahead[0], self.typeahead[1:]
                return AgiResult(200, str(ord(key)), endpos=800 if isinstance(command, StreamFile) else None)
            return AgiResult(200, "0", endpos=8000) if isinstance(command, StreamFile) else _OK0
        if isinstance(command, Answer):
            return _OK0
        if isinstance(command, SetVariable):
            self.channel_vars[command.name] = command.value
            return _OK1
        if isinstance(command, GetVariable):
            value = self.channel_vars.get(command.name)
            return AgiResult(200, "1", value) if value is not None else _OK0
        if isinstance(command, Verbose):
            return _OK1
        if isinstance(command, Hangup):
            self.hung_up = True
            return _OK1
        if isinstance(command, Exec):
            app = command.application.lower()
            if app == "voicemail":
                self.voicemails.append(command.options.split(",")[0])
                self.transcript.append(Note(f"📼 voicemail box {command.options.split(',')[0]}: "
                                            "caller leaves a message"))
                self.channel_vars["VMSTATUS"] = "SUCCESS"
                return _OK0
            if app in ("playback", "background"):
                self.play(command)
                return _OK0
            self.transcript.append(Note(f"⚙️  EXEC {command.application} {command.options}"))
            return _OK0
        if isinstance(command, ChannelCommand):
            return _OK0
        raise SimulationError(f"not a channel command: {command!r}")

    def keys(self, command: GetData | WaitForDigit, keys: str) -> Result:
        """Answer an input command with what the caller typed ("" = no key, a timeout).

        Keys left over (typed past ``#`` or ``max_digits``, or after the one key
        ``WAIT FOR DIGIT`` reads) stay typed ahead for the next command, as in Asterisk.
        The prompt of ``GET DATA`` is recorded by ``play()``, not here.
        """
        typed = self.typeahead + keys
        self.typeahead = ""
        if keys or not typed:
            self.transcript.append(Pressed(keys))
        if isinstance(command, WaitForDigit):
            if not typed:
                return _OK0
            key, self.typeahead = typed[0], typed[1:]
            return AgiResult(200, str(ord(key)))
        # GET DATA: keys up to '#' (not included) or max_digits; otherwise a timeout.
        digits, rest = typed, ""
        if "#" in typed:
            digits, rest = typed.split("#", 1)
            terminated = True
        else:
            terminated = False
        limit = max(1, int(command.max_digits)) if command.max_digits else len(digits)
        if len(digits) >= limit:
            digits, extra = digits[:limit], digits[limit:]
            rest = extra + (("#" + rest) if terminated else rest)
            terminated = True
        self.typeahead = rest
        return AgiResult(200, digits) if terminated else AgiResult(200, digits, "timeout")

    def queue(self, command: Exec, result: str) -> Result:
        """End an ``EXEC Queue``: ``answered`` (an agent took and ended the call),
        ``timeout``/``full``/``joinempty``/``leaveempty`` (no agent)."""
        if result not in _QUEUE_STATUSES:
            raise SimulationError(f"queue result {result!r}: use one of {', '.join(_QUEUE_STATUSES)}")
        status = _QUEUE_STATUSES[result]
        if status is None:
            self.channel_vars.pop("QUEUESTATUS", None)
            self.transcript.append(Note("🎧 an agent answers; the agent call ends"))
        else:
            self.channel_vars["QUEUESTATUS"] = status
            self.transcript.append(Note(f"⏳ left the queue without an agent ({status})"))
        return _OK0

    def dial(self, command: Exec, status: str = "ANSWER") -> Result:
        self.channel_vars["DIALSTATUS"] = status.upper()
        self.transcript.append(Note(f"☎️  dial {command.options.split(',')[0]}: {status.upper()}"))
        return _OK0


# ------------------------------------------------------------------ one call

def _queue_and_priority(command: Exec, channel_vars: Mapping[str, str]) -> tuple[str, int | None]:
    queue = command.options.split(",")[0]
    prio = channel_vars.get("QUEUE_PRIO")
    try:
        return queue, int(prio) if prio is not None else None
    except ValueError:
        return queue, None


class SimulatedCall:
    """One call through the real engine, paused at every decision point.

    ``advance()`` runs the engine until it needs the caller (``pending`` is an input
    command), the queue or dial to end (``pending`` is an ``EXEC Queue``/``Dial``), or
    the call is over (``outcome`` is set). ``press()``, ``timeout()``, ``hangup()``,
    ``end_queue()`` and ``end_dial()`` answer the pending command and advance again.
    """

    def __init__(self, flow: Flow, *, services: Any, flows: Any = None,
                 catalogue: PromptCatalogue | None = None, caller_id: str = "13800000001",
                 caller_name: str = "Simulated Caller", dnid: str = "4000",
                 language: str | None = None, now: float | None = None,
                 session_factory: Callable[..., Any] | None = None):
        from ivr.engine import FlowSession   # late: the simulator module must import without it
        self.flow = flow
        self.services = services
        self.flows = flows
        all_flows = [flow]
        if flows is not None and hasattr(flows, "names"):
            for name in flows.names():
                try:
                    all_flows.append(flows.get(name))
                except Exception:
                    pass
        self.catalogue = catalogue or PromptCatalogue(all_flows)
        self.asterisk = FakeAsterisk(self.catalogue)
        self.now = now
        script = flow.name + (f"?lang={language}" if language else "")
        env = AgiEnvironment({
            "agi_network": "yes", "agi_network_script": script,
            "agi_request": f"agi://127.0.0.1:4573/{script}",
            "agi_channel": "PJSIP/sim-00000001", "agi_language": language or flow.language,
            "agi_type": "PJSIP", "agi_uniqueid": "1795388000.1", "agi_version": "22.10.1",
            "agi_callerid": caller_id or "unknown", "agi_calleridname": caller_name or "unknown",
            "agi_callingpres": "0", "agi_dnid": dnid or "unknown", "agi_rdnis": "unknown",
            "agi_context": "hotline", "agi_extension": "s", "agi_priority": "1",
            "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": "1",
        })
        if now is not None:
            env["now"] = now   # the engine's clock for this call (hours steps, ${now})
        self.env = env
        factory = session_factory or FlowSession
        self.session = factory(flow, env, services, flows=flows)
        self.pending: Command | None = None
        self.outcome: Outcome | None = None
        self.commands = 0
        self._next: Command = self.session.start()
        self.advance()

    # -- state
    @property
    def ended(self) -> bool:
        return self.outcome is not None

    @property
    def transcript(self) -> list[Heard | Pressed | Note]:
        return self.asterisk.transcript

    @property
    def trace(self) -> list:
        return list(self.session.trace)

    @property
    def variables(self) -> dict[str, Any]:
        return dict(self.session.variables)

    @property
    def pending_kind(self) -> str | None:
        """``input``, ``queue``, ``dial`` or None (the call is over)."""
        command = self.pending
        if command is None:
            return None
        if FakeAsterisk.is_queue(command):
            return "queue"
        if FakeAsterisk.is_dial(command):
            return "dial"
        return "input"

    def pending_queue(self) -> tuple[str, int | None] | None:
        if self.pending_kind != "queue":
            return None
        return _queue_and_priority(self.pending, self.asterisk.channel_vars)

    # -- driving
    def _feed(self, result: Result) -> None:
        self.commands += 1
        if self.commands > MAX_COMMANDS:
            raise SimulationError(f"the flow sent more than {MAX_COMMANDS} commands without ending")
        self._next = self.session.feed(result)

    def advance(self) -> Command | None:
        """Run until a decision point; returns the pending command (None: call over)."""
        while self.outcome is None and self.pending is None:
            command = self._next
            if isinstance(command, Exit):
                self.outcome = command.outcome
                break
            if isinstance(command, ServiceCall):
                self._feed(run_service_call(self.services, command))
                continue
            if self.asterisk.hung_up:   # the caller is gone: Asterisk answers, nobody decides
                self._feed(self.asterisk.answer(command))
                continue
            if FakeAsterisk.is_input(command):
                if isinstance(command, GetData):
                    self.asterisk.play(command)
                if self.asterisk.typeahead:
                    self._feed(self.asterisk.keys(command, ""))
                    continue
                self.pending = command
                break
            if FakeAsterisk.is_queue(command):
                queue, prio = _queue_and_priority(command, self.asterisk.channel_vars)
                self.asterisk.queues.append((queue, prio))
                self.asterisk.transcript.append(
                    Note(f"📞 Queue {queue}" + (f" (priority {prio})" if prio is not None else "")))
                self.pending = command
                break
            if FakeAsterisk.is_dial(command):
                self.asterisk.dials.append(command.options.split(",")[0])
                self.pending = command
                break
            self._feed(self.asterisk.answer(command))
        return self.pending

    def _take_pending(self, kind: str) -> Command:
        if self.outcome is not None:
            raise SimulationError(f"the call is over ({self.outcome.kind}); nothing waits for {kind}")
        if self.pending_kind != kind:
            raise SimulationError(f"the call waits for {self.pending_kind}, not {kind}")
        command, self.pending = self.pending, None
        return command

    def press(self, keys: str) -> None:
        """The caller types ``keys`` at the pending input ("" = lets it time out)."""
        if keys and not re.fullmatch(r"[0-9*#]+", keys):
            raise SimulationError(f"{keys!r}: a caller can only press 0-9, * and #")
        command = self._take_pending("input")
        self._feed(self.asterisk.keys(command, keys))
        self.advance()

    def timeout(self) -> None:
        self.press("")

    def hangup(self) -> None:
        """The caller hangs up now (during a prompt, an input or the queue)."""
        if self.outcome is not None:
            raise SimulationError(f"the call is already over ({self.outcome.kind})")
        self.asterisk.transcript.append(Pressed("", hangup=True))
        self.asterisk.hung_up = True
        self.pending = None
        self._feed(CallerHangup())
        self.advance()

    def end_queue(self, result: str = "answered") -> None:
        command = self._take_pending("queue")
        self._feed(self.asterisk.queue(command, result))
        self.advance()

    def end_dial(self, status: str = "ANSWER") -> None:
        command = self._take_pending("dial")
        self._feed(self.asterisk.dial(command, status))
        self.advance()


# ------------------------------------------------------------------ helpers shared by CLI and tests

def demo_services(customers: Sequence[Mapping[str, Any]] | None = None) -> Any:
    """``InMemoryServices`` seeded with the demo customers (or the given ones)."""
    from ivr.memory_services import InMemoryServices
    return InMemoryServices(DEMO_CUSTOMERS if customers is None else [dict(c) for c in customers])


def load_customers(path: str | Path) -> list[dict[str, Any]]:
    """Customers from a JSON or YAML file: a list of mappings like ``DEMO_CUSTOMERS``."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        from ruamel.yaml import YAML
        data = YAML(typ="safe").load(text)
    if isinstance(data, dict):
        data = data.get("customers", data)
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise ValueError(f"{path}: expected a list of customers (account, pin, name, tier, ...)")
    return data


def flow_timezone(flow: Flow, flows: Any = None) -> str:
    """The time zone of the first ``hours`` step of ``flow`` or of a subflow it runs; else UTC."""
    seen: set[str] = set()
    todo = [flow]
    while todo:
        current = todo.pop(0)
        if current.name in seen:
            continue
        seen.add(current.name)
        for step in current.steps.values():
            if step.type == "hours":
                return str(step.params.get("timezone") or "UTC")
        for step in current.steps.values():
            if step.type == "subflow" and flows is not None:
                try:
                    todo.append(flows.get(step.params["flow"]))
                except Exception:
                    pass
    return "UTC"


def parse_now(value: str | float | int | datetime | None, default_tz: str = "UTC") -> float | None:
    """Epoch seconds from ``2026-11-24T10:00`` (in ``default_tz``), ``...+08:00``, or a number."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        when = value
    else:
        text = str(value).strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r}: write the time as 2026-11-24T10:00 or 2026-11-24T10:00+08:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(default_tz))
    return when.timestamp()


def parse_digit_groups(text: str | None) -> list[str]:
    """``"1,100001#,,h"`` -> ``["1", "100001#", "", "h"]``: one group per input ("" = timeout)."""
    if text is None or text == "":
        return []
    groups = [g.strip() for g in text.split(",")]
    for group in groups:
        if group and group != HANGUP and not re.fullmatch(r"[0-9*#]+", group):
            raise ValueError(f"digit group {group!r}: use keys 0-9 * #, an empty group for a "
                             f"timeout, or {HANGUP} to hang up")
    return groups


@dataclass
class ScriptedCaller:
    """Answers decision points from a script; when it runs out, times out and then hangs up.

    ``groups`` answer input commands in order; ``queue_result`` / ``dial_status`` end
    queues and dials. After the script, ``max_timeouts`` further inputs time out and the
    next one hangs up, so a scripted call always ends.
    """

    groups: list[str] = field(default_factory=list)
    queue_result: str = "answered"
    dial_status: str = "ANSWER"
    max_timeouts: int = 3
    _timeouts: int = 0

    def next_input(self) -> str:
        if self.groups:
            return self.groups.pop(0)
        self._timeouts += 1
        return HANGUP if self._timeouts > self.max_timeouts else ""

    def play(self, call: SimulatedCall) -> None:
        while not call.ended:
            kind = call.pending_kind
            if kind == "input":
                group = self.next_input()
                call.hangup() if group == HANGUP else call.press(group)
            elif kind == "queue":
                call.end_queue(self.queue_result)
            elif kind == "dial":
                call.end_dial(self.dial_status)
            else:  # pragma: no cover - advance() always stops at one of the above
                raise SimulationError("the call is stuck")
