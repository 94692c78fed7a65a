"""The flow engine (ivr.engine.FlowSession): start and end sequences, variables, caller
hangups, flow errors, the operator fallback, the step limit, subflows and masking."""
from __future__ import annotations

import re
from typing import ClassVar

import pytest

from engine_helpers import DEAD, ENV, Phone, drive, make_flow, ok
from ivr.commands import (
    AgiResult, Answer, CallerHangup, Exec, Exit, GetData, Hangup, Outcome, SayAlpha, ServiceCall,
    ServiceResult, SetVariable, StreamFile, Verbose,
)
from ivr.engine import MASK, FlowSession
from ivr.flow import STEP_TYPES, Key, StepType

SAY_TWICE = {
    "hello": {"type": "say", "prompt": {"sound": "hello"}, "next": "bye"},
    "bye": {"type": "say", "prompt": {"sound": "bye"}},
}


def test_start_answers_then_publishes_the_session_id():
    """The first two commands are ANSWER and SET VARIABLE HOTLINE_SESSION <session id>."""
    session = FlowSession(make_flow(SAY_TWICE), ENV, session_id="abc123")
    assert session.start() == Answer()
    assert session.feed(ok()) == SetVariable("HOTLINE_SESSION", "abc123")
    assert session.feed(ok("1")) == StreamFile("hello", "")


def test_session_id_defaults_to_a_uuid4_hex():
    """Without a session id the engine makes a fresh 32-hex-digit one per session."""
    first, second = FlowSession(make_flow(SAY_TWICE), ENV), FlowSession(make_flow(SAY_TWICE), ENV)
    assert re.fullmatch(r"[0-9a-f]{32}", first.session_id)
    assert first.session_id != second.session_id


def test_normal_end_sets_the_outcome_variable_then_hangs_up():
    """A flow that runs out of steps ends: HOTLINE_OUTCOME completed, HANGUP, Exit(completed)."""
    phone = Phone(make_flow(SAY_TWICE))
    outcome = phone.run()
    assert outcome == Outcome("completed", step="bye")
    assert phone.lines()[-3:-1] == ['SET VARIABLE HOTLINE_OUTCOME "completed"', "HANGUP"]
    assert phone.session.finished and phone.session.outcome == outcome


def test_trace_lists_every_step_entered_in_order():
    """session.trace holds {step, type, at} for each step, in the order visited."""
    phone = Phone(make_flow(SAY_TWICE))
    phone.run()
    assert [(e["step"], e["type"]) for e in phone.session.trace] == [("hello", "say"), ("bye", "say")]
    assert all(isinstance(e["at"], float) for e in phone.session.trace)


def test_always_defined_variables_come_from_the_agi_environment():
    """caller_id, dnid, channel, args and query parameters become variables; 'unknown' is none."""
    env = {**ENV, "agi_calleridname": "unknown", "agi_arg_1": "vip", "agi_arg_2": "x",
           "hotline_args": {"lang": "zh", "bad name": "ignored"}, "now": 1_795_000_000}
    session = FlowSession(make_flow(SAY_TWICE, language="zh", variables={"greeted": False}), env,
                          session_id="s1")
    v = session.variables
    assert (v["caller_id"], v["caller_name"], v["dnid"]) == ("13800000001", None, "4008001234")
    assert (v["channel"], v["uniqueid"]) == ("PJSIP/trunk-00000001", "1795388889.1")
    assert (v["arg_1"], v["arg_2"], v["arg_lang"]) == ("vip", "x", "zh")
    assert "arg_bad name" not in v
    assert (v["language"], v["session_id"], v["flow"], v["now"]) == ("zh", "s1", "test", 1_795_000_000)
    assert (v["customer_id"], v["tier"], v["authenticated"], v["greeted"]) == (None, "regular", False, False)


def test_agi_environment_query_is_read_like_hotline_args():
    """An ivr.agi.AgiEnvironment's parsed query (agi://host/main?lang=zh) gives arg_lang."""
    from ivr.agi import AgiEnvironment
    env = AgiEnvironment({**ENV, "agi_request": "agi://127.0.0.1:4573/main?lang=zh"})
    assert FlowSession(make_flow(SAY_TWICE), env).variables["arg_lang"] == "zh"


