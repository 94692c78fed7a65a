"""Pieces several step types share: reading digits, counting failed tries, check helpers."""
from __future__ import annotations

import re
from typing import Any, Generator

from ivr.commands import AgiResult, Command, GetData, Result
from ivr.engine import StepContext
from ivr.flow import FlowProblem, Step

DTMF = "0123456789*#"
LANGUAGE_CODE = re.compile(r"[a-z]{2}([_-][A-Za-z]{2,4})?\Z")
MAX_GET_DATA_DIGITS = 64


def problem(step: Step, key: str | None, message: str, severity: str = "error") -> FlowProblem:
    """A check() problem about ``key`` of ``step``, worded like the validator's."""
    return FlowProblem(step.where(key), f"step '{step.name}': {message}", severity)


def timeout_ms(seconds: Any, default: float = 5.0) -> int:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = default
    return max(1, int(value * 1000))


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
            self.limit = max(1, int(limit))
        except (TypeError, ValueError):
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
