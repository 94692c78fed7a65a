"""Robustness of the flow engine (ivr/engine.py, ivr/steps/*) against a hostile channel,
odd database answers and hostile caller-controlled text.

The rule checked: whatever Asterisk, the database or the caller sends, ``feed()`` never
raises, the session reaches ``Exit``, every command is one well-formed AGI line, a
caller hanging up at any moment leaves a complete session record (outcome, path and
inputs so far, PIN masked), and caller text is never interpolated as a template.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import DEAD, ENV, Phone, make_flow
from ivr.commands import (
    AgiResult, CallerHangup, ChannelCommand, Exit, ServiceCall, ServiceResult, SetVariable,
)
from ivr.engine import FlowSession, key_of
from ivr.library import FlowLibrary
from ivr.simulator import demo_services

FLOWS_DIR = Path(__file__).resolve().parent.parent / "flows"
OPEN = "2026-11-24T10:00:00+08:00"

# One flow that goes through every step reading the database or the caller.
DATA_STEPS = {
    "auth": {"type": "authenticate", "account_prompt": "Account", "pin_prompt": "PIN",
             "max_attempts": 2, "next": "load", "on_failure": "load"},
    "load": {"type": "lookup", "fields": ["name", "tier", "balance_cents", "last_payment_at",
                                          "ticket_reference", "open_tickets"], "next": "greet"},
    "greet": {"type": "say", "prompt": "Hello ${name}, ticket ${ticket_reference}", "next": "money"},
    "money": {"type": "say", "money": "${balance_cents}", "next": "when"},
    "when": {"type": "say", "date": "${last_payment_at}", "next": "route"},
    "route": {"type": "branch", "conditions": [{"if": "tier == 'vip'", "goto": "ticket"}],
              "else": "ticket"},
    "ticket": {"type": "ticket", "summary": "fault for ${name}", "next": "cb"},
    "cb": {"type": "callback", "prompt": {"sound": "offer"}, "next": "q", "on_decline": "q"},
    "q": {"type": "queue", "queue": "support", "after": "survey"},
    "survey": {"type": "survey", "questions": [{"id": "q1", "prompt": {"sound": "q1"}}]},
}
DATA_FLOW = make_flow(DATA_STEPS, name="data", max_steps=60)

ODD_RECORDS = [
    None, {}, {"customer_id": None}, {"customer_id": 1}, {"customer_id": 1, "tier": None, "name": None},
    {"customer_id": 1, "tier": "bogus", "balance_cents": "abc", "last_payment_at": "yesterday"},
    {"customer_id": 1, "tier": ["vip"], "name": 'O"Brien\n${caller_id}', "balance_cents": None},
    {"customer_id": {"a": 1}, "tier": {"x": 1}, "balance_cents": 10 ** 40, "last_payment_at": 10 ** 20},
    {"customer_id": 1, "balance_cents": float("nan"), "last_payment_at": float("inf"), "open_tickets": "many"},
    {"customer_id": 1, "balance_cents": -5.5, "ticket_reference": 5, "last_payment_at": -1e18},
    [1, 2], 7, "T-1\nEXEC Dial", b"bytes", True,
]
ODD_SERVICE_REPLIES = st.one_of(
    st.sampled_from(ODD_RECORDS).map(lambda v: ServiceResult(value=v)),
    st.sampled_from([ServiceResult(error="OperationalError: database is down"), ServiceResult(error=""),
                     AgiResult(200, "0"), CallerHangup()]),
)
HOSTILE_AGI = st.one_of(
    st.sampled_from([AgiResult(200, str(ord(k))) for k in "0123456789*#"]),
    st.builds(AgiResult,
              code=st.sampled_from([200, 200, 200, 510, 520, 511, 0, -1, 999]),
              result=st.one_of(st.sampled_from(["", "-1", "-2", "0", "1", "1114112", "-99999",
                                                "9" * 5000, "é", "١٢٣", "12a", " 1", "\x00",
                                                "1#2", "0x31", "1e5"]),
                               st.text("0123456789*#", max_size=70)),
              data=st.sampled_from([None, "timeout", "TIMEOUT", "ANSWER", "", "é\n", "x" * 5000,
                                    "${caller_id}", "BUSY", "\x00"]),
              endpos=st.sampled_from([None, 0, -1, 10 ** 30]),
              message=st.sampled_from(["", "Invalid or unknown command", "Usage:\nline two\n"])),
)
HOSTILE_ENVS = [
    dict(ENV),
    {**ENV, "agi_calleridname": 'Evil" \\ \n EXEC System ${caller_id} 中文\r\n', "agi_callerid": "${caller_name}\n"},
    {**ENV, "agi_callerid": "9" * 5000, "agi_arg_1": "x" * 100_000, "agi_dnid": "\x00",
     "hotline_args": {"lang": "zh\n", "a b": "1", "x" * 50: "y"}},
    {"agi_callerid": None},
]


def _library():
    return FlowLibrary(FLOWS_DIR)


def _check_command(command, gone: bool) -> None:
    """Every channel command is one AGI line; after the caller left, only SET VARIABLE."""
    if isinstance(command, ChannelCommand):
        line = command.agi_line()
        assert "\n" not in line and "\r" not in line, line[:80]
        if gone:
            assert isinstance(command, SetVariable), command


def _run_hostile(session: FlowSession, draw_agi, draw_service, max_feeds: int = 1500):
    command = session.start()
    gone = False
    for _ in range(max_feeds):
        if isinstance(command, Exit):
            return command
        _check_command(command, gone)
        reply = draw_service() if isinstance(command, ServiceCall) else draw_agi()
        if isinstance(reply, CallerHangup) or (isinstance(reply, AgiResult) and reply.code == 511):
            gone = True
        command = session.feed(reply)
    raise AssertionError(f"no Exit after {max_feeds} feeds")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), env=st.sampled_from(HOSTILE_ENVS))
def test_hostile_replies_and_odd_records_on_the_data_flow_end_in_an_exit(data, env):
    """Huge/negative/non-ASCII results, 510/520/511, odd customer records: the session
    exits, never raises, and every AGI line stays one line."""
    session = FlowSession(DATA_FLOW, {**env, "now": OPEN})
    exit_ = _run_hostile(session, lambda: data.draw(HOSTILE_AGI), lambda: data.draw(ODD_SERVICE_REPLIES))
    assert session.finished and session.outcome == exit_.outcome


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), env=st.sampled_from(HOSTILE_ENVS))
def test_hostile_replies_on_the_example_flows_end_in_an_exit(data, env):
    """The same hostile channel on the shipped flows (subflows included)."""
    library = _library()
    flow = library.get(data.draw(st.sampled_from(library.names())))
    session = FlowSession(flow, {**env, "now": OPEN}, flows=library)
    _run_hostile(session, lambda: data.draw(HOSTILE_AGI), lambda: data.draw(ODD_SERVICE_REPLIES))


@pytest.mark.parametrize("record", ODD_RECORDS, ids=[f"record{i}" for i in range(len(ODD_RECORDS))])
def test_an_odd_customer_record_never_crashes_a_step(record):
    """A lookup answering a record with missing keys, None tier, wrong types: the steps
    treat it as data (flow error at worst), never an internal error."""
    steps = {"load": {"type": "lookup", "fields": ["name", "tier", "balance_cents"], "next": "route"},
             "route": {"type": "branch", "conditions": [{"if": "tier == 'vip'", "goto": "q"}], "else": "q"},
             "q": {"type": "queue", "queue": "support"}}
    session = FlowSession(make_flow(steps, name="odd"), dict(ENV, now=OPEN))

    def service():
        return ServiceResult(value=record)

    exit_ = _run_hostile(session, lambda: AgiResult(200, "0"), service)
    assert not [e for e in session.errors if "internal error" in e], session.errors
    assert exit_.outcome.kind in ("queued", "error")


def test_caller_name_is_spoken_as_text_never_as_a_template_or_a_second_command():
    """CallerIDName `Evil" \\ <newline> EXEC ... ${caller_id}`: one AGI line per command, the
    `${caller_id}` in it is not expanded, and no line starts a second command."""
    flow = make_flow({"hi": {"type": "say", "prompt": "Hello ${caller_name}", "log": "name ${caller_name}"}},
                     name="hi")
    env = {**ENV, "agi_calleridname": 'Evil" \\ \n EXEC System ${caller_id}\r\n', "agi_callerid": "SECRET123"}
    phone = Phone(flow, env=env)
    phone.run()
    lines = phone.lines()
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert not any("SECRET123" in line for line in lines)
    assert not any(line.startswith("EXEC System") for line in lines)
    assert phone.session.variables["caller_name"].startswith('Evil"')


def test_key_of_ignores_garbage_results():
    """Results that are not the ASCII code of a phone key are 'no key'."""
    for result in ["", "-1", "0", "1114112", "99999999999", "١", "é", " 49x", "4 9", "\x00"]:
        assert key_of(AgiResult(200, result)) is None, result
    assert key_of(AgiResult(200, "49")) == "1"
    assert key_of(AgiResult(520, "49")) is None


def test_key_of_a_superscript_digit_is_no_key():
    """'²' is a Unicode digit but not a number int() reads: 'no key', not a ValueError."""
    assert key_of(AgiResult(200, "²")) is None


def test_a_garbled_playback_result_is_a_failed_try_not_an_internal_error():
    """A menu whose prompt reply is garbled goes on as if no key was pressed."""
    flow = make_flow({"m": {"type": "menu", "prompt": {"sound": "menu"}, "choices": {"1": "bye"}},
                      "bye": {"type": "hangup"}}, name="garbled")
    session = FlowSession(flow, dict(ENV))
    _run_hostile(session, lambda: AgiResult(200, "²"), lambda: ServiceResult())
    assert not [e for e in session.errors if "internal error" in e], session.errors


def test_callback_number_keeps_only_ascii_digits():
    """CALLERID(num) is caller-controlled: the stored callback number is 0-9 (and +) only."""
    flow = make_flow({"cb": {"type": "callback", "prompt": {"sound": "offer"}}}, name="cb")
    calls = []

    class Services:
        def request_callback(self, **kwargs):
            calls.append(kwargs)
            return "cb-1"

    phone = Phone(flow, ["1"], env={**ENV, "agi_callerid": "١٣٨٠٠٠٠٠٠٠١"}, services=Services())
    phone.run()
    assert all(set(c["number"]) <= set("+0123456789") for c in calls), calls


# ---------------------------------------------------------------- hang-ups

class _Recorder(Phone):
    """A Phone that notes every reply it gives, so a run can be replayed to any point."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.replies: list = []

    def answer(self, command):
        reply = super().answer(command)
        self.replies.append(reply)
        return reply


