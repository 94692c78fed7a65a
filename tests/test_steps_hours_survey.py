"""The hours step (time zones, day ranges, holidays, past-midnight ranges) and the survey step."""
from __future__ import annotations

import pytest

from engine_helpers import ENV, HANGUP, TIMEOUT, Phone, drive, make_flow, make_step, ok
from ivr.commands import Outcome, ServiceCall, ServiceResult, WaitForDigit
from ivr.engine import ALL_KEYS, FlowSession
from ivr.flow import STEP_TYPES
from ivr.memory_services import InMemoryServices
from ivr.steps.hours import parse_days

ENDS = {"open": {"type": "hangup"}, "closed": {"type": "hangup"}, "holiday": {"type": "hangup"}}


def hours(now, **params):
    base = {"type": "hours", "timezone": "Asia/Shanghai",
            "open": {"mon-fri": ["09:00-18:00"], "sat": ["10:00-16:00"]},
            "holidays": ["2026-10-01"], "if_open": "open", "if_closed": "closed", "if_holiday": "holiday"}
    flow = make_flow({"h": {**base, **params}, **ENDS}, start="h")
    return Phone(flow, env={**ENV, "now": now})


@pytest.mark.parametrize("now, where", [
    ("2026-11-24T10:00:00+08:00", "open"),      # Tuesday morning in Shanghai
    ("2026-11-24T02:00:00+00:00", "open"),      # the same moment written in UTC
    ("2026-11-24T18:00:00+08:00", "closed"),    # the end of a range is closed
    ("2026-11-28T11:00:00+08:00", "open"),      # Saturday
    ("2026-11-29T11:00:00+08:00", "closed"),    # Sunday
    ("2026-10-01T10:00:00+08:00", "holiday"),   # National Day, a Thursday
    ("2026-11-24T10:00", "open"),               # naive: local time of the step's zone
])
def test_hours_picks_open_closed_or_holiday_in_the_centres_time_zone(now, where):
    """The call's time, read in the step's time zone, decides the branch; is_open is written."""
    phone = hours(now)
    assert phone.run().step == where
    assert phone.session.variables["is_open"] is (where == "open")


def test_hours_holiday_defaults_to_if_closed():
    """Without if_holiday a holiday goes to if_closed."""
    phone = hours("2026-10-01T10:00:00+08:00", if_holiday=None)
    assert phone.run().step == "closed"


def test_hours_range_past_midnight():
    """22:00-02:00 on Friday is open late Friday and early Saturday, not early Friday."""
    params = {"open": {"fri": ["22:00-02:00"]}, "timezone": "UTC"}
    assert hours("2026-11-27T23:00:00+00:00", **params).run().step == "open"
    assert hours("2026-11-28T01:30:00+00:00", **params).run().step == "open"
    assert hours("2026-11-27T01:30:00+00:00", **params).run().step == "closed"


def test_hours_caller_hangup_on_the_next_command():
    """hours sends nothing itself; a hangup at the next step's first command ends there."""
    phone = hours("2026-11-24T10:00:00+08:00")
    phone.flow.steps["open"].params["prompt"] = {"sound": "hi"}
    phone.pending.append(HANGUP)
    assert phone.run() == Outcome("caller_hangup", step="open")


def test_day_ranges_wrap_around_the_week():
    """fri-mon is Friday, Saturday, Sunday and Monday."""
    assert parse_days("fri-mon") == [4, 5, 6, 0]
    assert parse_days("mon-fri") == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        parse_days("monday")


def test_hours_check_reports_bad_zone_days_ranges_and_dates():
    """Every malformed part of an hours step is reported."""
    step = make_step("h", {"type": "hours", "timezone": "Mars/Olympus", "open": {"mon-fryday": ["9-5"]},
                           "holidays": ["2026-02-30"], "if_open": "a", "if_closed": "b"})
    messages = [p.message for p in STEP_TYPES["hours"].check(step)]
    assert len(messages) == 4


# ---------------------------------------------------------------- survey

QUESTIONS = [{"id": "agent", "prompt": {"sound": "q-agent"}}, {"id": "solved", "prompt": {"sound": "q-solved"}}]


def survey(**params):
    base = {"type": "survey", "questions": QUESTIONS, "thanks_prompt": {"sound": "thanks"}, "next": "open"}
    return make_flow({"s": {**base, **params}, **ENDS}, start="s")


def test_survey_stores_each_answer():
    """Keys 1-5 are stored per question with the session id; the thanks prompt follows."""
    services = InMemoryServices([])
    phone = Phone(survey(), inputs=["4", ">5"], services=services)
    assert phone.run().step == "open"
    sid = phone.session.session_id
    assert services.survey_answers == [{"session_id": sid, "question": "agent", "rating": 4},
                                       {"session_id": sid, "question": "solved", "rating": 5}]
    assert phone.session.variables["survey_agent"] == 4


def test_survey_other_key_or_timeout_is_no_answer():
    """A key outside 1-5, or no key before the timeout, is stored as None and not asked again."""
    services = InMemoryServices([])
    phone = Phone(survey(timeout=3), inputs=["9", TIMEOUT], services=services)
    phone.run()
    assert [a["rating"] for a in services.survey_answers] == [None, None]
    assert WaitForDigit(3000) in phone.commands


def test_survey_questions_are_interruptible_by_any_key():
    """The question prompt stops at the first key (so callers can answer early)."""
    phone = Phone(survey(), inputs=["3", "3"], services=InMemoryServices([]))
    phone.run()
    assert phone.commands[2].escape_digits == ALL_KEYS


def test_survey_store_error_is_only_a_warning():
    """The database failing does not stop the survey or the call."""
    session = FlowSession(survey(), ENV)
    commands = drive(session, lambda c: ServiceResult(error="db down") if isinstance(c, ServiceCall) else ok("0"))
    assert commands[-1].outcome == Outcome("completed", step="open")
    assert len([w for w in session.warnings if "db down" in w]) == 2


def test_survey_caller_hangup_after_the_first_answer():
    """A hangup mid-survey ends the call; the answer already given is stored."""
    services = InMemoryServices([])
    phone = Phone(survey(), inputs=["5", HANGUP], services=services)
    assert phone.run() == Outcome("caller_hangup", step="s")
    assert [a["rating"] for a in services.survey_answers] == [5]


def test_survey_check_wants_ids_and_prompts():
    """Each question needs exactly an id and a prompt, ids unique."""
    step = make_step("s", {"type": "survey", "questions": [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"},
                                                           {"prompt": "z"}]})
    assert len(STEP_TYPES["survey"].check(step)) == 2
