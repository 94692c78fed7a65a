"""The queue, transfer/dial, voicemail, callback and goto steps: where the call goes and
which outcome it ends with."""
from __future__ import annotations

import pytest

from engine_helpers import ENV, HANGUP, TIMEOUT, Phone, drive, make_flow, make_step, ok
from ivr.commands import (
    CallerHangup, Exec, GetVariable, Hangup, Outcome, ServiceCall, ServiceResult, SetVariable, StreamFile,
)
from ivr.engine import FlowSession
from ivr.flow import STEP_TYPES
from ivr.memory_services import InMemoryServices
from ivr.steps.routing import normalise_destination, queue_priority

ENDS = {
    "survey": {"type": "hangup", "prompt": {"sound": "survey"}},
    "busy": {"type": "hangup", "prompt": {"sound": "busy"}},
    "declined": {"type": "hangup", "prompt": {"sound": "declined"}},
}


def flow_with(step, **options):
    return make_flow({"r": step, **ENDS}, start="r", **options)


# ---------------------------------------------------------------- queue

def queue(**params):
    return flow_with({"type": "queue", "queue": "support", **params})


def test_queue_sets_priority_then_queues_then_reads_the_status():
    """SET VARIABLE QUEUE_PRIO, EXEC Queue <queue>,t,,,<max_wait>, GET VARIABLE QUEUESTATUS."""
    phone = Phone(queue(max_wait=300))
    assert phone.run() == Outcome("queued", step="r", target="support")
    assert phone.commands[2:5] == [SetVariable("QUEUE_PRIO", "0"), Exec("Queue", "support,t,,,300"),
                                   GetVariable("QUEUESTATUS")]
    assert phone.lines()[-3:-1] == ['SET VARIABLE HOTLINE_OUTCOME "queued"', "HANGUP"]


def test_queue_priority_follows_the_tier():
    """The default priority map gives a vip 10, a key customer 5, others 0."""
    phone = Phone(queue(), env={**ENV})
    phone.session.variables["tier"] = "vip"
    phone.run()
    assert SetVariable("QUEUE_PRIO", "10") in phone.commands
    assert queue_priority({"vip": 10, "key": 5, "regular": 0}, "key") == 5
    assert queue_priority({"vip": 10, "regular": 1}, "unknown") == 1
    assert queue_priority(7, "vip") == 7


def test_queue_with_after_continues_once_the_agent_hangs_up():
    """after: Queue gets the c option (continue when the agent hangs up) and the flow goes on;
    the outcome stays queued."""
    phone = Phone(queue(after="survey"))
    assert phone.run() == Outcome("queued", step="r", target="support")
    assert Exec("Queue", "support,tc,,,600") in phone.commands
    assert phone.visited() == ["r", "survey"]


@pytest.mark.parametrize("status", ["TIMEOUT", "JOINEMPTY", "LEAVEEMPTY", "FULL"])
def test_queue_without_an_agent_goes_to_on_timeout(status):
    """QUEUESTATUS TIMEOUT/JOINEMPTY/LEAVEEMPTY/FULL: on_timeout, and the outcome is no longer queued."""
    phone = Phone(queue(on_timeout="busy"), queue_status=status)
    assert phone.run() == Outcome("completed", step="busy")


def test_queue_timeout_without_on_timeout_is_the_error_fallback():
    """No agent and no on_timeout: the operator fallback."""
    phone = Phone(queue(), queue_status="TIMEOUT")
    outcome = phone.run()
    assert outcome.kind == "error" and "TIMEOUT" in outcome.detail


def test_queue_caller_abandons():
    """The caller hanging up in the queue (EXEC result=-1) ends as queued, without HANGUP."""
    phone = Phone(queue(after="survey"), queue_status="HANGUP")
    assert phone.run() == Outcome("queued", step="r", target="support")
    assert not phone.of_type(Hangup)
    assert "survey" not in phone.visited()


def test_queue_missing_application_is_a_flow_error():
    """EXEC Queue answered -2 (app_queue not loaded) is an error, not a hangup."""
    session = FlowSession(queue(), ENV)
    commands = drive(session, lambda c: ok("-2") if isinstance(c, Exec) and c.application == "Queue"
                     and c.options.startswith("support") else ok("1"))
    assert commands[-1].outcome.kind == "error"


# ---------------------------------------------------------------- transfer / dial