def _full_run():
    library = _library()
    phone = _Recorder(library.get("main"), ["1", "100001#", "1234#", "1", "2", "0"],
                      env=dict(ENV, now=OPEN), services=demo_services(), flows=library)
    phone.run()
    return library, phone


def test_hanging_up_at_any_moment_leaves_a_complete_session_record():
    """Replay a VIP's call on flows/main.yaml and hang up after each of its commands in
    turn: every time the session exits at once with an outcome, the path and inputs so
    far (a prefix of the full call's), the PIN masked, and only SET VARIABLE after."""
    library, full = _full_run()
    full_trace = [e["step"] for e in full.session.trace]
    assert len(full.replies) > 20
    for cut in range(1, len(full.replies)):
        session = FlowSession(library.get("main"), dict(ENV, now=OPEN), demo_services(),
                              flows=library, clock=lambda: 1_795_388_889.0)
        command = session.start()
        for reply in full.replies[:cut]:
            command = session.feed(reply)
        if isinstance(command, Exit):
            continue
        command = session.feed(CallerHangup())
        for _ in range(5):
            if isinstance(command, Exit):
                break
            assert isinstance(command, SetVariable), (cut, command)
            command = session.feed(DEAD)
        assert isinstance(command, Exit), cut
        outcome = command.outcome
        assert outcome.kind in ("caller_hangup", "queued", "callback", "voicemail", "transferred"), (cut, outcome)
        trace = [e["step"] for e in session.trace]
        assert trace == full_trace[:len(trace)], cut
        assert trace or cut <= 2, cut   # only ANSWER / SET VARIABLE HOTLINE_SESSION came before
        assert "1234" not in repr(session.inputs), cut
        assert session.inputs == full.session.inputs[:len(session.inputs)], cut