@pytest.mark.parametrize("hangup_at", range(4))
def test_caller_hangup_at_any_command_ends_cleanly(hangup_at):
    """CallerHangup at any point: outcome caller_hangup at the current step, trace kept,
    only SET VARIABLE HOTLINE_OUTCOME sent afterwards."""
    session = FlowSession(make_flow(SAY_TWICE), ENV)
    commands = [session.start()]
    for _ in range(hangup_at):
        commands.append(session.feed(ok()))
    after = [session.feed(CallerHangup())]
    after.append(session.feed(ok("1")))
    assert after[0] == SetVariable("HOTLINE_OUTCOME", "caller_hangup")
    assert isinstance(after[1], Exit) and after[1].outcome.kind == "caller_hangup"
    expected_step = {0: None, 1: None, 2: "hello", 3: "bye"}[hangup_at]
    assert after[1].outcome.step == expected_step
    assert [e["step"] for e in session.trace] == ["hello", "bye"][:max(0, hangup_at - 1)]


def test_dead_channel_reply_is_a_caller_hangup():
    """A 511 reply ends the session as caller_hangup without a HANGUP command."""
    session = FlowSession(make_flow(SAY_TWICE), ENV)
    commands = drive(session, lambda c: DEAD if isinstance(c, StreamFile) else ok("1"))
    assert commands[-1].outcome.kind == "caller_hangup"
    assert not any(isinstance(c, Hangup) for c in commands)


def test_minus_one_from_a_playback_in_progress_is_a_caller_hangup():
    """STREAM FILE answered result=-1 with an endpos past 0 means the caller hung up."""
    session = FlowSession(make_flow(SAY_TWICE), ENV)
    commands = drive(session, lambda c: ok("-1", endpos=24160) if isinstance(c, StreamFile) else ok("1"))
    assert commands[-1].outcome == Outcome("caller_hangup", step="hello")


def test_missing_sound_file_is_skipped_with_a_warning():
    """STREAM FILE result=-1 endpos=0 (no such file) does not end the call; it is noted."""
    phone = Phone(make_flow(SAY_TWICE), missing_sounds={"hello"})
    assert phone.run().kind == "completed"
    assert phone.visited() == ["hello", "bye"]
    assert any("hello" in w for w in phone.session.warnings)


def test_invalid_command_reply_goes_to_on_error():
    """A 510 reply is a flow error: HOTLINE_ERROR is set and the flow's on_error step runs."""
    flow = make_flow({**SAY_TWICE, "sorry": {"type": "hangup", "prompt": {"sound": "sorry"}}},
                     on_error="sorry")
    session = FlowSession(flow, ENV)
    replies = iter([ok(), ok("1"), AgiResult(510, message="Invalid or unknown command")])
    commands = drive(session, lambda c: next(replies, ok("1")))
    lines = [c.agi_line() for c in commands if not isinstance(c, Exit)]
    assert lines[3].startswith("SET VARIABLE HOTLINE_ERROR") and "510" in lines[3]
    assert lines[4] == 'STREAM FILE sorry ""'
    assert commands[-1].outcome.kind == "completed"
    assert commands[-1].outcome.detail.startswith("on_error:")
    assert [e["step"] for e in session.trace] == ["hello", "sorry"]


def test_usage_reply_without_on_error_takes_the_operator_fallback():
    """A 520 reply with no on_error: HOTLINE_ERROR, EXEC Queue <operator_queue>,t, outcome error,
    and no HANGUP (the dialplan decides what follows)."""
    flow = make_flow(SAY_TWICE, operator_queue="frontdesk")
    session = FlowSession(flow, ENV)
    commands = drive(session, lambda c: AgiResult(520) if isinstance(c, StreamFile) else ok("1"))
    tail = commands[-4:]
    assert isinstance(tail[0], SetVariable) and tail[0].name == "HOTLINE_ERROR"
    assert tail[1:3] == [Exec("Queue", "frontdesk,t"), SetVariable("HOTLINE_OUTCOME", "error")]
    assert tail[3].outcome.kind == "error"
    assert (tail[3].outcome.step, tail[3].outcome.target) == ("hello", "frontdesk")
    assert not any(isinstance(c, Hangup) for c in commands)


