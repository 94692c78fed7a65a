"""Repository functions, each round-tripped on SQLite and PostgreSQL."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from db import repository as repo
from db.models import AgentEvent, Callback, CallEvent, Customer, SurveyAnswer, Voicemail
from db_helpers import database, pg_databases, pg_migrated_url  # noqa: F401

T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def session_record(**overrides):
    record = {
        "id": "a" * 32, "channel": "PJSIP/trunk-00000001", "uniqueid": "1700000000.1",
        "linkedid": "1700000000.1", "caller_id_num": "13800138001", "caller_id_name": None,
        "dnid": "4000", "flow": "main", "flow_version": "3", "language": "zh",
        "started_at": at(0), "ended_at": None, "steps": ["welcome", "auth"],
        "inputs": [{"step": "auth", "var": "pin", "value": "••••"}],
        "customer_id": None, "tier": None, "outcome": "queued", "outcome_target": "vip",
        "outcome_step": "vip_queue", "outcome_detail": "", "agi_commands": 12,
    }
    record.update(overrides)
    return record


def make_customer(session, account="100001", phone="13800138001", pin="1234", tier="vip"):
    return repo.create_customer(session, account, "张伟", phone, tier, pin, language="zh",
                                balance_cents=1256800, last_payment_cents=50000,
                                last_payment_at=at(-86400))


# -- IVR sessions ---------------------------------------------------------------------

def test_ivr_session_is_saved_and_read_back(database):
    """A driver record is stored as one ivr_sessions row, JSON lists and times intact."""
    database.run_sync(repo.save_ivr_session, session_record())
    row = database.run_sync(lambda s: repo.as_dict(repo.get_ivr_session(s, "a" * 32)))
    assert row["steps"] == ["welcome", "auth"]
    assert row["inputs"] == [{"step": "auth", "var": "pin", "value": "••••"}]
    assert row["started_at"] == at(0)
    assert row["caller_id_name"] is None and row["outcome_target"] == "vip"


def test_saving_an_ivr_session_again_updates_it(database):
    """Saving the same id again updates the row instead of inserting a second one."""
    database.run_sync(repo.save_ivr_session, session_record())
    database.run_sync(repo.save_ivr_session,
                      session_record(ended_at=at(95), outcome="completed", agi_commands=40))
    row = database.run_sync(lambda s: repo.as_dict(repo.get_ivr_session(s, "a" * 32)))
    assert (row["ended_at"], row["outcome"], row["agi_commands"]) == (at(95), "completed", 40)


def test_ivr_session_none_for_a_required_column_keeps_the_default(database):
    """A crashed session's None language/flow is stored with the defaults, not lost."""
    database.run_sync(repo.save_ivr_session, {"id": "b" * 32, "language": None, "flow": None})
    row = database.run_sync(lambda s: repo.as_dict(repo.get_ivr_session(s, "b" * 32)))
    assert (row["language"], row["flow"], row["steps"]) == ("en", "", [])


def test_ivr_session_with_an_unknown_key_is_refused(database):
    """A record key that is no column is our bug: ValueError naming the valid columns."""
    with pytest.raises(ValueError, match="outcome_target"):
        database.run_sync(repo.save_ivr_session, session_record(outcom="typo"))


# -- calls ------------------------------------------------------------------------------

def test_upsert_call_creates_then_updates(database):
    """upsert_call inserts a call on first sight and updates it by linkedid afterwards."""
    database.run_sync(lambda s: repo.upsert_call(s, "1700000000.1", caller_num="13800138001",
                                                 started_at=at(0)))
    database.run_sync(lambda s: repo.upsert_call(s, "1700000000.1", queue="vip", tier="vip",
                                                 queue_entered_at=at(20)))
    call = database.run_sync(lambda s: repo.as_dict(repo.get_call(s, "1700000000.1")))
    assert (call["caller_num"], call["queue"], call["queue_entered_at"]) == ("13800138001", "vip", at(20))
    assert call["transfers"] == [] and call["disposition"] == "unknown"


