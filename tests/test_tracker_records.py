"""The call recorder writes complete ``calls`` rows, their ``call_events`` timeline and
``agent_events`` to a real (SQLite, migrated) database, in order per call."""
from __future__ import annotations

import logging
from datetime import timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from twisted.internet.defer import Deferred, fail, succeed

from cti.events import CallEnded
from cti.records import CallRecorder, record_fields, to_datetime
from db.database import Database
from db.migrate import upgrade
from db.models import AgentEvent, Call, CallEvent
from db_helpers import QueueReactor
from tracker_helpers import ended_records, make_tracker, replay


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: Any) -> bytes:
    """One migrated SQLite file per module, copied for each test (migrations are slow-ish)."""
    path = tmp_path_factory.mktemp("tmpl") / "hotline.db"
    upgrade(f"sqlite:///{path}")
    return path.read_bytes()


@pytest.fixture
def database(tmp_path: Any, migrated_template: bytes):
    path = tmp_path / "hotline.db"
    path.write_bytes(migrated_template)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


def rows(database: Database, model: Any, *order: Any) -> list[dict]:
    def work(session: Any) -> list[dict]:
        return [{c.key: getattr(r, c.key) for c in model.__table__.columns}
                for r in session.scalars(select(model).order_by(*order))]
    return database.run_sync(work)


def record_and_replay(database: Database, scenario: str, **recorder_kwargs: Any):
    tracker, clock, _ = make_tracker()
    recorder = CallRecorder(database, **recorder_kwargs)
    recorder.attach(tracker.bus)
    events = replay(tracker, clock, scenario)
    return recorder, events


def test_every_call_is_stored_complete_with_its_timeline(database):
    """queue_answered: two complete calls rows equal to the tracker's final records."""
    _, events = record_and_replay(database, "queue_answered", sync=True)
    finals = ended_records(events)
    calls = {c["linkedid"]: c for c in rows(database, Call, Call.id)}
    assert set(calls) == {"1795388618.6", "1795388629.12"}
    for linkedid, record in finals.items():
        row = calls[linkedid]
        expected = record_fields(record)
        assert {k: row[k] for k in expected} == expected
        assert (row["disposition"], row["close_reason"], row["agent"]) == (
            "answered", "hangup", "Local/agent1@agents/n")
        assert row["ended_at"].tzinfo is timezone.utc
    timeline = rows(database, CallEvent, CallEvent.id)
    call_ids = {c["id"]: c["linkedid"] for c in calls.values()}
    kinds_a = [e["kind"] for e in timeline if call_ids[e["call_id"]] == "1795388618.6"]
    assert kinds_a == ["call_started", "call_queued", "agent_ringing", "agent_ringing",
                       "call_answered", "call_ended"]
    answered = next(e for e in timeline if e["kind"] == "call_answered")
    assert (answered["channel"], answered["uniqueid"]) == ("Local/support@queue-in-00000003;2", "1795388618.7")
    assert answered["data"]["agent_name"] == "Agent One"
    ended = [e for e in timeline if e["kind"] == "call_ended"][0]
    assert [state for _, state in ended["data"]["timeline"]] == [
        "started", "queued", "talking", "ended"]
    assert (ended["data"]["disposition"], ended["data"]["close_reason"]) == ("answered", "hangup")


def test_agent_events_are_stored(database):
    """Every agent_state_changed becomes one agent_events row, in order."""
    _, events = record_and_replay(database, "queue_answered", sync=True)
    expected = [(e.agent, e.state, e.queue, e.linkedid) for e in events
                if e.kind == "agent_state_changed"]
    stored = [(r["agent"], r["state"], r["queue"], r["linkedid"])
              for r in rows(database, AgentEvent, AgentEvent.id)]
    assert stored == expected and len(stored) == 10


def test_transfers_are_stored_as_json_with_iso_times(database):
    """redirect_transfer: each call's transfers list is stored {kind, from, to, at}."""
    record_and_replay(database, "redirect_transfer", sync=True)
    transfers = {c["linkedid"]: c["transfers"] for c in rows(database, Call, Call.id)}
    kinds = {k: [(t["kind"], t["to"]) for t in v] for k, v in transfers.items()}
    assert kinds == {"1795388698.34": [("redirect", "200@xfer")],
                     "1795388711.38": [("blind", "200@xfer")],
                     "1795388725.42": [("attended", "201@xfer")]}
    assert transfers["1795388711.38"][0]["at"].startswith("2026-11-22T23:05:14")


