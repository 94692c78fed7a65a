"""What the flow engine says to a channel, and what it hears back.

The engine is sans-I/O: it yields these command objects and is fed these result
objects. Every channel command maps 1:1 to an AGI command line (``agi_line()``), so
the FastAGI server, the classic AGI entry point and the terminal simulator all drive
the same engine. Two commands never reach Asterisk: ``ServiceCall`` (database work the
driver runs off the reactor) and ``Exit`` (the session is over, close the channel).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

__all__ = [
    "Command", "ChannelCommand", "Answer", "StreamFile", "GetData", "WaitForDigit",
    "SayDigits", "SayNumber", "SayAlpha", "SayDate", "SayDateTime", "SetVariable",
    "GetVariable", "Exec", "Verbose", "Hangup", "ServiceCall", "Exit", "Outcome",
    "Result", "AgiResult", "CallerHangup", "ServiceResult", "quote_agi_arg",
]

_NEEDS_QUOTES = re.compile(r'[\s"\\]')


class _QuotedAlways(str):
    """An argument Asterisk expects even when empty (escape digits, values): always quoted."""


def quote_agi_arg(value: object) -> str:
    """Quote one AGI argument the way Asterisk's ``parse_args`` reads it back.

    Asterisk splits a command line on blanks, honours double quotes and treats a
    backslash as "take the next character literally"; newlines would end the command,
    so they become spaces (a caller-supplied value can never inject a second command).
    """
    text = str(value).replace("\r", " ").replace("\n", " ")
    if text and not isinstance(value, _QuotedAlways) and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Command:
    """Base of everything the engine yields."""


@dataclass(frozen=True)
class ChannelCommand(Command):
    """A command that becomes exactly one AGI line."""

    verb: ClassVar[str] = ""

    def agi_args(self) -> list[object]:
        return []

    def agi_line(self) -> str:
        """The AGI command line, without the trailing newline."""
        return " ".join([self.verb, *(quote_agi_arg(a) for a in self.agi_args())])


@dataclass(frozen=True)
class Answer(ChannelCommand):
    verb: ClassVar[str] = "ANSWER"


@dataclass(frozen=True)
class StreamFile(ChannelCommand):
    """Play a sound file (no extension); a key in ``escape_digits`` interrupts it."""

    filename: str
    escape_digits: str = ""
    verb: ClassVar[str] = "STREAM FILE"

    def agi_args(self) -> list[object]:
        # Asterisk wants the escape digits argument even when empty: `STREAM FILE x ""`.
        return [self.filename, _QuotedAlways(self.escape_digits)]


@dataclass(frozen=True)
class GetData(ChannelCommand):
    """Play ``filename`` then read up to ``max_digits`` keys; ``#`` ends input early."""

    filename: str
    timeout_ms: int
    max_digits: int
    verb: ClassVar[str] = "GET DATA"

    def agi_args(self) -> list[object]:
        return [self.filename, int(self.timeout_ms), int(self.max_digits)]


@dataclass(frozen=True)
class WaitForDigit(ChannelCommand):
    timeout_ms: int
    verb: ClassVar[str] = "WAIT FOR DIGIT"

    def agi_args(self) -> list[object]:
        return [int(self.timeout_ms)]


@dataclass(frozen=True)
class SayDigits(ChannelCommand):
    digits: str
    escape_digits: str = ""
    verb: ClassVar[str] = "SAY DIGITS"

    def agi_args(self) -> list[object]:
        return [self.digits, _QuotedAlways(self.escape_digits)]


@dataclass(frozen=True)
class SayNumber(ChannelCommand):
    number: int
    escape_digits: str = ""
    verb: ClassVar[str] = "SAY NUMBER"

    def agi_args(self) -> list[object]:
        return [int(self.number), _QuotedAlways(self.escape_digits)]


@dataclass(frozen=True)
class SayAlpha(ChannelCommand):
    text: str
    escape_digits: str = ""
    verb: ClassVar[str] = "SAY ALPHA"

    def agi_args(self) -> list[object]:
        return [self.text, _QuotedAlways(self.escape_digits)]