def test_upsert_call_survives_a_concurrent_insert(database, monkeypatch):
    """If another writer inserted the linkedid between our lookup and insert, we update it."""
    database.run_sync(lambda s: repo.upsert_call(s, "L1", started_at=at(0)))
    real_get_call = repo.get_call
    calls = []

    def stale_first_lookup(session, linkedid):
        calls.append(linkedid)
        return None if len(calls) == 1 else real_get_call(session, linkedid)

    monkeypatch.setattr(repo, "get_call", stale_first_lookup)
    database.run_sync(lambda s: repo.upsert_call(s, "L1", agent="PJSIP/1001", started_at=at(0)))
    monkeypatch.setattr(repo, "get_call", real_get_call)
    assert database.run_sync(lambda s: repo.get_call(s, "L1").agent) == "PJSIP/1001"


def test_upsert_call_refuses_an_unknown_disposition(database):
    """Dispositions are a fixed set; a wrong one is refused naming the valid ones."""
    with pytest.raises(ValueError, match="abandoned"):
        database.run_sync(lambda s: repo.upsert_call(s, "L1", disposition="dropped"))


def test_call_events_are_appended_in_order(database):
    """Events keep their order, kind, channel and JSON data."""
    def work(s):
        call = repo.upsert_call(s, "L1", started_at=at(0))
        repo.add_call_event(s, call, at(0), "Newchannel", "PJSIP/t-01", "L1", {"Exten": "4000"})
        repo.add_call_event(s, "L1", at(3), "QueueCallerJoin", "PJSIP/t-01", "L1", {"Position": "1"})
    database.run_sync(work)
    events = database.run_sync(lambda s: [(e.kind, e.at, e.data) for e in repo.get_call(s, "L1").events])
    assert events == [("Newchannel", at(0), {"Exten": "4000"}),
                      ("QueueCallerJoin", at(3), {"Position": "1"})]


def test_an_event_for_an_unseen_linkedid_starts_the_call(database):
    """No event is dropped because the call's first event was missed."""
    database.run_sync(lambda s: repo.add_call_event(s, "L9", at(7), "Hangup", None, None, {}))
    call = database.run_sync(lambda s: repo.as_dict(repo.get_call(s, "L9")))
    assert call["started_at"] == at(7)
    assert database.run_sync(lambda s: s.scalar(select(CallEvent.kind))) == "Hangup"


def test_open_calls_are_those_not_ended(database):
    """open_calls lists the calls without ended_at, oldest first."""
    def work(s):
        repo.upsert_call(s, "new", started_at=at(10))
        repo.upsert_call(s, "old", started_at=at(0))
        repo.upsert_call(s, "done", started_at=at(5), ended_at=at(6), close_reason="hangup")
    database.run_sync(work)
    assert database.run_sync(lambda s: [c.linkedid for c in repo.open_calls(s)]) == ["old", "new"]


def test_close_call_sets_the_end_and_derives_wait_and_talk(database):
    """Closing fills ended_at and close_reason, and wait/talk times from the timestamps."""
    database.run_sync(lambda s: repo.upsert_call(s, "L1", started_at=at(0), queue_entered_at=at(10),
                                                 answered_at=at(40)))
    database.run_sync(lambda s: repo.close_call(s, "L1", at(160), "hangup",
                                                disposition="answered", hangup_cause=16))
    call = database.run_sync(lambda s: repo.as_dict(repo.get_call(s, "L1")))
    assert (call["ended_at"], call["close_reason"], call["disposition"]) == (at(160), "hangup", "answered")
    assert (call["wait_seconds"], call["talk_seconds"], call["hangup_cause"]) == (30.0, 120.0, 16)


def test_close_call_keeps_times_the_tracker_computed(database):
    """Wait and talk times already set (e.g. excluding hold) are not overwritten."""
    database.run_sync(lambda s: repo.upsert_call(s, "L1", started_at=at(0), answered_at=at(40),
                                                 talk_seconds=99.5))
    database.run_sync(lambda s: repo.close_call(s, "L1", at(160), "hangup"))
    assert database.run_sync(lambda s: repo.get_call(s, "L1").talk_seconds) == 99.5


def test_closing_a_closed_call_changes_nothing(database):
    """A second close (Hangup seen after a resync closed it) keeps the first end."""
    database.run_sync(lambda s: repo.upsert_call(s, "L1", started_at=at(0)))
    database.run_sync(lambda s: repo.close_call(s, "L1", at(60), "resync_missing"))
    database.run_sync(lambda s: repo.close_call(s, "L1", at(90), "hangup"))
    call = database.run_sync(lambda s: repo.as_dict(repo.get_call(s, "L1")))
    assert (call["ended_at"], call["close_reason"]) == (at(60), "resync_missing")


