"""Steps that read keys from the caller: ``menu`` (one key), ``collect`` (several keys
into a variable) and ``language`` (the caller picks a language).

Retries follow docs/flow-spec.md: every wrong key or timeout is one failed try; after
``retries`` of them the step goes to ``on_exhausted`` (else the error fallback).
Before that, a wrong key goes to ``on_invalid`` if set, else plays ``invalid_prompt``
and asks again; a timeout goes to ``on_timeout`` if set, else plays ``timeout_prompt``
(if any) and asks again. Failed tries are counted per call and step, so a loop
through ``on_invalid`` back to the menu still runs out.
"""
from __future__ import annotations

import re
from typing import Any, ClassVar

from ivr.commands import AgiResult, GetData, WaitForDigit
from ivr.engine import ALL_KEYS, StepContext, key_of
from ivr.flow import FlowProblem, Key, Step, StepRun, StepType, register_step_type
from ivr.steps._common import (
    DTMF, LANGUAGE_CODE, Tries, check_count, luhn_ok, pattern_problem, problem, read_digits, timeout_ms,
)

__all__ = ["Menu", "Collect", "Language", "DEFAULT_INVALID_PROMPT"]

DEFAULT_INVALID_PROMPT = {"sound": "invalid"}
_CONTEXT = re.compile(r"[A-Za-z0-9_\-]{1,80}\Z")


def _keys_in_order(keys: Any) -> str:
    wanted = {str(k) for k in keys}
    return "".join(ch for ch in ALL_KEYS if ch in wanted)


@register_step_type
class Menu(StepType):
    type_name = "menu"
    doc = "Play a prompt and wait for one key; each key leads to a step."
    waits_for_input = True
    keys: ClassVar = {
        "prompt": Key("prompt", required=True),
        "choices": Key("digit_targets", required=True, doc="key -> step"),
        "timeout": Key("float", default=5, doc="seconds to wait for a key after the prompt"),
        "retries": Key("int", default=3, doc="wrong keys or timeouts before on_exhausted"),
        "invalid_prompt": Key("prompt", default=DEFAULT_INVALID_PROMPT),
        "timeout_prompt": Key("prompt"),
        "on_invalid": Key("target", doc="default: replay the menu"),
        "on_timeout": Key("target", doc="default: replay the menu"),
        "on_exhausted": Key("target", doc="default: the error fallback"),
        "direct_dial": Key("map", doc="{pattern, max_digits, context}: dial an extension"),
    }

    def writes(self, step: Step) -> set[str]:
        return {"menu_choice"}

    def check(self, step: Step) -> list[FlowProblem]:
        found: list[FlowProblem] = []
        params = step.params
        found.extend(check_count(step, "retries"))
        if isinstance(params.get("timeout"), (int, float)) and params["timeout"] <= 0:
            found.append(problem(step, "timeout", "'timeout' must be more than 0 seconds"))
        if isinstance(params.get("choices"), dict) and not params["choices"]:
            found.append(problem(step, "choices", "'choices' needs at least one key"))
        dial = params.get("direct_dial")
        if isinstance(dial, dict):
            found.extend(_check_direct_dial(step, dial))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        choices = {str(k): v for k, v in params["choices"].items()}
        dial = params.get("direct_dial") or None
        escape = _keys_in_order(list(choices) + (list("0123456789") if dial else []))
        tries = Tries(ctx, params.get("retries", 3))
        wait_ms = timeout_ms(params.get("timeout", 5))
        while True:
            key = yield from ctx.play(params["prompt"], escape)
            if key is None:
                result = yield WaitForDigit(wait_ms)
                key = key_of(result)
            if key is not None and key in choices:
                tries.succeeded()
                ctx.variables["menu_choice"] = key
                ctx.record_input("menu_choice", key)
                return choices[key]
            if key is not None and dial and key.isdigit():
                routed = yield from _direct_dial(ctx, step, dial, key, wait_ms)
                if routed is not None:
                    tries.succeeded()
                    return routed
            timed_out = key is None
            if tries.failed():
                if params.get("on_exhausted"):
                    return params["on_exhausted"]
                ctx.fail(f"no valid choice after {tries.limit} tries")
            if timed_out:
                if params.get("on_timeout"):
                    return params["on_timeout"]
                if params.get("timeout_prompt") is not None:
                    yield from ctx.play(params["timeout_prompt"])
            else:
                if params.get("on_invalid"):
                    return params["on_invalid"]
                yield from ctx.play(params.get("invalid_prompt") or DEFAULT_INVALID_PROMPT)


def _check_direct_dial(step: Step, dial: dict) -> list[FlowProblem]:
    found = []
    unknown = set(dial) - {"pattern", "max_digits", "context"}
    if unknown:
        found.append(problem(step, "direct_dial", f"unknown key(s) in 'direct_dial': {', '.join(sorted(unknown))} "
                                                 f"(use pattern, max_digits, context)"))
    why = pattern_problem(str(dial.get("pattern", "")))
    if why is not None:
        found.append(problem(step, "direct_dial", f"'direct_dial.pattern' {why}"))
    if not dial.get("pattern"):
        found.append(problem(step, "direct_dial", "'direct_dial' needs a 'pattern'"))
    max_digits = dial.get("max_digits", 4)
    if not isinstance(max_digits, int) or isinstance(max_digits, bool) or not 1 <= max_digits <= 20:
        found.append(problem(step, "direct_dial", "'direct_dial.max_digits' must be a whole number from 1 to 20"))
    if not _CONTEXT.match(str(dial.get("context", ""))):
        found.append(problem(step, "direct_dial", "'direct_dial' needs a 'context' (a dialplan context name)"))
    return found


