"""Every read and write Hotline does, as plain functions taking a ``Session``.

They run inside ``Database.run``/``run_sync`` transactions, so they only ``flush`` and
never commit. Values that must be one of a fixed set (tier, status, disposition ...)
are checked here, with a ``ValueError`` naming the valid ones: the caller is at fault.
Functions return ORM objects; code that hands results to another thread turns them
into dicts first (``as_dict``).
"""
from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import (
    AGENT_STATES, CALLBACK_STATUSES, CLOSE_REASONS, DISPOSITIONS, TICKET_KINDS,
    TICKET_STATUSES, TIERS, AgentEvent, Base, Call, CallEvent, Callback, Customer,
    IvrSession, SurveyAnswer, Ticket, Voicemail,
)
from db.types import to_utc, utcnow

__all__ = [
    "as_dict", "normalise_phone", "save_ivr_session", "get_ivr_session",
    "upsert_call", "add_call_event", "get_call", "open_calls", "close_call",
    "add_agent_event", "add_callback", "add_survey_answer", "add_voicemail",
    "create_ticket", "get_ticket", "latest_ticket", "set_ticket_status", "ticket_reference",
    "customer_by_account", "customer_by_phone", "customer_by_id", "create_customer",
    "authenticate_customer", "OPEN_TICKET_STATUSES",
]

OPEN_TICKET_STATUSES = ("open", "in_progress")
_PIN = re.compile(r"^[0-9]{4,8}$")


