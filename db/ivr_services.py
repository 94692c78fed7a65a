"""The IVR's ``Services`` backed by the database.

The FastAGI driver calls these methods in a worker thread (classic AGI: inline), so
they are synchronous, each one transaction, and return plain values only: no ORM
object ever leaves the thread that loaded it. Values from flows arrive as text
(``${customer_id}`` is a string), so ids are parsed here.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import repository as repo
from db.database import Database
from db.models import Customer, Ticket
from ivr.services import (
    LOOKUP_BY, LOOKUP_FIELDS, TICKET_FIELDS,
    check_lookup_request,
)

__all__ = ["DatabaseServices", "LOOKUP_FIELDS", "LOOKUP_BY"]



def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_id(value: Any, what: str = "customer_id") -> int | None:
    """``42``/``"42"`` → 42; None/""/"None" → None (not authenticated); else ValueError."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text in ("", "None", "none"):
        return None
    if not text.isdigit():
        raise ValueError(f"{what} {value!r} is not a number")
    return int(text)


def customer_record(customer: Customer) -> dict[str, Any]:
    """What ``authenticate`` returns: the fields a flow or a screen pop may use."""
    return {
        "customer_id": customer.id,
        "name": customer.name,
        "tier": customer.tier,
        "account": customer.account,
        "phone": customer.phone,
        "language": customer.language,
        "balance_cents": customer.balance_cents,
        "currency": customer.currency,
        "last_payment_cents": customer.last_payment_cents,
        "last_payment_at": _iso(customer.last_payment_at),
    }


class DatabaseServices:
    """``ivr.services.Services`` on a ``Database`` (sync: call from a worker thread)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def authenticate(self, account: str, pin: str) -> dict[str, Any] | None:
        def work(session: Session) -> dict[str, Any] | None:
            customer = repo.authenticate_customer(session, str(account or ""), str(pin or ""))
            return None if customer is None else customer_record(customer)
        return self.database.run_sync(work)

    def lookup(self, by: str, value: str, fields: list[str]) -> dict[str, Any] | None:
        check_lookup_request(by, fields)

        def work(session: Session) -> dict[str, Any] | None:
            customer = self._find_customer(session, by, value)
            if customer is None:
                return None
            record = customer_record(customer)
            if any(f in TICKET_FIELDS for f in fields):
                record.update(self._ticket_fields(session, customer.id))
            return {f: record[f] for f in fields}
        return self.database.run_sync(work)

    @staticmethod
    def _find_customer(session: Session, by: str, value: Any) -> Customer | None:
        if by == "account":
            return repo.customer_by_account(session, str(value or ""))
        if by == "phone":
            return repo.customer_by_phone(session, str(value or ""))
        try:
            customer_id = _parse_id(value)
        except ValueError:
            return None
        return None if customer_id is None else repo.customer_by_id(session, customer_id)

    @staticmethod
    def _ticket_fields(session: Session, customer_id: int) -> dict[str, Any]:
        open_statuses = repo.OPEN_TICKET_STATUSES
        ticket = (repo.latest_ticket(session, customer_id, statuses=open_statuses)
                  or repo.latest_ticket(session, customer_id))
        open_count = session.scalar(select(func.count(Ticket.id)).where(
            Ticket.customer_id == customer_id, Ticket.status.in_(open_statuses)))
        return {
            "ticket_reference": ticket.reference if ticket else None,
            "ticket_status": ticket.status if ticket else None,
            "ticket_kind": ticket.kind if ticket else None,
            "open_tickets": open_count,
        }

    def create_ticket(self, customer_id: int | None, kind: str, summary: str,
                      session_id: str | None) -> str:
        customer = _parse_id(customer_id)
        return self.database.run_sync(lambda session: repo.create_ticket(
            session, kind, summary, customer_id=customer, ivr_session_id=session_id).reference)

    def ticket_status(self, customer_id: int | None, reference: str | None) -> dict[str, Any] | None:
        """By reference (only the customer's own when ``customer_id`` is known), or the
        customer's newest open ticket."""
        customer = _parse_id(customer_id)

        def work(session: Session) -> dict[str, Any] | None:
            if reference:
                ticket = repo.get_ticket(session, str(reference))
                if ticket is not None and customer is not None and ticket.customer_id != customer:
                    ticket = None  # never tell a caller about someone else's ticket
            elif customer is not None:
                ticket = repo.latest_ticket(session, customer, statuses=repo.OPEN_TICKET_STATUSES)
            else:
                return None
            if ticket is None:
                return None
            return {"reference": ticket.reference, "status": ticket.status, "kind": ticket.kind,
                    "summary": ticket.summary, "created_at": _iso(ticket.created_at),
                    "updated_at": _iso(ticket.updated_at)}
        return self.database.run_sync(work)

    def request_callback(self, number: str, customer_id: int | None, queue: str | None,
                         session_id: str | None, note: str = "") -> str:
        customer = _parse_id(customer_id)
        return self.database.run_sync(lambda session: str(repo.add_callback(
            session, number, customer_id=customer, queue=queue or None,
            ivr_session_id=session_id, note=note).id))

    def store_survey(self, session_id: str | None, question: str, rating: int | None) -> None:
        self.database.run_sync(lambda session: repo.add_survey_answer(
            session, question, rating, ivr_session_id=session_id) and None)

    def store_voicemail(self, session_id: str | None, mailbox: str,
                        customer_id: int | None) -> None:
        customer = _parse_id(customer_id)
        self.database.run_sync(lambda session: repo.add_voicemail(
            session, mailbox, ivr_session_id=session_id, customer_id=customer) and None)