def test_close_call_of_an_unknown_linkedid_returns_none(database):
    """Closing a call never stored is not an error: there is nothing to close."""
    assert database.run_sync(lambda s: repo.close_call(s, "nope", at(1), "shutdown")) is None


# -- agents, callbacks, surveys, voicemail ----------------------------------------------

def test_agent_events_are_stored(database):
    """An agent state change is stored with its queue and reason."""
    database.run_sync(repo.add_agent_event, "PJSIP/1001", "paused", at(5), "support", "lunch")
    row = database.run_sync(lambda s: repo.as_dict(s.scalar(select(AgentEvent))))
    assert (row["agent"], row["state"], row["at"], row["reason"]) == ("PJSIP/1001", "paused", at(5), "lunch")


def test_agent_event_with_an_unknown_state_is_refused(database):
    """Agent states are a fixed set."""
    with pytest.raises(ValueError, match="wrap_up"):
        database.run_sync(repo.add_agent_event, "PJSIP/1001", "sleeping")


def test_callbacks_are_pending_with_no_attempts(database):
    """A callback request starts pending with zero attempts."""
    database.run_sync(lambda s: repo.add_callback(s, "13800138001", queue="regular", note="billing"))
    row = database.run_sync(lambda s: repo.as_dict(s.scalar(select(Callback))))
    assert (row["number"], row["status"], row["attempts"], row["note"]) == ("13800138001", "pending", 0, "billing")


def test_callback_number_without_digits_is_refused(database):
    """A callback to "anonymous" cannot be made: refused."""
    with pytest.raises(ValueError, match="no digits"):
        database.run_sync(lambda s: repo.add_callback(s, "anonymous"))


def test_survey_answers_accept_1_to_5_and_no_answer(database):
    """Ratings 1-5 and None (no answer) are stored."""
    database.run_sync(lambda s: repo.add_survey_answer(s, "q1", 5, ivr_session_id="a" * 32))
    database.run_sync(lambda s: repo.add_survey_answer(s, "q2", None, ivr_session_id="a" * 32))
    ratings = database.run_sync(lambda s: list(s.scalars(select(SurveyAnswer.rating).order_by(SurveyAnswer.id))))
    assert ratings == [5, None]


@pytest.mark.parametrize("rating", [0, 6, True])
def test_survey_ratings_outside_1_to_5_are_refused(database, rating):
    """A rating outside 1-5 is refused before it reaches the database."""
    with pytest.raises(ValueError, match="1-5"):
        database.run_sync(lambda s: repo.add_survey_answer(s, "q1", rating))


def test_voicemails_are_stored(database):
    """A voicemail record keeps its mailbox and session."""
    database.run_sync(lambda s: repo.add_voicemail(s, "1000@default", ivr_session_id="a" * 32,
                                                   caller_num="13800138001", left_at=at(9)))
    row = database.run_sync(lambda s: repo.as_dict(s.scalar(select(Voicemail))))
    assert (row["mailbox"], row["left_at"], row["caller_num"]) == ("1000@default", at(9), "13800138001")


# -- tickets ------------------------------------------------------------------------------

def test_ticket_references_follow_their_ids(database):
    """References are T- and the zero-padded id, unique per ticket."""
    refs = database.run_sync(lambda s: [repo.create_ticket(s, "fault", "no dial tone").reference,
                                        repo.create_ticket(s, "complaint", "billed twice").reference])
    assert refs == ["T-000001", "T-000002"]


def test_ticket_with_an_unknown_kind_is_refused(database):
    """Ticket kinds are a fixed set."""
    with pytest.raises(ValueError, match="complaint"):
        database.run_sync(lambda s: repo.create_ticket(s, "praise", "great service"))


