"""Steps that send the call somewhere: ``queue``, ``transfer``/``dial``, ``voicemail``,
``callback``, and the two jumps ``goto`` and ``subflow``.

A routing step records its outcome *before* it hands the call to Asterisk, so a caller
who hangs up while queued, ringing or leaving a message still ends as ``queued``,
``transferred`` or ``voicemail``; if the hand-off did not happen (queue timed out,
extension busy) the outcome is withdrawn and the step goes to ``on_timeout`` /
``on_failure`` (else the error fallback). A routing step with nothing after it ends
the whole call, even inside a subflow.

Asterisk's ``Queue()`` and ``Dial()`` hang the caller up when the agent does, unless
told to continue: a queue step with ``after`` adds Queue's ``c`` option, a transfer
with ``next`` adds Dial's ``g`` option, so the flow can go on (e.g. to a survey).
"""
from __future__ import annotations

import re
from typing import Any, ClassVar, Mapping

from ivr.commands import AgiResult, Exec, GetVariable, SetVariable, WaitForDigit
from ivr.engine import ALL_KEYS, END_CALL, CallSubflow, StepContext, key_of
from ivr.flow import FlowProblem, Key, Step, StepRun, StepType, register_step_type
from ivr.steps._common import problem, timeout_ms
from ivr.steps.data import TIERS

__all__ = [
    "Queue", "Transfer", "Dial", "Voicemail", "Callback", "Goto", "Subflow",
    "normalise_destination", "queue_priority", "dial_destination", "QUEUE_NO_AGENT",
    "DEFAULT_PRIORITY",
]

DEFAULT_PRIORITY = {"vip": 10, "key": 5, "regular": 0}
# QUEUESTATUS values meaning the caller left the queue without an agent.
QUEUE_NO_AGENT = frozenset({"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL",
                            "LEAVEUNAVAIL", "WITHDRAW"})
CALLBACK_WAIT = 5          # seconds to wait for the confirm key after the offer
_TECH_DEST = re.compile(r"(PJSIP|SIP|IAX2|DAHDI|Local)/[A-Za-z0-9_.+*#\-]+(@[A-Za-z0-9_\-]+)?(/n)?\Z")
_AT_DEST = re.compile(r"[A-Za-z0-9_.+*#\-]+@[A-Za-z0-9_\-]+\Z")
_MAILBOX = re.compile(r"[A-Za-z0-9_\-]{1,40}(@[A-Za-z0-9_\-]{1,40})?\Z")
_VM_OPTIONS = re.compile(r"[A-Za-z0-9()]{0,20}\Z")


def _got_variable(result: Any) -> str:
    """The value of a GET VARIABLE reply (``200 result=1 (value)``), "" when unset."""
    if isinstance(result, AgiResult) and result.value == 1 and result.data:
        return result.data
    return ""


def normalise_destination(text: str) -> str | None:
    """``PJSIP/1001`` and ``Local/1001@ctx`` as they are, ``1001@ctx`` -> ``Local/1001@ctx``.

    Anything else is refused (None): a value built from caller input must never smuggle
    Dial options (``,``), a second destination (``&``) or another application.
    """
    text = text.strip()
    if _TECH_DEST.match(text):
        return text
    if _AT_DEST.match(text):
        return f"Local/{text}"
    return None