def test_a_dead_channel_reply_mid_prompt_ends_the_session():
    """511 on a playback (caller gone, no HANGUP line seen) ends the session like a hangup."""
    flow = make_flow({"m": {"type": "menu", "prompt": "Press 1", "choices": {"1": "bye"}},
                      "bye": {"type": "hangup"}}, name="dead")
    session = FlowSession(flow, dict(ENV))
    replies = iter([AgiResult(200, "0"), AgiResult(200, "1")])   # ANSWER, SET VARIABLE
    exit_ = _run_hostile(session, lambda: next(replies, DEAD), lambda: ServiceResult())
    assert exit_.outcome.kind == "caller_hangup"
    assert [e["step"] for e in session.trace] == ["m"]


# ---------------------------------------------------------------- numbers from flows and channels

@pytest.mark.parametrize("seconds, expected", [
    (float("nan"), 5000), (float("inf"), 5000), (-float("inf"), 5000), (10 ** 400, 5000),
    ("soon", 5000), (None, 5000), (1e300, 3_600_000), (-3, 1), (2.5, 2500),
])
def test_timeout_ms_never_raises_and_stays_in_range(seconds, expected):
    """A timeout that slipped past the validator (hand-built flow, old file) is the
    default or clamped to 1 ms..1 h, never an exception on the reactor."""
    from ivr.steps._common import timeout_ms
    assert timeout_ms(seconds) == expected