def test_latest_open_ticket_skips_closed_ones(database):
    """latest_ticket with statuses picks the newest ticket among those statuses."""
    def work(s):
        customer = make_customer(s)
        repo.create_ticket(s, "fault", "first", customer_id=customer.id)
        repo.create_ticket(s, "fault", "second", customer_id=customer.id)
        repo.set_ticket_status(s, "T-000002", "closed")
        return (repo.latest_ticket(s, customer.id, statuses=repo.OPEN_TICKET_STATUSES).summary,
                repo.latest_ticket(s, customer.id).summary)
    assert database.run_sync(work) == ("first", "second")


def test_get_ticket_accepts_lower_case_references(database):
    """A reference typed as t-000001 finds T-000001."""
    database.run_sync(lambda s: repo.create_ticket(s, "request", "move line"))
    assert database.run_sync(lambda s: repo.get_ticket(s, " t-000001 ").summary) == "move line"


# -- customers ----------------------------------------------------------------------------

def test_pin_is_never_stored_in_clear(database):
    """The customers row holds a salted hash: not the PIN, and different for equal PINs."""
    database.run_sync(lambda s: (make_customer(s, "100001", pin="1234"),
                                 make_customer(s, "100002", phone="139", pin="1234")))
    rows = database.run_sync(lambda s: [tuple(r) for r in s.execute(text("SELECT * FROM customers"))])
    assert rows and not any("1234" == str(v) for row in rows for v in row)
    hashes = database.run_sync(lambda s: list(s.scalars(select(Customer.pin_hash))))
    assert len(set(hashes)) == 2 and all("1234" not in h for h in hashes)


def test_authenticate_with_the_right_pin(database):
    """The right PIN for the account returns the customer."""
    database.run_sync(make_customer)
    assert database.run_sync(lambda s: repo.authenticate_customer(s, "100001", "1234").account) == "100001"


@pytest.mark.parametrize("account,pin", [("100001", "4321"), ("100001", ""), ("999999", "1234")])
def test_authenticate_with_a_wrong_pin_or_account_fails(database, account, pin):
    """A wrong PIN, an empty PIN or an unknown account all give None."""
    database.run_sync(make_customer)
    assert database.run_sync(lambda s: repo.authenticate_customer(s, account, pin)) is None


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4"])
def test_create_customer_refuses_a_pin_that_is_not_4_to_8_digits(database, pin):
    """A PIN callers cannot key in is refused at creation."""
    with pytest.raises(ValueError, match="4 to 8 digits"):
        database.run_sync(lambda s: make_customer(s, pin=pin))


def test_customer_by_phone_ignores_punctuation(database):
    """Phones match on their digits: 138-0013-8001 is found by caller ID 13800138001."""
    database.run_sync(lambda s: make_customer(s, phone="138-0013-8001"))
    assert database.run_sync(lambda s: repo.customer_by_phone(s, "13800138001").account) == "100001"
    assert database.run_sync(lambda s: repo.customer_by_phone(s, "138 0013 8001").account) == "100001"
    assert database.run_sync(lambda s: repo.customer_by_phone(s, "13800138002")) is None
    assert database.run_sync(lambda s: repo.customer_by_phone(s, "anonymous")) is None


def test_customer_by_account_and_id(database):
    """Customers are found by account number and by id; unknown ones give None."""
    customer_id = database.run_sync(lambda s: make_customer(s).id)
    assert database.run_sync(lambda s: repo.customer_by_account(s, "100001").id) == customer_id
    assert database.run_sync(lambda s: repo.customer_by_id(s, customer_id).name) == "张伟"
    assert database.run_sync(lambda s: repo.customer_by_account(s, "nope")) is None


def test_as_dict_never_includes_the_pin_hash(database):
    """Dicts handed to other threads (screen pops) carry no PIN hash."""
    row = database.run_sync(lambda s: repo.as_dict(make_customer(s)))
    assert "pin_hash" not in row and row["account"] == "100001"


def test_posix_seconds_are_accepted_for_times(database):
    """Times may be given as POSIX seconds, as the tracker counts them."""
    epoch = T0.timestamp()
    database.run_sync(lambda s: repo.upsert_call(s, "L1", started_at=epoch, answered_at=epoch + 30))
    database.run_sync(lambda s: repo.close_call(s, "L1", epoch + 90, "hangup"))
    call = database.run_sync(lambda s: repo.as_dict(repo.get_call(s, "L1")))
    assert (call["started_at"], call["ended_at"], call["talk_seconds"]) == (T0, at(90), 60.0)