@pytest.mark.parametrize("written, dialled", [
    ("PJSIP/1001", "PJSIP/1001"), ("Local/1001@from-internal", "Local/1001@from-internal"),
    ("1001@from-internal", "Local/1001@from-internal"),
])
def test_destination_forms(written, dialled):
    """The three destination forms of the spec."""
    assert normalise_destination(written) == dialled


@pytest.mark.parametrize("bad", ["1001", "PJSIP/1001,,U(evil)", "PJSIP/1&PJSIP/2", "", "1001@ctx,5"])
def test_destination_refuses_anything_that_could_inject_dial_options(bad):
    """A value that is not exactly one destination is refused."""
    assert normalise_destination(bad) is None


@pytest.mark.parametrize("type_name", ["transfer", "dial"])
def test_transfer_dials_and_ends_transferred(type_name):
    """EXEC Dial <destination>,<timeout>, then DIALSTATUS; answered = outcome transferred."""
    phone = Phone(flow_with({"type": type_name, "destination": "2000@from-internal", "timeout": 20}))
    assert phone.run() == Outcome("transferred", step="r", target="Local/2000@from-internal")
    assert phone.commands[2:4] == [Exec("Dial", "Local/2000@from-internal,20"), GetVariable("DIALSTATUS")]


def test_transfer_with_next_keeps_the_caller_after_the_call():
    """next: Dial gets the g option and the flow continues."""
    phone = Phone(flow_with({"type": "transfer", "destination": "PJSIP/1001", "next": "survey"}))
    assert phone.run().kind == "transferred"
    assert Exec("Dial", "PJSIP/1001,30,g") in phone.commands
    assert phone.visited() == ["r", "survey"]


def test_transfer_busy_goes_to_on_failure():
    """DIALSTATUS BUSY: on_failure, the outcome is not transferred."""
    phone = Phone(flow_with({"type": "transfer", "destination": "PJSIP/1001", "on_failure": "busy"}),
                  dial_status="BUSY")
    assert phone.run() == Outcome("completed", step="busy")


def test_transfer_failure_without_on_failure_is_the_error_fallback():
    """NOANSWER and no on_failure: the operator fallback."""
    phone = Phone(flow_with({"type": "transfer", "destination": "PJSIP/1001"}), dial_status="NOANSWER")
    outcome = phone.run()
    assert outcome.kind == "error" and "NOANSWER" in outcome.detail


def test_transfer_to_a_destination_built_from_input_is_checked():
    """A destination from a variable that is not a destination is a flow error, never dialled."""
    flow = flow_with({"type": "transfer", "destination": "${target}"}, variables={"target": "1001,,U(x)"})
    phone = Phone(flow)
    assert phone.run().kind == "error"
    assert not [c for c in phone.commands if isinstance(c, Exec) and c.application == "Dial"]


def test_transfer_caller_hangup_while_ringing():
    """The caller hanging up during Dial ends as transferred (the hand-off was under way)."""
    phone = Phone(flow_with({"type": "transfer", "destination": "PJSIP/1001"}), dial_status="HANGUP")
    assert phone.run() == Outcome("transferred", step="r", target="PJSIP/1001")


# ---------------------------------------------------------------- voicemail

def voicemail(**params):
    return flow_with({"type": "voicemail", "mailbox": "1000@default", "prompt": {"sound": "leave"}, **params})


def test_voicemail_records_then_runs_voicemail():
    """Prompt, store_voicemail, EXEC VoiceMail <mailbox>,<options>; outcome voicemail."""
    services = InMemoryServices([])
    phone = Phone(voicemail(), services=services)
    assert phone.run() == Outcome("voicemail", step="r", target="1000@default")
    assert Exec("VoiceMail", "1000@default,u") in phone.commands
    assert services.voicemails == [{"session_id": phone.session.session_id, "mailbox": "1000@default",
                                    "customer_id": None}]


def test_voicemail_service_error_still_takes_the_message():
    """store_voicemail failing is a warning: the caller still leaves a message."""
    session = FlowSession(voicemail(), ENV)
    commands = drive(session, lambda c: ServiceResult(error="db down") if isinstance(c, ServiceCall) else ok("0"))
    assert commands[-1].outcome.kind == "voicemail"
    assert any("db down" in w for w in session.warnings)


