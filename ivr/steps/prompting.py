"""Steps that only speak: ``say`` (a prompt, digits, a number, an amount, a date) and ``hangup``."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from ivr import prompt_refs
from ivr.commands import SayDate, SayDigits, SayNumber, StreamFile
from ivr.engine import ALL_KEYS, END_CALL, StepContext, key_of
from ivr.flow import FlowProblem, Key, Step, StepRun, StepType, register_step_type
from ivr.steps._common import problem

__all__ = ["Say", "HangupStep", "parse_date_epoch", "parse_whole_number"]

_SAY_FORMS = ("prompt", "digits", "number", "money", "date")


def parse_whole_number(text: str) -> int | None:
    """``"12345"``, ``"12345.0"``, ``" -7 "`` -> int; empty -> None; ValueError otherwise."""
    text = text.strip()
    if not text or text.lower() == "none":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text[:30]!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{text[:30]!r} is not a number")
    return int(value.to_integral_value())


def parse_date_epoch(text: str) -> int | None:
    """Epoch seconds to give SAY DATE for ``text``.

    Epoch seconds are said as they are. A written date (``2026-11-24``, or a date-time
    such as ``2026-11-20T10:00:00+08:00``) is said as the calendar date written, at noon
    UTC, so the server's time zone cannot move it to the day before or after.
    """
    text = text.strip()
    if not text or text.lower() == "none":
        return None
    if text.lstrip("-").isascii() and text.lstrip("-").isdigit():
        return int(text)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            day = datetime.fromisoformat(text).date()
        except ValueError:
            raise ValueError(f"{text[:30]!r} is not a date (write 2026-11-24 or epoch seconds)") from None
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).timestamp())


@register_step_type
class Say(StepType):
    type_name = "say"
    doc = "Play a prompt, or say digits, a number, an amount of money (cents) or a date."
    keys: ClassVar = {
        "prompt": Key("prompt", doc="what to play"),
        "digits": Key("text", doc="said one by one"),
        "number": Key("text", doc="said as a number"),
        "money": Key("text", doc="amount in cents, said as units + cents"),
        "date": Key("text", doc="ISO date 2026-11-24 or epoch seconds"),
        "currency": Key("str", doc="yuan if the language is zh, else dollars"),
        "interruptible": Key("bool", default=False, doc="a key press stops the playback"),
        "next": Key("target"),
    }

    def check(self, step: Step) -> list[FlowProblem]:
        given = [k for k in _SAY_FORMS if step.params.get(k) is not None]
        if len(given) != 1:
            found = f" (found {', '.join(given)})" if given else ""
            return [problem(step, given[1] if len(given) > 1 else None,
                            f"write exactly one of {', '.join(_SAY_FORMS)}{found}")]
        return []

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        escape = ALL_KEYS if params.get("interruptible") else ""
        if params.get("prompt") is not None:
            yield from ctx.play(params["prompt"], escape)
            return params.get("next")
        for form in ("digits", "number", "money", "date"):
            if params.get(form) is not None:
                text = ctx.interpolate(params[form])
                break
        else:  # pragma: no cover - check() refuses such a step
            ctx.fail("nothing to say")
        try:
            if form == "digits":
                digits = "".join(ch for ch in text if ch in ALL_KEYS)
                if digits:
                    yield SayDigits(digits, escape)
            elif form == "number":
                number = parse_whole_number(text)
                if number is not None:
                    yield SayNumber(number, escape)
            elif form == "money":
                cents = parse_whole_number(text)
                if cents is not None:
                    yield from self._say_money(cents, params.get("currency"), ctx, escape)
            else:
                epoch = parse_date_epoch(text)
                if epoch is not None:
                    yield SayDate(epoch, escape)
        except ValueError as exc:
            ctx.fail(f"cannot say {form}: {exc}")
        return params.get("next")

    @staticmethod
    def _say_money(cents: int, currency: str | None, ctx: StepContext, escape: str) -> StepRun:
        language = ctx.language
        currency = currency or ("yuan" if language.startswith("zh") else "dollars")
        units_word, cents_word = prompt_refs.money_words(currency, language, ctx.voices, ctx.sounds_prefix)
        sign = -1 if cents < 0 else 1
        units, rest = divmod(abs(cents), 100)
        commands: list[Any] = []
        if units or not rest:
            commands += [SayNumber(sign * units, escape), StreamFile(str(units_word.value), escape)]
        if rest:
            commands.append(SayNumber(rest if units else sign * rest, escape))
            if cents_word is not None:
                commands.append(StreamFile(str(cents_word.value), escape))
        for command in commands:
            result = yield command
            if escape and key_of(result) is not None:
                return None
        return None


@register_step_type
class HangupStep(StepType):
    type_name = "hangup"
    doc = "Play an optional goodbye and end the call (outcome completed)."
    terminal = True
    keys: ClassVar = {"prompt": Key("prompt", doc="said before hanging up")}

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        if step.params.get("prompt") is not None:
            yield from ctx.play(step.params["prompt"])
        return END_CALL
