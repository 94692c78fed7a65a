"""Pieces several step types share: reading digits, counting failed tries, check helpers."""
from __future__ import annotations

import math
import re
from typing import Any, Generator

try:   # the regular expression parser of the standard library (private, stable since 2.x)
    from re import _parser as _re_parser
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_parse as _re_parser  # type: ignore[no-redef]

from ivr.commands import AgiResult, Command, GetData, Result
from ivr.engine import StepContext
from ivr.flow import FlowProblem, Step

DTMF = "0123456789*#"
LANGUAGE_CODE = re.compile(r"[a-z]{2}([_-][A-Za-z]{2,4})?\Z")
MAX_GET_DATA_DIGITS = 64
MAX_TRIES = 20                # retries / max_attempts: more is a caller trapped, not patience
MAX_TIMEOUT_SECONDS = 3600    # longest wait for a key the engine will ask Asterisk for


def problem(step: Step, key: str | None, message: str, severity: str = "error") -> FlowProblem:
    """A check() problem about ``key`` of ``step``, worded like the validator's."""
    return FlowProblem(step.where(key), f"step '{step.name}': {message}", severity)


def timeout_ms(seconds: Any, default: float = 5.0) -> int:
    """``seconds`` as AGI milliseconds: unreadable or non-finite is ``default``, and the
    result is kept between 1 ms and ``MAX_TIMEOUT_SECONDS`` (never raises)."""
    try:
        value = float(seconds)
    except (TypeError, ValueError, OverflowError):
        value = default
    if not math.isfinite(value):
        value = default
    return max(1, min(int(value * 1000), MAX_TIMEOUT_SECONDS * 1000))


def check_count(step: Step, key: str, maximum: int = MAX_TRIES) -> list[FlowProblem]:
    """Problems of a whole-number counter key (``retries``, ``max_attempts``): 1 to ``maximum``.

    Failed tries are not counted by ``max_steps``, so an absurd count would replay a
    prompt to a silent line for ever.
    """
    value = step.params.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        return []   # the kind check reports it
    if value < 1:
        return [problem(step, key, f"'{key}' must be at least 1")]
    if value > maximum:
        return [problem(step, key, f"'{key}' must be at most {maximum}, not {value}: a caller "
                                   f"who cannot answer would hear the prompt again and again")]
    return []


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not usable on caller input, or None.

    Patterns run on the reactor thread against what a caller typed. A repetition
    containing another variable-length repetition or an alternation, such as ``(1+)+2``
    or ``(1|11)+2``, makes Python's backtracking matcher take exponential time on a
    string of a few dozen keys, blocking every call; such patterns are refused.
    """
    try:
        parsed = _re_parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"is not a regular expression: {exc}"
    if _nested_repeat(list(parsed), inside_repeat=False):
        return ("repeats a group that itself repeats or has alternatives (like '(1+)+' or "
                "'(1|11)+'), which can take for ever to match a caller's keys; write it with a "
                "character class and one repetition, such as [0-9]+ or [12]{2,8}")
    return None


_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _nested_repeat(items: list, inside_repeat: bool) -> bool:
    """True if a repetition (max > 1) contains a variable-length repetition or a branch."""
    for op, arg in items:
        name = str(op)
        if name in _REPEATS:
            low, high, body = arg
            variable = low != high
            if inside_repeat and variable:
                return True
            if _nested_repeat(list(body), inside_repeat or high > 1):
                return True
        elif name == "BRANCH":
            if inside_repeat:
                return True
            if any(_nested_repeat(list(branch), inside_repeat) for branch in arg[1]):
                return True
        elif name == "SUBPATTERN":
            if _nested_repeat(list(arg[-1]), inside_repeat):
                return True
        elif name in ("ASSERT", "ASSERT_NOT"):
            if _nested_repeat(list(arg[1]), inside_repeat):
                return True
        elif name == "GROUPREF_EXISTS":
            _group, yes, no = arg
            if _nested_repeat(list(yes), inside_repeat) or (no and _nested_repeat(list(no), inside_repeat)):
                return True
        elif name == "ATOMIC_GROUP" and _nested_repeat(list(arg), inside_repeat):
            return True
    return False


def read_digits(ctx: StepContext, prompt: Any, max_digits: int, timeout: Any,
                terminator: str = "#") -> Generator[Command, Result, tuple[str, bool]]:
    """Play ``prompt`` and read up to ``max_digits`` keys with GET DATA; (digits, timed out).

    A prompt that is one sound is GET DATA's own prompt (a key interrupts it); the
    leading parts of a prompt with ``${var}`` are played first, uninterruptible, and the
    last part, if a sound, is GET DATA's prompt. GET DATA always stops on ``#``; another
    terminator ends the input where it appears. Leading zeros are kept (text, not int).
    """
    parts = ctx.prompt_parts(prompt)
    filename = ""
    if parts and parts[-1].kind == "file":
        filename = str(parts[-1].value)
        parts = parts[:-1]
    yield from ctx.play_parts(parts)
    result = yield GetData(filename, timeout_ms(timeout), max(1, min(int(max_digits), MAX_GET_DATA_DIGITS)))
    text = result.result if isinstance(result, AgiResult) else ""
    if terminator and terminator != "#" and terminator in text:
        text = text[:text.index(terminator)]
    digits = "".join(ch for ch in text if ch in DTMF and ch != "#")
    timed_out = isinstance(result, AgiResult) and result.timed_out
    return digits, timed_out


class Tries:
    """Failed tries of one step in this call, kept across visits (``on_invalid`` loops)."""

    def __init__(self, ctx: StepContext, limit: Any):
        self.state = ctx.state()
        try:
            self.limit = min(MAX_TRIES, max(1, int(limit)))
        except (TypeError, ValueError, OverflowError):
            self.limit = 3

    def failed(self) -> bool:
        """Count one failure; True when the tries are used up (the count starts again)."""
        self.state["failures"] = self.state.get("failures", 0) + 1
        if self.state["failures"] >= self.limit:
            self.state["failures"] = 0
            return True
        return False

    def succeeded(self) -> None:
        self.state["failures"] = 0


def luhn_ok(digits: str) -> bool:
    """The Luhn check digit of a card number is right."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for index, ch in enumerate(reversed(digits)):
        value = int(ch)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0