@dataclass(frozen=True)
class SayDate(ChannelCommand):
    """Say the date of a Unix time (seconds)."""

    epoch: int
    escape_digits: str = ""
    verb: ClassVar[str] = "SAY DATE"

    def agi_args(self) -> list[object]:
        return [int(self.epoch), _QuotedAlways(self.escape_digits)]


@dataclass(frozen=True)
class SayDateTime(ChannelCommand):
    epoch: int
    escape_digits: str = ""
    format: str = ""
    timezone: str = ""
    verb: ClassVar[str] = "SAY DATETIME"

    def agi_args(self) -> list[object]:
        args: list[object] = [int(self.epoch), _QuotedAlways(self.escape_digits)]
        if self.format or self.timezone:
            args.append(_QuotedAlways(self.format))
        if self.timezone:
            args.append(self.timezone)
        return args


@dataclass(frozen=True)
class SetVariable(ChannelCommand):
    name: str
    value: str
    verb: ClassVar[str] = "SET VARIABLE"

    def agi_args(self) -> list[object]:
        return [self.name, _QuotedAlways(self.value)]


@dataclass(frozen=True)
class GetVariable(ChannelCommand):
    name: str
    verb: ClassVar[str] = "GET VARIABLE"

    def agi_args(self) -> list[object]:
        return [self.name]


@dataclass(frozen=True)
class Exec(ChannelCommand):
    """Run a dialplan application (Queue, Dial, VoiceMail, Playback...)."""

    application: str
    options: str = ""
    verb: ClassVar[str] = "EXEC"

    def agi_args(self) -> list[object]:
        return [self.application, _QuotedAlways(self.options)]


@dataclass(frozen=True)
class Verbose(ChannelCommand):
    message: str
    level: int = 1
    verb: ClassVar[str] = "VERBOSE"

    def agi_args(self) -> list[object]:
        return [_QuotedAlways(self.message), int(self.level)]


@dataclass(frozen=True)
class Hangup(ChannelCommand):
    verb: ClassVar[str] = "HANGUP"


@dataclass(frozen=True)
class ServiceCall(Command):
    """Ask the driver to run ``services.<method>(**kwargs)`` (DB work, off the reactor).

    The driver feeds back a ``ServiceResult``. Keeping this out of the engine is what
    lets the same engine run under Twisted, under a thread, and in the simulator.
    """

    method: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How an IVR session ended; stored with the session record.

    ``kind`` is one of: ``queued``, ``transferred``, ``voicemail``, ``callback``,
    ``completed`` (flow ran to a hangup step), ``caller_hangup``, ``error``,
    ``timeout`` (Asterisk went silent), ``step_limit``.
    """

    kind: str
    step: str | None = None
    target: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Exit(Command):
    """The session is over: write the outcome, then close the channel/socket."""

    outcome: Outcome


class Result:
    """Base of everything fed back to the engine."""


@dataclass(frozen=True)
class AgiResult(Result):
    """One AGI reply: ``200 result=<result> [(<data>)] [endpos=<n>]`` or an error code.

    ``result`` stays a string: GET DATA returns typed digits, and ``0123`` must not
    lose its leading zero.
    """

    code: int
    result: str = ""
    data: str | None = None
    endpos: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def value(self) -> int:
        """``result`` as an integer (0 when it is empty or not a number)."""
        try:
            return int(self.result)
        except ValueError:
            return 0

    @property
    def dead(self) -> bool:
        """The channel is gone: ``511`` or ``result=-1``."""
        return self.code == 511 or (self.code == 200 and self.result == "-1")

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"

    @property
    def digit(self) -> str | None:
        """The key pressed, for STREAM FILE / WAIT FOR DIGIT / SAY * (ASCII code result)."""
        v = self.value
        return chr(v) if self.code == 200 and 0 < v < 0x110000 else None


@dataclass(frozen=True)
class CallerHangup(Result):
    """The caller is gone (Asterisk's ``HANGUP`` line, socket closed) or Asterisk fell silent."""

    reason: str = "caller_hangup"


@dataclass(frozen=True)
class ServiceResult(Result):
    value: Any = None
    error: str | None = None