def test_load_burst_through_the_thread_pool_stores_fifty_calls(database):
    """Writes via Database.run (threads), batched per call, leave 50 complete rows."""
    reactor = QueueReactor()
    db = Database(database.url, reactor=reactor)
    db.start()
    try:
        recorder, events = record_and_replay(db, "load_burst")
        reactor.pump(recorder.idle(), timeout=60)
        assert recorder.batches_lost == 0
        # batching: far fewer transactions than domain events
        assert 0 < recorder.batches_written < len(events)
        calls = rows(db, Call, Call.id)
        assert len(calls) == 50
        assert all(c["ended_at"] and c["close_reason"] == "hangup" and c["disposition"] == "answered"
                   for c in calls)
        count = db.run_sync(lambda s: s.scalar(select(func.count()).select_from(CallEvent)))
        assert count == sum(1 for e in events if e.kind != "agent_state_changed")
    finally:
        db.stop()


class FlakyDatabase:
    """run_sync fails ``failures`` times, then applies nothing but counts the batches."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list] = []

    def run_sync(self, fn: Any, ops: list) -> int:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is locked")
        self.batches.append(ops)
        return len(ops)


def call_ended_event() -> CallEnded:
    tracker, clock, _ = make_tracker()
    tracker.handle({"Event": "Newchannel", "Uniqueid": "1.1", "Linkedid": "1.1", "Channel": "PJSIP/t-1"})
    return tracker.handle({"Event": "Hangup", "Uniqueid": "1.1", "Cause": "16"})[0]


def test_a_failed_write_is_retried_once(caplog):
    """A batch that fails once is written on the retry, with a warning."""
    db = FlakyDatabase(failures=1)
    recorder = CallRecorder(db, sync=True)
    with caplog.at_level(logging.WARNING, logger="cti.records"):
        recorder.record(call_ended_event())
    assert len(db.batches) == 1 and recorder.batches_lost == 0
    assert "record_write_failed" in caplog.text


def test_a_write_failing_twice_is_logged_as_lost(caplog):
    """Two failures: the batch is reported lost, naming the call and its events."""
    db = FlakyDatabase(failures=2)
    recorder = CallRecorder(db, sync=True)
    with caplog.at_level(logging.ERROR, logger="cti.records"):
        recorder.record(call_ended_event())
    assert db.batches == [] and recorder.batches_lost == 1
    assert "record_write_lost key=call:1.1" in caplog.text and "call_ended" in caplog.text


class ManualDatabase:
    """Database.run whose Deferreds the test fires by hand (to observe ordering)."""

    def __init__(self) -> None:
        self.runs: list[tuple[list, Deferred]] = []

    def run(self, fn: Any, ops: list) -> Deferred:
        d: Deferred = Deferred()
        self.runs.append((ops, d))
        return d


def test_writes_for_one_call_are_serialised_and_batched():
    """While a call's batch is in flight, its next events wait and go as one batch."""
    db = ManualDatabase()
    recorder = CallRecorder(db)
    tracker, _, _ = make_tracker()
    recorder.attach(tracker.bus)
    tracker.handle({"Event": "Newchannel", "Uniqueid": "1.1", "Linkedid": "1.1", "Channel": "PJSIP/t-1"})
    tracker.handle({"Event": "VarSet", "Uniqueid": "1.1", "Variable": "HOTLINE_SESSION", "Value": "s"})
    tracker.handle({"Event": "Hangup", "Uniqueid": "1.1", "Cause": "16"})
    assert len(db.runs) == 1                      # only call_started is in flight
    db.runs[0][1].callback(2)
    assert len(db.runs) == 2                      # ivr_joined + call_ended together
    kinds = [args[2] for fn, args, _ in db.runs[1][0] if fn.__name__ == "add_call_event"]
    assert kinds == ["ivr_joined", "call_ended"]
    done = recorder.idle()
    fired = []
    done.addCallback(fired.append)
    db.runs[1][1].callback(4)
    assert fired == [None] and recorder.batches_written == 2


def test_async_retry_then_loss_does_not_block_the_next_batch(caplog):
    """A batch failing twice is logged lost; the call's later writes still go out."""
    class Failing:
        def __init__(self) -> None:
            self.calls = 0

        def run(self, fn: Any, ops: list) -> Deferred:
            self.calls += 1
            return fail(RuntimeError("down")) if self.calls <= 2 else succeed(len(ops))

    db = Failing()
    recorder = CallRecorder(db)
    with caplog.at_level(logging.ERROR, logger="cti.records"):
        recorder.record(call_ended_event())
        recorder.record(call_ended_event())
    assert (recorder.batches_lost, recorder.batches_written, db.calls) == (1, 1, 3)


def test_to_datetime_is_aware_utc():
    """POSIX seconds become aware UTC datetimes; None stays None."""
    assert to_datetime(0).isoformat() == "1970-01-01T00:00:00+00:00"
    assert to_datetime(None) is None