def queue_priority(priority: Any, tier: Any) -> int:
    """The caller's priority: a number, or the entry of the caller's tier (else ``regular``'s)."""
    if isinstance(priority, Mapping):
        value = priority.get(str(tier), priority.get("regular", 0))
    else:
        value = priority if priority is not None else DEFAULT_PRIORITY.get(str(tier), 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def dial_destination(ctx: StepContext, destination: str, timeout: int, *,
                     keep_channel: bool) -> StepRun:
    """EXEC Dial and read DIALSTATUS; returns it (``ANSWER``, ``BUSY``, ``NOANSWER``...)."""
    ctx.route("transferred", destination)
    options = f"{destination},{int(timeout)}" + (",g" if keep_channel else "")
    yield Exec("Dial", options)
    status = _got_variable((yield GetVariable("DIALSTATUS"))).upper()
    if status != "ANSWER":
        ctx.unroute()
    return status


@register_step_type
class Queue(StepType):
    type_name = "queue"
    doc = "Put the caller in an Asterisk queue, with a priority by customer tier."
    terminal = True
    waits_for_input = True   # the caller waits in the queue: not a busy loop
    keys: ClassVar = {
        "queue": Key("queue", required=True),
        "priority": Key("int_or_map", default=dict(DEFAULT_PRIORITY), doc="tier -> priority, or one number"),
        "announce_position": Key("bool", default=True,
                                 doc="position/hold-time announcements come from queues.conf "
                                     "(announce-position); Asterisk has no per-call switch"),
        "max_wait": Key("int", default=600, doc="seconds in the queue before on_timeout"),
        "on_timeout": Key("target", doc="left without an agent; default: the error fallback"),
        "after": Key("target", doc="after the agent call ends (e.g. a survey); default: end"),
    }

    def check(self, step: Step) -> list[FlowProblem]:
        found = []
        priority = step.params.get("priority")
        if isinstance(priority, dict):
            for tier, value in priority.items():
                if tier not in TIERS:
                    found.append(problem(step, f"priority.{tier}", f"'{tier}' is not a tier "
                                                                  f"({', '.join(TIERS)})", "warning"))
                if not isinstance(value, int) or isinstance(value, bool):
                    found.append(problem(step, f"priority.{tier}", f"'priority.{tier}' must be a whole number"))
        max_wait = step.params.get("max_wait")
        if isinstance(max_wait, int) and max_wait < 1:
            found.append(problem(step, "max_wait", "'max_wait' must be at least 1 second"))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        queue = params["queue"]
        after = params.get("after")
        priority = queue_priority(params.get("priority", DEFAULT_PRIORITY), ctx.variables.get("tier"))
        yield SetVariable("QUEUE_PRIO", str(priority))
        ctx.route("queued", queue)
        options = "tc" if after else "t"
        yield Exec("Queue", f"{queue},{options},,,{int(params.get('max_wait', 600))}")
        status = _got_variable((yield GetVariable("QUEUESTATUS"))).upper()
        if status in QUEUE_NO_AGENT:
            ctx.unroute()
            if params.get("on_timeout"):
                return params["on_timeout"]
            ctx.fail(f"queue '{queue}' returned {status} (no agent)")
        return after or END_CALL


@register_step_type
class Transfer(StepType):
    type_name = "transfer"
    doc = "Connect the caller to a phone or an extension (EXEC Dial)."
    terminal = True
    waits_for_input = True   # the caller waits while it rings
    keys: ClassVar = {
        "destination": Key("text", required=True, doc="PJSIP/1001, Local/1001@ctx or 1001@ctx"),
        "timeout": Key("int", default=30, doc="seconds of ringing"),
        "on_failure": Key("target", doc="busy, no answer...; default: the error fallback"),
        "next": Key("target", doc="after the call ends; default: end"),
    }

    def check(self, step: Step) -> list[FlowProblem]:
        dest = step.params.get("destination")
        if isinstance(dest, str) and "${" not in dest and normalise_destination(dest) is None:
            return [problem(step, "destination", f"'{dest}' is not a destination: write PJSIP/1001, "
                                                 f"Local/1001@from-internal or 1001@from-internal")]
        timeout = step.params.get("timeout")
        if isinstance(timeout, int) and timeout < 1:
            return [problem(step, "timeout", "'timeout' must be at least 1 second")]
        return []

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        text = ctx.interpolate(params["destination"])
        destination = normalise_destination(text)
        if destination is None:
            ctx.fail(f"'{text[:40]}' is not a destination")
        nxt = params.get("next")
        status = yield from dial_destination(ctx, destination, int(params.get("timeout", 30)),
                                             keep_channel=bool(nxt))
        if status == "ANSWER":
            return nxt or END_CALL
        if params.get("on_failure"):
            return params["on_failure"]
        ctx.fail(f"dial {destination}: {status or 'no DIALSTATUS'}")


@register_step_type
class Dial(Transfer):
    type_name = "dial"
    doc = "Same as transfer."


@register_step_type
class Voicemail(StepType):
    type_name = "voicemail"
    doc = "Send the caller to a voicemail box; ends the call (outcome voicemail)."
    terminal = True
    waits_for_input = True
    keys: ClassVar = {
        "mailbox": Key("text", required=True, doc="1000@default"),
        "prompt": Key("prompt"),
        "options": Key("str", default="u", doc="VoiceMail() options; u = unavailable greeting"),
    }

    def check(self, step: Step) -> list[FlowProblem]:
        found = []
        mailbox = step.params.get("mailbox")
        if isinstance(mailbox, str) and "${" not in mailbox and not _MAILBOX.match(mailbox):
            found.append(problem(step, "mailbox", f"'{mailbox}' is not a mailbox like 1000@default"))
        options = step.params.get("options")
        if isinstance(options, str) and not _VM_OPTIONS.match(options):
            found.append(problem(step, "options", f"'{options}' are not VoiceMail options (letters like u, b, s)"))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        mailbox = ctx.interpolate(params["mailbox"]).strip()
        options = str(params.get("options") or "")
        if not _MAILBOX.match(mailbox) or not _VM_OPTIONS.match(options):
            ctx.fail(f"'{mailbox[:40]}' is not a mailbox")
        if params.get("prompt") is not None:
            yield from ctx.play(params["prompt"])
        # Stored first: leaving a message usually ends with the caller hanging up.
        yield from ctx.service("store_voicemail", optional=True, session_id=ctx.session_id,
                               mailbox=mailbox, customer_id=ctx.customer_id)
        ctx.route("voicemail", mailbox)
        yield Exec("VoiceMail", f"{mailbox},{options}")
        return END_CALL


@register_step_type
class Callback(StepType):
    type_name = "callback"
    doc = "Offer a callback; on the confirm key, store the request for an agent."
    terminal = True
    waits_for_input = True
    keys: ClassVar = {
        "prompt": Key("prompt", required=True, doc="the offer: press 1 to be called back"),
        "confirm_digit": Key("digit", default="1"),
        "number": Key("text", default="${caller_id}"),
        "queue": Key("queue", doc="default: the flow's operator_queue"),
        "confirmed_prompt": Key("prompt"),
        "next": Key("target", doc="default: end, outcome callback"),
        "on_decline": Key("target", doc="default: the error fallback"),
    }

    def writes(self, step: Step) -> set[str]:
        return {"callback_id"}

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        confirm = str(params.get("confirm_digit") or "1")
        key = yield from ctx.play(params["prompt"], ALL_KEYS)
        if key is None:
            result = yield WaitForDigit(timeout_ms(CALLBACK_WAIT))
            key = key_of(result)
        if key != confirm:
            if params.get("on_decline"):
                return params["on_decline"]
            ctx.fail("callback not confirmed")
        raw = ctx.interpolate(params.get("number", "${caller_id}")).strip()
        # CALLERID(num) is caller-controlled: keep ASCII 0-9 only (str.isdigit() takes '١', '²').
        number = ("+" if raw.startswith("+") else "") + "".join(ch for ch in raw if ch in "0123456789")
        if len(number.lstrip("+")) < 3 or len(number) > 32:
            ctx.fail("no number to call back (caller id withheld?)")
        queue = params.get("queue") or ctx.operator_queue
        callback_id = yield from ctx.service(
            "request_callback", number=number, customer_id=ctx.customer_id, queue=queue,
            session_id=ctx.session_id, note=f"IVR {ctx.flow.name}/{step.name}")
        ctx.variables["callback_id"] = callback_id
        ctx.record_input("callback_number", number)
        ctx.route("callback", queue)
        if params.get("confirmed_prompt") is not None:
            yield from ctx.play(params["confirmed_prompt"])
        return params.get("next") or END_CALL


@register_step_type
class Goto(StepType):
    type_name = "goto"
    doc = "Jump to another step."
    keys: ClassVar = {"target": Key("target", required=True)}

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        return step.params["target"]
        yield  # a generator, like every step


@register_step_type
class Subflow(StepType):
    type_name = "subflow"
    doc = "Run another flow file (variables shared); continue at next when it ends."
    keys: ClassVar = {
        "flow": Key("flow", required=True, doc="file name without .yaml"),
        "next": Key("target", doc="default: end"),
    }

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        return CallSubflow(str(step.params["flow"]))
        yield  # a generator, like every step