def test_error_inside_on_error_handling_goes_to_the_builtin_fallback():
    """on_error runs once: a second error goes straight to the operator fallback."""
    flow = make_flow({
        "check": {"type": "branch", "conditions": [{"if": "missing_one > 1", "goto": "check"}], "else": "check"},
        "oops": {"type": "branch", "conditions": [{"if": "missing_two > 1", "goto": "oops"}], "else": "oops"},
    }, on_error="oops")
    phone = Phone(flow)
    outcome = phone.run()
    assert outcome.kind == "error" and "missing_two" in outcome.detail
    assert phone.visited() == ["check", "oops"]
    assert Exec("Queue", "operator,t") in phone.commands


def test_undefined_variable_in_an_expression_is_a_flow_error():
    """An expression naming an unknown variable routes to on_error, never raises."""
    flow = make_flow({
        "check": {"type": "branch", "conditions": [{"if": "nope == 1", "goto": "bye"}], "else": "bye"},
        "bye": {"type": "hangup"},
        "sorry": {"type": "hangup", "prompt": {"sound": "sorry"}},
    }, on_error="sorry")
    phone = Phone(flow)
    assert phone.run() == Outcome("completed", step="sorry",
                                  detail=phone.outcome.detail)
    assert "nope" in phone.session.errors[0]


def test_service_error_takes_the_fallback():
    """A ServiceResult with an error is a flow error (here: no on_error, so the operator)."""
    flow = make_flow({"who": {"type": "lookup", "by": "phone", "value": "${caller_id}",
                              "fields": ["name"], "next": "bye"},
                      "bye": {"type": "hangup"}})
    session = FlowSession(flow, ENV)
    commands = drive(session, lambda c: ServiceResult(error="OperationalError: db down")
                     if isinstance(c, ServiceCall) else ok("1"))
    assert commands[-1].outcome.kind == "error"
    assert "db down" in commands[-1].outcome.detail


def test_wrong_kind_of_result_is_a_flow_error_not_an_exception():
    """A ServiceResult fed for a channel command is handled as a flow error."""
    session = FlowSession(make_flow(SAY_TWICE), ENV)
    commands = drive(session, lambda c: ServiceResult(value=1) if isinstance(c, StreamFile) else ok("1"))
    assert commands[-1].outcome.kind == "error"


def test_step_limit_ends_in_the_fallback_even_with_on_error():
    """A goto loop stops after max_steps with outcome step_limit and the operator queue."""
    flow = make_flow({"a": {"type": "goto", "target": "b"}, "b": {"type": "goto", "target": "a"},
                      "sorry": {"type": "hangup"}}, on_error="sorry", max_steps=10)
    phone = Phone(flow)
    outcome = phone.run()
    assert outcome.kind == "step_limit" and outcome.target == "operator"
    assert len(phone.session.trace) == 10
    assert "sorry" not in phone.visited()
    assert phone.lines()[-3:-1] == ['EXEC Queue "operator,t"', 'SET VARIABLE HOTLINE_OUTCOME "step_limit"']


def test_max_steps_argument_overrides_the_flow():
    """FlowSession(max_steps=n) caps the call at n step entries."""
    flow = make_flow({"a": {"type": "goto", "target": "a"}})
    phone = Phone(flow, session_options={"max_steps": 3})
    assert phone.run().kind == "step_limit"
    assert len(phone.session.trace) == 3


SUB = make_flow({
    "set_it": {"type": "set", "vars": {"from_sub": "caller_id + '!'"}, "next": "say_it"},
    "say_it": {"type": "say", "prompt": {"sound": "sub"}},
}, name="sub", variables={"sub_default": 7})