def _direct_dial(ctx: StepContext, step: Step, dial: dict, first: str, wait_ms: int) -> StepRun:
    """Read the rest of an extension after ``first``; dial it if it matches. None = not a match."""
    max_digits = int(dial.get("max_digits", 4))
    number = first
    if max_digits > 1:
        result = yield GetData("", wait_ms, max_digits - 1)
        rest = result.result if isinstance(result, AgiResult) else ""
        number += "".join(ch for ch in rest if ch in "0123456789")[:max_digits - 1]
    try:
        matched = re.fullmatch(str(dial["pattern"]), number) is not None
    except re.error:
        matched = False
    if not matched:
        return None
    ctx.record_input("direct_dial", number)
    from ivr.steps.routing import dial_destination
    status = yield from dial_destination(ctx, f"Local/{number}@{dial['context']}", 30, keep_channel=False)
    if status == "ANSWER":
        from ivr.engine import END_CALL
        return END_CALL
    return None


@register_step_type
class Collect(StepType):
    type_name = "collect"
    doc = "Read several keys into a variable (account, ticket or card number...)."
    waits_for_input = True
    keys: ClassVar = {
        "var": Key("var", required=True, doc="the variable written"),
        "prompt": Key("prompt", required=True),
        "min_digits": Key("int", default=1),
        "max_digits": Key("int", default=20),
        "terminator": Key("digit", default="#"),
        "timeout": Key("float", default=5),
        "retries": Key("int", default=3),
        "pattern": Key("str", doc="regular expression the whole input must match"),
        "luhn": Key("bool", default=False, doc="the input is a card number with a Luhn check digit"),
        "mask": Key("bool", default=False, doc="stored and shown as ••••"),
        "invalid_prompt": Key("prompt", default=DEFAULT_INVALID_PROMPT),
        "next": Key("target"),
        "on_exhausted": Key("target", doc="default: the error fallback"),
    }

    def check(self, step: Step) -> list[FlowProblem]:
        found: list[FlowProblem] = []
        low, high = step.params.get("min_digits"), step.params.get("max_digits")
        if isinstance(low, int) and isinstance(high, int):
            if low < 0:
                found.append(problem(step, "min_digits", "'min_digits' cannot be negative"))
            if high < 1 or high > 64:
                found.append(problem(step, "max_digits", "'max_digits' must be from 1 to 64"))
            if low > high:
                found.append(problem(step, "min_digits", "min_digits is above max_digits"))
        found.extend(check_count(step, "retries"))
        pattern = step.params.get("pattern")
        if isinstance(pattern, str):
            why = pattern_problem(pattern)
            if why is not None:
                found.append(problem(step, "pattern", f"'pattern' {why}"))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        tries = Tries(ctx, params.get("retries", 3))
        low, high = int(params.get("min_digits", 1)), int(params.get("max_digits", 20))
        while True:
            digits, timed_out = yield from read_digits(ctx, params["prompt"], high, params.get("timeout", 5),
                                                       params.get("terminator") or "#")
            if digits and self.valid(digits, low, high, params):
                tries.succeeded()
                ctx.variables[params["var"]] = digits
                ctx.record_input(params["var"], digits, masked=bool(params.get("mask")))
                return params.get("next")
            if tries.failed():
                if params.get("on_exhausted"):
                    return params["on_exhausted"]
                ctx.fail(f"no valid input for '{params['var']}' after {tries.limit} tries")
            if digits or not timed_out:
                yield from ctx.play(params.get("invalid_prompt") or DEFAULT_INVALID_PROMPT)

    @staticmethod
    def valid(digits: str, low: int, high: int, params: dict) -> bool:
        if not low <= len(digits) <= high:
            return False
        pattern = params.get("pattern")
        if pattern:
            try:
                if re.fullmatch(pattern, digits) is None:
                    return False
            except re.error:
                return False
        if params.get("luhn") and not luhn_ok(digits):
            return False
        return True


@register_step_type
class Language(StepType):
    type_name = "language"
    doc = "Set the caller's language, fixed (set) or chosen with a key (prompt + choices)."
    waits_for_input = True
    keys: ClassVar = {
        "set": Key("str", doc="a language code"),
        "prompt": Key("prompt"),
        "choices": Key("map", doc="key -> language code"),
        "timeout": Key("float", default=5),
        "next": Key("target", required=True),
    }

    def writes(self, step: Step) -> set[str]:
        return {"language"}

    def check(self, step: Step) -> list[FlowProblem]:
        params = step.params
        fixed, chooses = params.get("set") is not None, params.get("choices") is not None
        if fixed == chooses or (chooses and params.get("prompt") is None):
            return [problem(step, None, "write either 'set' (a language code) or 'prompt' and 'choices'")]
        found = []
        if fixed and not LANGUAGE_CODE.match(str(params["set"])):
            found.append(problem(step, "set", f"'{params['set']}' is not a language code like en or zh"))
        for key, code in (params.get("choices") or {}).items():
            if str(key) not in DTMF or len(str(key)) != 1:
                found.append(problem(step, f"choices.{key}", f"'{key}' in 'choices' is not a phone key"))
            if not isinstance(code, str) or not LANGUAGE_CODE.match(code):
                found.append(problem(step, f"choices.{key}", f"'{code}' is not a language code like en or zh"))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        if params.get("set") is not None:
            code: Any = params["set"]
        else:
            choices = {str(k): v for k, v in params["choices"].items()}
            key = yield from ctx.play(params["prompt"], _keys_in_order(choices))
            if key is None:
                result = yield WaitForDigit(timeout_ms(params.get("timeout", 5)))
                key = key_of(result)
            code = choices.get(key) if key is not None else None
            if code is None:
                return params.get("next")   # no key or another key: keep the current language
        code = str(code)
        ctx.record_input("language", code)
        yield from ctx.set_language(code)
        return params.get("next")
