"""Persist what the tracker sees: the ``calls`` row of every call, its timeline in
``call_events``, and ``agent_events`` — through the DB layer (db.repository).

The recorder subscribes to the tracker's domain events. A call's row is created at
``call_started``, updated as the call is queued, answered ..., and written complete
at ``call_ended``; every domain event also becomes one ``call_events`` row.

Writes go through ``Database.run`` (a thread pool, never the reactor) with one rule:
writes for the same call (or the same agent) are applied in event order, one batch at
a time; events arriving while a batch is in flight are queued and written together as
the next batch (cheap batching under load). A batch that fails is logged and retried
once; a second failure is logged as an error naming the call and the events lost.
``sync=True`` writes immediately with ``run_sync`` (tests, CLI tools).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable

from cti.events import (
    AgentStateChanged, CallAnswered, CallEnded, CallQueued, CallRecord, CallStarted,
    DomainEvent, EventBus, IvrJoined,
)
from db import repository

__all__ = ["CallRecorder", "to_datetime", "record_fields", "event_data"]

log = logging.getLogger(__name__)

Op = tuple[Callable[..., Any], tuple, dict]

_RECORD_TIMES = ("started_at", "ivr_entered_at", "queue_entered_at", "answered_at",
                 "queue_left_at", "ended_at")


def to_datetime(seconds: float | None) -> datetime | None:
    """POSIX seconds → aware UTC datetime (what every ``*_at`` column takes)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc)


def record_fields(record: CallRecord) -> dict[str, Any]:
    """A tracker ``CallRecord`` as ``calls`` column values (``agent_name`` is not a column)."""
    fields = record.as_dict()
    fields.pop("linkedid")
    fields.pop("agent_name")
    for key in _RECORD_TIMES:
        fields[key] = to_datetime(fields[key])
    fields["transfers"] = [dict(t, at=to_datetime(t["at"]).isoformat()) for t in record.transfers]
    return fields


def event_data(event: DomainEvent) -> dict[str, Any]:
    """The JSON kept in ``call_events.data``: the event's own fields, record left out."""
    data = event.as_dict()
    for key in ("kind", "linkedid", "at", "channel", "uniqueid", "record"):
        data.pop(key, None)
    if "from_" in data:
        data["from"] = data.pop("from_")
    if isinstance(event, CallEnded):
        data.update(disposition=event.record.disposition,
                    close_reason=event.record.close_reason,
                    timeline=[[to_datetime(at).isoformat(), state] for at, state in event.timeline])
    return data


def _call_updates(event: DomainEvent) -> dict[str, Any] | None:
    """The ``calls`` columns an event changes before the call ends (None: nothing)."""
    if isinstance(event, CallStarted):
        return {"caller_num": event.caller_num, "caller_name": event.caller_name,
                "dnid": event.dnid, "started_at": to_datetime(event.at)}
    if isinstance(event, IvrJoined):
        return {"ivr_session_id": event.ivr_session_id}
    if isinstance(event, CallQueued):
        fields = {"queue": event.queue, "queue_entered_at": to_datetime(event.at)}
        if event.caller_num:
            fields.update(caller_num=event.caller_num, caller_name=event.caller_name)
        return fields
    if isinstance(event, CallAnswered):
        return {"answered_at": to_datetime(event.at), "agent": event.agent,
                "wait_seconds": event.wait_seconds}
    return None


def _apply(session: Any, ops: list[Op]) -> int:
    for fn, args, kwargs in ops:
        fn(session, *args, **kwargs)
    return len(ops)


class CallRecorder:
    """Writes the tracker's domain events to the database, in order per call."""

    def __init__(self, database: Any, *, sync: bool = False) -> None:
        self.database = database
        self.sync = sync
        self._pending: dict[str, list[Op]] = {}
        self._in_flight: set[str] = set()
        self._idle_waiters: list[Any] = []
        self.batches_written = 0
        self.batches_lost = 0

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to every domain event on ``bus``; returns the unsubscribe function."""
        return bus.subscribe(self.record)

    # -- events -> operations --------------------------------------------------------------
    def record(self, event: DomainEvent) -> None:
        if isinstance(event, AgentStateChanged):
            op: Op = (repository.add_agent_event, (event.agent, event.state),
                      {"at": to_datetime(event.at), "queue": event.queue,
                       "reason": event.reason, "linkedid": event.linkedid})
            self._enqueue("agent:" + event.agent, [op])
            return
        linkedid = event.linkedid
        if not linkedid:
            return
        ops: list[Op] = []
        if isinstance(event, CallEnded):
            ops.append((repository.upsert_call, (linkedid,), record_fields(event.record)))
        else:
            updates = _call_updates(event)
            if updates is not None:
                ops.append((repository.upsert_call, (linkedid,), updates))
        ops.append((repository.add_call_event,
                    (linkedid, to_datetime(event.at), event.kind),
                    {"channel": getattr(event, "channel", None) or None,
                     "uniqueid": getattr(event, "uniqueid", None) or None,
                     "data": event_data(event)}))
        self._enqueue("call:" + linkedid, ops)

    # -- writing -------------------------------------------------------------------------------
    def _enqueue(self, key: str, ops: list[Op]) -> None:
        if self.sync:
            self._write_sync(key, ops)
            return
        self._pending.setdefault(key, []).extend(ops)
        if key not in self._in_flight:
            self._flush(key)

    def _write_sync(self, key: str, ops: list[Op]) -> None:
        try:
            self.database.run_sync(_apply, ops)
        except Exception as exc:
            log.warning("event=record_write_failed key=%s ops=%d error=%r retry=1", key, len(ops), exc)
            try:
                self.database.run_sync(_apply, ops)
            except Exception:
                self.batches_lost += 1
                log.exception("event=record_write_lost key=%s ops=%s", key, _describe(ops))
                return
        self.batches_written += 1

    def _flush(self, key: str) -> None:
        ops = self._pending.pop(key, None)
        if not ops:
            self._in_flight.discard(key)
            if not self._in_flight:
                waiters, self._idle_waiters = self._idle_waiters, []
                for waiter in waiters:
                    waiter.callback(None)
            return
        self._in_flight.add(key)
        d = self.database.run(_apply, ops)

        def retry(failure: Any) -> Any:
            log.warning("event=record_write_failed key=%s ops=%d error=%r retry=1",
                        key, len(ops), failure.value)
            return self.database.run(_apply, ops)

        def written(_: Any) -> None:
            self.batches_written += 1

        def lost(failure: Any) -> None:
            self.batches_lost += 1
            log.error("event=record_write_lost key=%s ops=%s error=%r",
                      key, _describe(ops), failure.value)

        d.addErrback(retry)
        d.addCallbacks(written, lost)
        d.addBoth(lambda _: self._flush(key))

    def idle(self) -> Any:
        """A Deferred firing once every queued write has been attempted (for shutdown)."""
        from twisted.internet.defer import Deferred, succeed
        if not self._in_flight:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._idle_waiters.append(waiter)
        return waiter


def _describe(ops: list[Op]) -> str:
    kinds = [args[2] if fn is repository.add_call_event else fn.__name__ for fn, args, _ in ops]
    return ",".join(str(k) for k in kinds)