def _check_choice(what: str, value: Any, choices: Iterable[str], *, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if value not in choices:
        raise ValueError(f"{what} {value!r} is not one of: {', '.join(choices)}")


def _columns(model: type[Base]) -> frozenset[str]:
    return frozenset(column.key for column in model.__table__.columns)


def _check_keys(model: type[Base], keys: Iterable[str], *, exclude: Iterable[str] = ()) -> None:
    valid = _columns(model) - set(exclude)
    unknown = sorted(set(keys) - valid)
    if unknown:
        raise ValueError(f"unknown {model.__tablename__} column(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(sorted(valid))}")


def as_dict(row: Base) -> dict[str, Any]:
    """The row's columns as a plain dict (safe to pass to another thread).

    ``pin_hash`` is left out: nothing outside this package needs it.
    """
    return {column.key: getattr(row, column.key) for column in row.__table__.columns
            if column.key != "pin_hash"}


def normalise_phone(raw: str | None) -> str:
    """Digits only: ``+86 138-0013-8000`` → ``8613800138000``. Phones are stored this way."""
    return "".join(ch for ch in (raw or "") if ch.isdigit())


# -- IVR sessions --------------------------------------------------------------------

def save_ivr_session(session: Session, record: dict[str, Any]) -> IvrSession:
    """Insert or update the ``ivr_sessions`` row ``record["id"]`` (keys = column names).

    A None for a column that may not be null keeps its default (``""``, ``[]``, 0),
    so a partial record from a session that crashed is still stored.
    """
    _check_keys(IvrSession, record)
    session_id = record.get("id")
    if not session_id:
        raise ValueError("an ivr_sessions record needs an 'id'")
    row = session.get(IvrSession, session_id)
    if row is None:
        row = IvrSession(id=session_id)
        session.add(row)
    columns = IvrSession.__table__.columns
    for key, value in record.items():
        if key == "id" or (value is None and not columns[key].nullable):
            continue
        setattr(row, key, value)
    session.flush()
    return row


def get_ivr_session(session: Session, session_id: str) -> IvrSession | None:
    return session.get(IvrSession, session_id)


# -- calls ---------------------------------------------------------------------------

def _check_call_fields(fields: dict[str, Any]) -> None:
    _check_keys(Call, fields, exclude=("id", "linkedid"))
    if "disposition" in fields:
        _check_choice("disposition", fields["disposition"], DISPOSITIONS)
    if "close_reason" in fields:
        _check_choice("close_reason", fields["close_reason"], CLOSE_REASONS, nullable=True)
    if "tier" in fields:
        _check_choice("tier", fields["tier"], TIERS, nullable=True)


def get_call(session: Session, linkedid: str) -> Call | None:
    return session.scalar(select(Call).where(Call.linkedid == linkedid))


def upsert_call(session: Session, linkedid: str, **fields: Any) -> Call:
    """The call ``linkedid`` created or updated with ``fields`` (column names).

    Safe against a concurrent insert of the same linkedid (the loser updates instead).
    """
    _check_call_fields(fields)
    call = get_call(session, linkedid)
    if call is None:
        call = Call(linkedid=linkedid, **fields)
        try:
            with session.begin_nested():
                session.add(call)
        except IntegrityError:
            call = get_call(session, linkedid)
            if call is None:  # the constraint that failed was not the linkedid one
                raise
        else:
            return call
    for key, value in fields.items():
        setattr(call, key, value)
    session.flush()
    return call


def add_call_event(session: Session, call: str | Call, at: datetime, kind: str,
                   channel: str | None = None, uniqueid: str | None = None,
                   data: dict[str, Any] | None = None) -> CallEvent:
    """Append one event to a call (given as a ``Call`` or its linkedid).

    An event for a linkedid never seen starts the call (``started_at = at``): an event
    is never dropped because the call's first event was missed.
    """
    at = to_utc(at)
    if isinstance(call, str):
        call = get_call(session, call) or upsert_call(session, call, started_at=at)
    event = CallEvent(call_id=call.id, at=at, kind=kind, channel=channel, uniqueid=uniqueid,
                      data=dict(data or {}))
    session.add(event)
    session.flush()
    return event


def open_calls(session: Session) -> list[Call]:
    """Calls not ended yet, oldest first (what a resync compares with Asterisk's view)."""
    return list(session.scalars(select(Call).where(Call.ended_at.is_(None))
                                .order_by(Call.started_at, Call.id)))


def close_call(session: Session, linkedid: str, at: datetime, reason: str,
               **fields: Any) -> Call | None:
    """End the call: ``ended_at``, ``close_reason`` and any other ``fields`` given.

    Wait and talk times the tracker did not set are derived from the timestamps.
    Closing a closed call changes nothing; an unknown linkedid returns None.
    """
    _check_choice("close_reason", reason, CLOSE_REASONS)
    _check_call_fields(fields)
    call = get_call(session, linkedid)
    if call is None or call.ended_at is not None:
        return call
    for key, value in fields.items():
        setattr(call, key, value)
    at = to_utc(at)
    call.ended_at, call.close_reason = at, reason

    def when(value: Any) -> datetime | None:  # set in this session: maybe POSIX seconds
        return None if value is None else to_utc(value)

    queued, answered, left = when(call.queue_entered_at), when(call.answered_at), when(call.queue_left_at)
    if call.wait_seconds is None and queued is not None:
        call.wait_seconds = max(0.0, ((answered or left or at) - queued).total_seconds())
    if call.talk_seconds is None and answered is not None:
        call.talk_seconds = max(0.0, (at - answered).total_seconds())
    session.flush()
    return call


# -- agents, callbacks, surveys, voicemail ---------------------------------------------

def add_agent_event(session: Session, agent: str, state: str, at: datetime | None = None,
                    queue: str | None = None, reason: str | None = None,
                    linkedid: str | None = None) -> AgentEvent:
    _check_choice("agent state", state, AGENT_STATES)
    event = AgentEvent(agent=agent, state=state, at=at or utcnow(), queue=queue,
                       reason=reason, linkedid=linkedid)
    session.add(event)
    session.flush()
    return event


def add_callback(session: Session, number: str, customer_id: int | None = None,
                 queue: str | None = None, ivr_session_id: str | None = None,
                 note: str = "", requested_at: datetime | None = None,
                 status: str = "pending") -> Callback:
    _check_choice("callback status", status, CALLBACK_STATUSES)
    if not normalise_phone(number):
        raise ValueError(f"callback number {number!r} has no digits")
    callback = Callback(number=number, customer_id=customer_id, queue=queue,
                        ivr_session_id=ivr_session_id, note=note or "", status=status,
                        requested_at=requested_at or utcnow())
    session.add(callback)
    session.flush()
    return callback


def add_survey_answer(session: Session, question: str, rating: int | None,
                      ivr_session_id: str | None = None, linkedid: str | None = None,
                      agent: str | None = None,
                      answered_at: datetime | None = None) -> SurveyAnswer:
    if rating is not None and (isinstance(rating, bool) or rating not in range(1, 6)):
        raise ValueError(f"survey rating {rating!r} is not 1-5 or None")
    answer = SurveyAnswer(question=question, rating=rating, ivr_session_id=ivr_session_id,
                          linkedid=linkedid, agent=agent, answered_at=answered_at or utcnow())
    session.add(answer)
    session.flush()
    return answer


def add_voicemail(session: Session, mailbox: str, ivr_session_id: str | None = None,
                  customer_id: int | None = None, caller_num: str | None = None,
                  left_at: datetime | None = None) -> Voicemail:
    voicemail = Voicemail(mailbox=mailbox, ivr_session_id=ivr_session_id,
                          customer_id=customer_id, caller_num=caller_num,
                          left_at=left_at or utcnow())
    session.add(voicemail)
    session.flush()
    return voicemail


# -- tickets ---------------------------------------------------------------------------

def ticket_reference(ticket_id: int) -> str:
    """``T-000042``: what callers hear and agents type."""
    return f"T-{ticket_id:06d}"


def create_ticket(session: Session, kind: str, summary: str, customer_id: int | None = None,
                  ivr_session_id: str | None = None, call_id: int | None = None,
                  status: str = "open") -> Ticket:
    """A new ticket; its reference comes from its id, so it is set after the insert."""
    _check_choice("ticket kind", kind, TICKET_KINDS)
    _check_choice("ticket status", status, TICKET_STATUSES)
    ticket = Ticket(reference="pending-" + uuid.uuid4().hex[:20], kind=kind,
                    summary=summary or "", status=status, customer_id=customer_id,
                    ivr_session_id=ivr_session_id, call_id=call_id)
    session.add(ticket)
    session.flush()
    ticket.reference = ticket_reference(ticket.id)
    session.flush()
    return ticket


def get_ticket(session: Session, reference: str) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.reference == reference.strip().upper()))