def test_subflow_runs_with_shared_variables_and_returns_to_next():
    """A subflow sees and sets the caller's variables, then the calling flow goes on at next."""
    flow = make_flow({"call": {"type": "subflow", "flow": "sub", "next": "after"},
                      "after": {"type": "say", "prompt": "Back with ${from_sub}"}})
    phone = Phone(flow, flows={"sub": SUB})
    assert phone.run().kind == "completed"
    assert phone.visited() == ["call", "set_it", "say_it", "after"]
    assert [e.get("flow") for e in phone.session.trace] == [None, "sub", "sub", None]
    assert phone.session.variables["from_sub"] == "13800000001!"
    assert phone.session.variables["sub_default"] == 7
    assert SayAlpha("13800000001") in phone.commands   # the '!' is not sayable


def test_subflow_without_next_ends_the_call_when_it_ends():
    """When the subflow ends and the subflow step has no next, the call ends (completed)."""
    flow = make_flow({"call": {"type": "subflow", "flow": "sub"}})
    phone = Phone(flow, flows=lambda name: SUB)
    assert phone.run() == Outcome("completed", step="say_it")


def test_terminal_step_in_a_subflow_ends_the_whole_call():
    """A hangup step inside a subflow does not return to the calling flow."""
    sub = make_flow({"bye": {"type": "hangup"}}, name="sub")
    flow = make_flow({"call": {"type": "subflow", "flow": "sub", "next": "after"},
                      "after": {"type": "say", "prompt": {"sound": "never"}}})
    phone = Phone(flow, flows={"sub": sub})
    assert phone.run() == Outcome("completed", step="bye")
    assert "after" not in phone.visited()


def test_missing_subflow_is_a_flow_error():
    """A subflow that is not served takes the error path."""
    flow = make_flow({"call": {"type": "subflow", "flow": "nowhere", "next": "call"}})
    phone = Phone(flow, flows={})
    outcome = phone.run()
    assert outcome.kind == "error" and "nowhere" in outcome.detail


def test_error_in_a_subflow_without_on_error_uses_the_callers_on_error():
    """The nearest on_error wins; the subflow is left when the caller's on_error runs."""
    sub = make_flow({"bad": {"type": "set", "vars": {"x": "undefined_thing"}}}, name="sub")
    flow = make_flow({"call": {"type": "subflow", "flow": "sub", "next": "after"},
                      "after": {"type": "hangup"},
                      "sorry": {"type": "hangup", "prompt": {"sound": "sorry"}}}, on_error="sorry")
    phone = Phone(flow, flows={"sub": sub})
    assert phone.run().step == "sorry"
    assert phone.visited() == ["call", "bad", "sorry"]


def test_subflow_calling_itself_stops_at_the_nesting_limit():
    """Recursion through subflows is a flow error, not a crash."""
    loop = make_flow({"again": {"type": "subflow", "flow": "loop"}}, name="loop", max_steps=1000)
    phone = Phone(loop, flows={"loop": loop})
    outcome = phone.run()
    assert outcome.kind == "error" and "nested" in outcome.detail


def test_masked_input_never_appears_in_clear():
    """A masked collect keeps its value for the flow but shows •••• in inputs and public variables."""
    flow = make_flow({"card": {"type": "collect", "var": "card", "prompt": {"sound": "enter"},
                               "mask": True, "next": "bye"}, "bye": {"type": "hangup"}})
    phone = Phone(flow, inputs=["4111111111111111#"])
    phone.run()
    session = phone.session
    assert session.inputs == [{"step": "card", "var": "card", "value": MASK}]
    assert session.variables["card"] == "4111111111111111"
    assert session.public_variables()["card"] == MASK
    assert "4111111111111111" not in repr(session.trace) + repr(session.inputs) + repr(session.outcome)


def test_feed_after_exit_repeats_the_exit():
    """Once finished, feeding again returns the same Exit (the driver may race a hangup)."""
    phone = Phone(make_flow(SAY_TWICE))
    phone.run()
    assert phone.session.feed(CallerHangup()) == phone.exit


