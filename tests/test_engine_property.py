"""Property: whatever Asterisk and the database answer, a session ends with an Exit, soon,
without raising, and sends nothing but SET VARIABLE once the caller is gone."""
from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import DEAD, ENV, key, make_flow, ok, typed
from ivr.commands import AgiResult, CallerHangup, Exit, ServiceCall, ServiceResult, SetVariable
from ivr.engine import FlowSession

MAX_FEEDS = 1500

SURVEY = make_flow({
    "ask": {"type": "survey", "questions": [{"id": "q1", "prompt": {"sound": "q1"}}], "next": "thanks"},
    "thanks": {"type": "say", "prompt": "Thank you ${caller_name}"},
}, name="survey")

FULL_STEPS = {
    "lang": {"type": "language", "prompt": {"en": "English 1", "zh": "中文 2"}, "choices": {"1": "en", "2": "zh"},
             "next": "hours"},
    "hours": {"type": "hours", "timezone": "Asia/Shanghai", "open": {"mon-fri": ["09:00-18:00"]},
              "if_open": "auth", "if_closed": "vm"},
    "auth": {"type": "authenticate", "account_prompt": "Account", "pin_prompt": "PIN", "max_attempts": 2,
             "next": "load", "on_failure": "menu"},
    "load": {"type": "lookup", "fields": ["balance_cents", "ticket_reference"], "next": "menu"},
    "menu": {"type": "menu", "prompt": "1 balance 2 ticket 3 card 0 agent",
             "choices": {"1": "balance", "2": "ticket", "3": "card", "0": "route", "9": "fault"},
             "retries": 2, "on_exhausted": "route",
             "direct_dial": {"pattern": "^[4-8][0-9]{2}$", "max_digits": 3, "context": "from-internal"}},
    "balance": {"type": "say", "money": "${balance_cents}", "next": "menu"},
    "ticket": {"type": "say", "prompt": "Ticket ${ticket_reference}", "next": "again"},
    "again": {"type": "goto", "target": "menu"},
    "card": {"type": "collect", "var": "card", "prompt": "Card", "luhn": True, "mask": True, "max_digits": 16,
             "retries": 2, "next": "route"},
    "fault": {"type": "set", "vars": {"kind": "'line' + undefined_name"}, "next": "route"},
    "route": {"type": "branch", "conditions": [{"if": "tier == 'vip'", "goto": "q"}], "else": "cb"},
    "q": {"type": "queue", "queue": "vip", "on_timeout": "cb", "after": "post"},
    "post": {"type": "subflow", "flow": "survey", "next": "bye"},
    "cb": {"type": "callback", "prompt": "Press 1", "on_decline": "xfer"},
    "xfer": {"type": "transfer", "destination": "2000@from-internal", "on_failure": "vm"},
    "vm": {"type": "voicemail", "mailbox": "1000@default", "prompt": "Leave a message"},
    "bye": {"type": "hangup", "prompt": {"file": "bye"}},
    "sorry": {"type": "say", "prompt": "Sorry", "next": "q"},
}
FULL = make_flow(FULL_STEPS, name="full", on_error="sorry", max_steps=40)
FULL_FROM_MENU = make_flow(FULL_STEPS, name="full", start="menu", on_error="sorry", max_steps=40,
                           variables={"balance_cents": 1050, "ticket_reference": None})

LOOPY = make_flow({
    "a": {"type": "menu", "prompt": {"sound": "a"}, "choices": {"1": "b", "2": "a"}, "on_invalid": "b",
          "on_timeout": "a", "retries": 5},
    "b": {"type": "goto", "target": "c"},
    "c": {"type": "branch", "conditions": [{"if": "menu_choice == '1'", "goto": "a"}], "else": "b"},
}, name="loopy", max_steps=25)

FLOWS = {"survey": SURVEY, "full": FULL, "loopy": LOOPY}


def _example_flows():
    try:
        import ivr.library
        return ivr.library.FlowLibrary(Path(__file__).parent.parent / "flows")
    except Exception:  # pragma: no cover - the example flows are someone else's moving part
        return None


LIBRARY = _example_flows()
CHOICES = [FULL, FULL_FROM_MENU, LOOPY, SURVEY] + ([LIBRARY.get(n) for n in LIBRARY.names()] if LIBRARY else [])

# Mostly what a caller and a healthy PBX produce, so flows get deep; now and then trouble.
BENIGN = st.one_of(
    st.just(ok("0")), st.just(ok("1")),
    st.sampled_from("0123456789*#").map(key),
    st.tuples(st.text("0123456789*", max_size=17), st.booleans()).map(lambda t: typed(*t)),
    st.just(ok("1", "TIMEOUT")), st.just(ok("1", "ANSWER")), st.just(ok("-1", endpos=0)),
)
TROUBLE = st.sampled_from([
    ok("-1"), ok("-2"), AgiResult(510), AgiResult(520), DEAD, CallerHangup(), ServiceResult(value=None),
    AgiResult(200, "123456789012"),
])
CHANNEL_REPLIES = st.integers(0, 99).flatmap(lambda n: BENIGN if n < 92 else TROUBLE)
SERVICE_REPLIES = st.sampled_from([
    ServiceResult(value=None), ServiceResult(value={"customer_id": 1, "name": "X", "tier": "vip",
                                                    "balance_cents": 1050, "ticket_reference": "T-1"}),
    ServiceResult(value="7"), ServiceResult(error="OperationalError: down"), CallerHangup(), ok("0"),
])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=st.sampled_from(CHOICES), data=st.data())
def test_any_replies_end_in_an_exit_without_raising(flow, data):
    """Random replies (keys, timeouts, hangups, 510/520, service errors, wrong kinds) always
    reach Exit within a bounded number of feeds; after the caller is gone only SET VARIABLE follows."""
    session = FlowSession(flow, {**ENV, "now": "2026-11-24T10:00:00+08:00"}, flows=FLOWS.get if
                          flow.name in FLOWS else LIBRARY)
    command = session.start()
    gone = False
    for _ in range(MAX_FEEDS):
        if isinstance(command, Exit):
            break
        if gone:
            assert isinstance(command, SetVariable), command
        reply = data.draw(SERVICE_REPLIES if isinstance(command, ServiceCall) else CHANNEL_REPLIES)
        if isinstance(reply, CallerHangup) or (isinstance(reply, AgiResult) and reply.code == 511):
            gone = True
        command = session.feed(reply)
    assert isinstance(command, Exit), f"no Exit after {MAX_FEEDS} feeds"
    assert session.finished and session.outcome == command.outcome
    assert command.outcome.kind in {"completed", "caller_hangup", "error", "step_limit", "queued",
                                    "transferred", "voicemail", "callback"}
    assert "4111" not in repr(session.inputs)