def test_voicemail_caller_hangs_up_after_the_message():
    """VoiceMail returning -1 (the usual end of a message) ends as voicemail."""
    session = FlowSession(voicemail(), ENV)
    commands = drive(session, lambda c: ok("-1") if isinstance(c, Exec) else
                     (ServiceResult() if isinstance(c, ServiceCall) else ok("0")))
    assert commands[-1].outcome == Outcome("voicemail", step="r", target="1000@default")


def test_voicemail_caller_hangup_during_the_prompt():
    """A hangup before the message starts is caller_hangup."""
    phone = Phone(voicemail(), inputs=[HANGUP], services=InMemoryServices([]))
    assert phone.run() == Outcome("caller_hangup", step="r")


def test_voicemail_check_refuses_bad_mailboxes():
    """mailbox must look like 1000@default; options are letters."""
    step = make_step("v", {"type": "voicemail", "mailbox": "1000@default,b", "options": "u;x"})
    assert len(STEP_TYPES["voicemail"].check(step)) == 2


# ---------------------------------------------------------------- callback

def callback(**params):
    return flow_with({"type": "callback", "prompt": {"sound": "offer"}, "confirmed_prompt": {"sound": "thanks"},
                      "queue": "regular", "on_decline": "declined", **params})


def test_callback_confirmed_stores_the_request():
    """The confirm key stores a callback to the caller's number; callback_id; outcome callback."""
    services = InMemoryServices([])
    phone = Phone(callback(), inputs=["1"], services=services)
    assert phone.run() == Outcome("callback", step="r", target="regular")
    assert services.callbacks[0]["number"] == "13800000001"
    assert services.callbacks[0]["queue"] == "regular"
    assert phone.session.variables["callback_id"] == "1"
    assert "thanks" in [c.filename for c in phone.of_type(StreamFile)]


def test_callback_other_key_or_timeout_is_a_decline():
    """Any other key, or none: on_decline."""
    for inputs in (["2"], [TIMEOUT]):
        services = InMemoryServices([])
        phone = Phone(callback(), inputs=inputs, services=services)
        assert phone.run().step == "declined"
        assert services.callbacks == []


def test_callback_decline_without_on_decline_is_the_error_fallback():
    """No on_decline: the operator fallback (spec default)."""
    flow = flow_with({"type": "callback", "prompt": {"sound": "offer"}})
    assert Phone(flow, inputs=[TIMEOUT], services=InMemoryServices([])).run().kind == "error"


def test_callback_default_queue_is_the_operator_queue():
    """queue defaults to the flow's operator_queue."""
    services = InMemoryServices([])
    flow = flow_with({"type": "callback", "prompt": {"sound": "offer"}}, operator_queue="frontdesk")
    assert Phone(flow, inputs=["1"], services=services).run().target == "frontdesk"


def test_callback_without_a_caller_number_is_a_flow_error():
    """A withheld caller id cannot be called back: error path, nothing stored."""
    services = InMemoryServices([])
    phone = Phone(callback(), inputs=["1"], services=services, env={**ENV, "agi_callerid": "unknown"})
    assert phone.run().kind == "error"
    assert services.callbacks == []


def test_callback_service_error_is_a_flow_error():
    """The request not stored must not be confirmed to the caller."""
    session = FlowSession(callback(), ENV)
    replies = {"StreamFile": ok(str(ord("1"))), "ServiceCall": ServiceResult(error="db down")}
    commands = drive(session, lambda c: replies.get(type(c).__name__, ok("1")))
    assert commands[-1].outcome.kind == "error"
    assert StreamFile("thanks", "") not in commands


def test_callback_caller_hangup_during_the_offer():
    """A hangup during the offer ends the call there."""
    phone = Phone(callback(), inputs=[HANGUP], services=InMemoryServices([]))
    assert phone.run() == Outcome("caller_hangup", step="r")


# ---------------------------------------------------------------- goto

def test_goto_jumps():
    """goto: target is the next step."""
    phone = Phone(make_flow({"g": {"type": "goto", "target": "busy"}, **ENDS}, start="g"))
    assert phone.run().step == "busy"
    assert phone.visited() == ["g", "busy"]


def test_goto_caller_hangup_right_after():
    """A hangup reported at the first command after a goto ends at the target step."""
    session = FlowSession(make_flow({"g": {"type": "goto", "target": "busy"}, **ENDS}, start="g"), ENV)
    commands = drive(session, lambda c: CallerHangup() if isinstance(c, StreamFile) else ok("1"))
    assert commands[-1].outcome == Outcome("caller_hangup", step="busy")