def test_feed_before_start_is_our_own_bug():
    """Feeding a session that was never started is a programming error and says so."""
    with pytest.raises(RuntimeError, match="before start"):
        FlowSession(make_flow(SAY_TWICE), ENV).feed(ok())


class _Exploding(StepType):
    type_name = "explode"
    keys: ClassVar = {"next": Key("target")}

    def run(self, step, ctx):
        yield StreamFile("tick")
        raise ZeroDivisionError("step bug")


def test_a_bug_in_a_step_type_becomes_the_operator_fallback():
    """An exception inside a step's code is a flow error, never an exception out of feed()."""
    registry = {**STEP_TYPES, "explode": _Exploding()}
    flow = make_flow({"bang": {"type": "say", "prompt": {"sound": "x"}}})
    flow.steps["bang"].type = "explode"
    session = FlowSession(flow, ENV, registry=registry)
    commands = drive(session, lambda c: ok("1"))
    assert commands[-1].outcome.kind == "error"
    assert "ZeroDivisionError" in commands[-1].outcome.detail


def test_log_key_writes_a_verbose_line():
    """A step's log text is interpolated and sent as VERBOSE."""
    flow = make_flow({"hello": {"type": "say", "prompt": {"sound": "hi"}, "log": "caller ${caller_id}"}})
    phone = Phone(flow)
    phone.run()
    verbose = phone.of_type(Verbose)
    assert len(verbose) == 1 and verbose[0].message.endswith("hello: caller 13800000001")


def test_routed_outcome_survives_a_hangup_in_the_queue():
    """A caller who hangs up while queued ends as queued (target = the queue), not caller_hangup."""
    flow = make_flow({"q": {"type": "queue", "queue": "support"}})
    phone = Phone(flow, queue_status="HANGUP")
    assert phone.run() == Outcome("queued", step="q", target="support")
    assert phone.lines()[-2] == 'SET VARIABLE HOTLINE_OUTCOME "queued"'


def test_fixed_now_in_the_environment_sets_the_now_variable():
    """env['now'] (ISO text with an offset) fixes the call's time."""
    env = {**ENV, "now": "2026-11-24T10:00:00+08:00"}
    session = FlowSession(make_flow(SAY_TWICE), env)
    assert session.variables["now"] == 1795485600


def test_get_data_failure_is_not_mistaken_for_a_hangup():
    """GET DATA result=-1 (its prompt file is missing) is read as no input; the next
    reply tells whether the caller is still there."""
    flow = make_flow({"ask": {"type": "collect", "var": "n", "prompt": {"sound": "ask"},
                              "retries": 2, "on_exhausted": "bye"},
                      "bye": {"type": "hangup"}})
    session = FlowSession(flow, ENV)
    commands = drive(session, lambda c: ok("-1") if isinstance(c, GetData) else ok("1"))
    assert commands[-1].outcome == Outcome("completed", step="bye")
    assert sum(isinstance(c, GetData) for c in commands) == 2


def test_error_messages_never_quote_a_masked_value():
    """An expression error that would quote a masked value shows •••• instead."""
    flow = make_flow({"card": {"type": "collect", "var": "card", "prompt": {"sound": "enter"}, "mask": True,
                               "next": "use"},
                      "use": {"type": "set", "vars": {"n": "int(card)"}}})
    phone = Phone(flow, inputs=["12*34#"])
    outcome = phone.run()
    assert outcome.kind == "error"
    assert "12*34" not in outcome.detail + repr(phone.session.errors) + repr(phone.channel_vars)
    assert MASK in outcome.detail


def test_a_bug_in_the_engine_itself_still_reaches_the_operator(monkeypatch):
    """Even an exception in the engine's own walk ends in the operator fallback, not a raise."""
    session = FlowSession(make_flow(SAY_TWICE), ENV)

    def broken(*args):
        raise ZeroDivisionError("engine bug")

    monkeypatch.setattr(session, "_enter", broken)
    commands = drive(session, lambda c: ok("1"))
    assert Exec("Queue", "operator,t") in commands
    assert commands[-1].outcome.kind == "error"
