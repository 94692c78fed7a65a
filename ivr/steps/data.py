"""Steps about data: ``authenticate`` and ``lookup`` (the customer database, through
``ServiceCall``), ``branch`` and ``set`` (expressions over the call's variables)."""
from __future__ import annotations

import re
from typing import Any, ClassVar, Mapping

from ivr.engine import StepContext
from ivr.flow import FlowProblem, Key, Step, StepRun, StepType, register_step_type
from ivr.services import LOOKUP_BY
from ivr.steps._common import MAX_TRIES, check_count, problem, read_digits
from ivr.steps.input import DEFAULT_INVALID_PROMPT

__all__ = ["Authenticate", "Lookup", "Branch", "SetVars", "TIERS", "LOOKUP_BY"]

TIERS = ("vip", "key", "regular")
PIN_MIN_DIGITS = 4
ENTRY_TIMEOUT = 8          # seconds between keys while typing an account or a PIN
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@register_step_type
class Authenticate(StepType):
    type_name = "authenticate"
    doc = "Ask for an account number and a PIN (always masked) and check them."
    waits_for_input = True
    keys: ClassVar = {
        "account_prompt": Key("prompt", required=True),
        "pin_prompt": Key("prompt", required=True),
        "max_attempts": Key("int", default=3),
        "account_min_digits": Key("int", default=4),
        "account_max_digits": Key("int", default=16),
        "pin_max_digits": Key("int", default=8, doc="PINs of 4 to this many digits"),
        "failure_prompt": Key("prompt"),
        "next": Key("target", required=True),
        "on_failure": Key("target", doc="default: the error fallback"),
    }

    def writes(self, step: Step) -> set[str]:
        return {"account", "customer_id", "customer_name", "tier", "authenticated"}

    def check(self, step: Step) -> list[FlowProblem]:
        found = []
        params = step.params
        low, high = params.get("account_min_digits"), params.get("account_max_digits")
        if isinstance(low, int) and isinstance(high, int) and not 1 <= low <= high <= 64:
            found.append(problem(step, "account_min_digits",
                                 "account digits must satisfy 1 <= account_min_digits <= account_max_digits <= 64"))
        pin_max = params.get("pin_max_digits")
        if isinstance(pin_max, int) and not PIN_MIN_DIGITS <= pin_max <= 16:
            found.append(problem(step, "pin_max_digits", "'pin_max_digits' must be from 4 to 16"))
        found.extend(check_count(step, "max_attempts"))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        attempts = min(MAX_TRIES, max(1, int(params.get("max_attempts", 3))))
        low, high = int(params.get("account_min_digits", 4)), int(params.get("account_max_digits", 16))
        pin_max = int(params.get("pin_max_digits", 8))
        ctx.variables["authenticated"] = False
        for _ in range(attempts):
            account, _timed_out = yield from read_digits(ctx, params["account_prompt"], high, ENTRY_TIMEOUT)
            if not (account.isdigit() and low <= len(account) <= high):
                yield from ctx.play(params.get("failure_prompt") or DEFAULT_INVALID_PROMPT)
                continue
            ctx.variables["account"] = account
            ctx.record_input("account", account)
            pin, _timed_out = yield from read_digits(ctx, params["pin_prompt"], pin_max, ENTRY_TIMEOUT)
            ctx.record_input("pin", pin, masked=True)
            record = None
            if pin.isdigit() and PIN_MIN_DIGITS <= len(pin) <= pin_max:
                record = yield from ctx.service("authenticate", account=account, pin=pin)
            del pin
            if isinstance(record, Mapping) and record.get("customer_id") is not None:
                tier = record.get("tier")
                ctx.variables.update({
                    "account": str(record.get("account") or account),
                    "customer_id": record["customer_id"],
                    "customer_name": record.get("name"),
                    "tier": tier if tier in TIERS else "regular",
                    "authenticated": True,
                })
                return params["next"]
            if params.get("failure_prompt") is not None:
                yield from ctx.play(params["failure_prompt"])
        if params.get("on_failure"):
            return params["on_failure"]
        ctx.fail(f"caller not authenticated after {attempts} attempts")