def test_a_menu_with_a_nan_timeout_still_runs():
    """A hand-built menu with `timeout: nan` waits the default time instead of crashing."""
    flow = make_flow({"m": {"type": "menu", "prompt": {"sound": "menu"}, "choices": {"1": "bye"},
                            "timeout": float("nan"), "retries": float("inf")},
                      "bye": {"type": "hangup"}}, name="nan")
    phone = Phone(flow, ["1"])
    phone.run()
    assert not [e for e in phone.session.errors if "internal error" in e], phone.session.errors
    assert [e["step"] for e in phone.session.trace] == ["m", "bye"]


def test_direct_dial_keeps_only_ascii_digits_of_the_rest():
    """The digits typed after the first key of a direct dial are ASCII 0-9 only: a garbled
    reply of other scripts' digits is not dialled."""
    flow = make_flow({"m": {"type": "menu", "prompt": {"sound": "menu"}, "choices": {"9": "bye"},
                            "direct_dial": {"pattern": r"[1-9]\d{3}", "max_digits": 4,
                                            "context": "from-internal"}},
                      "bye": {"type": "hangup"}}, name="dd")
    session = FlowSession(flow, dict(ENV))
    replies = iter([AgiResult(200, "0"), AgiResult(200, "1"), AgiResult(200, str(ord("1"))),
                    AgiResult(200, "٢٣٤")])
    _run_hostile(session, lambda: next(replies, AgiResult(200, "0")), lambda: ServiceResult())
    assert not any(i.get("var") == "direct_dial" for i in session.inputs), session.inputs


def test_an_agi_arg_with_a_non_ascii_number_is_ignored():
    """`agi_arg_²` in the AGI environment is not an argument (and not a crash)."""
    flow = make_flow({"bye": {"type": "hangup"}}, name="args")
    session = FlowSession(flow, {**ENV, "agi_arg_²": "x", "agi_arg_1": "y"})
    assert session.variables["arg_1"] == "y"
    assert not any(name.startswith("arg_") and name != "arg_1" for name in session.variables)