def latest_ticket(session: Session, customer_id: int, *,
                  statuses: Iterable[str] | None = None) -> Ticket | None:
    """The customer's newest ticket (among ``statuses`` when given)."""
    query = select(Ticket).where(Ticket.customer_id == customer_id)
    if statuses is not None:
        query = query.where(Ticket.status.in_(list(statuses)))
    return session.scalar(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(1))


def set_ticket_status(session: Session, reference: str, status: str) -> Ticket | None:
    _check_choice("ticket status", status, TICKET_STATUSES)
    ticket = get_ticket(session, reference)
    if ticket is not None:
        ticket.status = status
        session.flush()
    return ticket


# -- customers -------------------------------------------------------------------------

def customer_by_account(session: Session, account: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.account == account.strip()))


def customer_by_phone(session: Session, phone: str) -> Customer | None:
    """The customer whose phone has the same digits (``138-0013-8000`` = ``13800138000``).

    Several customers may share a number (a family line): the oldest account wins.
    """
    digits = normalise_phone(phone)
    if not digits:
        return None
    return session.scalar(select(Customer).where(Customer.phone == digits)
                          .order_by(Customer.id).limit(1))


def customer_by_id(session: Session, customer_id: int) -> Customer | None:
    return session.get(Customer, customer_id)


def create_customer(session: Session, account: str, name: str, phone: str, tier: str,
                    pin: str, *, language: str = "en", balance_cents: int = 0,
                    currency: str = "CNY", last_payment_cents: int | None = None,
                    last_payment_at: datetime | None = None) -> Customer:
    """A new customer; only a salted hash of ``pin`` (4-8 digits) is stored."""
    from ivr.pins import hash_pin

    _check_choice("tier", tier, TIERS)
    if not _PIN.match(pin or ""):
        raise ValueError("a PIN is 4 to 8 digits")
    customer = Customer(account=account.strip(), name=name, phone=normalise_phone(phone),
                        tier=tier, pin_hash=hash_pin(pin), language=language,
                        balance_cents=balance_cents, currency=currency,
                        last_payment_cents=last_payment_cents, last_payment_at=last_payment_at)
    session.add(customer)
    session.flush()
    return customer


# A hash of no real PIN, so an unknown account costs the same time as a wrong PIN
# (no account enumeration by timing). Computed once, on first use.
_DUMMY_HASH: str | None = None


def authenticate_customer(session: Session, account: str, pin: str) -> Customer | None:
    """The customer when ``pin`` matches the account's hashed PIN, else None."""
    from ivr.pins import hash_pin, verify_pin

    global _DUMMY_HASH
    customer = customer_by_account(session, account or "")
    if customer is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_pin(f"{secrets.randbelow(10**8):08d}")
        verify_pin(pin or "", _DUMMY_HASH)
        return None
    return customer if verify_pin(pin or "", customer.pin_hash) else None