@register_step_type
class Lookup(StepType):
    type_name = "lookup"
    doc = "Read fields of a customer record into variables (<prefix><field>, and found)."
    keys: ClassVar = {
        "by": Key("str", default="customer_id", choices=LOOKUP_BY),
        "value": Key("text", default="${customer_id}"),
        "fields": Key("list", required=True, doc="field names"),
        "prefix": Key("str", default=""),
        "next": Key("target"),
        "on_not_found": Key("target", doc="default: next"),
    }

    def writes(self, step: Step) -> set[str]:
        fields = step.params.get("fields") or []
        prefix = step.params.get("prefix") or ""
        return {f"{prefix}{f}" for f in fields if isinstance(f, str)} | {"found"}

    def check(self, step: Step) -> list[FlowProblem]:
        found = []
        fields = step.params.get("fields")
        if isinstance(fields, list):
            if not fields:
                found.append(problem(step, "fields", "'fields' needs at least one field name"))
            for index, name in enumerate(fields):
                if not isinstance(name, str) or not _FIELD.match(name):
                    found.append(problem(step, f"fields.{index}", f"'{name}' is not a field name"))
        prefix = step.params.get("prefix")
        if isinstance(prefix, str) and prefix and not _FIELD.match(prefix):
            found.append(problem(step, "prefix", f"'{prefix}' cannot start a variable name"))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        fields = [str(f) for f in params["fields"]]
        prefix = params.get("prefix") or ""
        value = ctx.interpolate(params.get("value", "${customer_id}"))
        record = yield from ctx.service("lookup", by=params.get("by", "customer_id"), value=value,
                                        fields=fields)
        found = isinstance(record, Mapping)
        for name in fields:
            ctx.variables[f"{prefix}{name}"] = record.get(name) if found else None
        ctx.variables["found"] = found
        if found and not prefix:
            ctx.set_customer(record)
        if not found and params.get("on_not_found"):
            return params["on_not_found"]
        return params.get("next")


@register_step_type
class Branch(StepType):
    type_name = "branch"
    doc = "Go to the first step whose condition is true, else to 'else'."
    keys: ClassVar = {
        "conditions": Key("list", required=True, doc="list of {if: <expression>, goto: <step>}"),
        "else": Key("target", required=True),
    }

    def targets(self, step: Step) -> list[tuple[str, str]]:
        out = []
        for index, condition in enumerate(step.params.get("conditions") or []):
            if isinstance(condition, dict) and isinstance(condition.get("goto"), str):
                out.append((f"conditions.{index}.goto", condition["goto"]))
        if isinstance(step.params.get("else"), str):
            out.append(("else", step.params["else"]))
        return out

    def check(self, step: Step) -> list[FlowProblem]:
        found = []
        conditions = step.params.get("conditions")
        if not isinstance(conditions, list):
            return found
        if not conditions:
            found.append(problem(step, "conditions", "'conditions' needs at least one {if, goto}"))
        for index, condition in enumerate(conditions):
            path = f"conditions.{index}"
            if not isinstance(condition, dict) or set(condition) != {"if", "goto"}:
                found.append(problem(step, path, f"'{path}' must be a mapping with exactly 'if' and 'goto'"))
            elif not isinstance(condition["goto"], str):
                found.append(problem(step, f"{path}.goto", f"'{path}.goto' must name a step"))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        for condition in step.params["conditions"]:
            if ctx.evaluate(condition["if"]):
                return condition["goto"]
        return step.params["else"]
        yield  # a generator, like every step


@register_step_type
class SetVars(StepType):
    type_name = "set"
    doc = "Set variables from expressions, in the order written."
    keys: ClassVar = {
        "vars": Key("map", required=True, doc="name -> expression"),
        "next": Key("target"),
    }

    def writes(self, step: Step) -> set[str]:
        return {name for name in (step.params.get("vars") or {}) if isinstance(name, str)}

    def check(self, step: Step) -> list[FlowProblem]:
        values = step.params.get("vars")
        if isinstance(values, dict) and not values:
            return [problem(step, "vars", "'vars' needs at least one variable")]
        return []

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        for name, source in step.params["vars"].items():
            value: Any = ctx.evaluate(source)
            ctx.variables[str(name)] = value
        return step.params.get("next")
        yield  # a generator, like every step


TICKET_KINDS = ("fault", "complaint", "request")


@register_step_type
class Ticket(StepType):
    type_name = "ticket"
    doc = ("Open a ticket for the caller (fault report, complaint, request) and keep its "
           "reference in a variable, so the flow can read it back and the agent sees it.")
    keys: ClassVar = {
        "kind": Key("str", default="fault", choices=TICKET_KINDS),
        "summary": Key("text", required=True, doc="what the caller reported; may use ${var}"),
        "var": Key("var", default="ticket_reference", doc="where the new reference goes"),
        "next": Key("target"),
    }

    def reads(self, step: Step) -> set[str]:
        return {"customer_id", "session_id"}

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        customer_id = ctx.variables.get("customer_id")
        reference = yield from ctx.service(
            "create_ticket", customer_id=customer_id, kind=params.get("kind", "fault"),
            summary=ctx.interpolate(params["summary"]), session_id=ctx.session_id)
        ctx.variables[params.get("var") or "ticket_reference"] = reference
        return params.get("next")
