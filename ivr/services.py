"""What the flow engine may ask of the outside world, as one narrow interface.

Steps never touch the database: they yield ``ServiceCall(method, kwargs)`` and the
driver calls the method of the same name on a ``Services`` object, off the reactor.
``db.ivr_services.DatabaseServices`` is the real one; ``InMemoryServices`` serves the
simulator, flow tests and the demo without a database.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

#: What ``lookup`` can search by, and the fields it can return (both implementations).
LOOKUP_BY = ("account", "phone", "customer_id")
CUSTOMER_FIELDS = ("customer_id", "account", "name", "phone", "tier", "language",
                   "balance_cents", "currency", "last_payment_cents", "last_payment_at")
#: ticket_*: the customer's newest open ticket, else their newest ticket, else None.
TICKET_FIELDS = ("ticket_reference", "ticket_status", "ticket_kind", "open_tickets")
LOOKUP_FIELDS = CUSTOMER_FIELDS + TICKET_FIELDS
OPEN_TICKET_STATUSES = ("open", "in_progress")


def check_lookup_request(by: str, fields: Sequence[str]) -> None:
    """Refuse a lookup the flow got wrong, naming what would be right (a flow error)."""
    if by not in LOOKUP_BY:
        raise ValueError(f"cannot look customers up by {by!r}; use one of: {', '.join(LOOKUP_BY)}")
    unknown = [f for f in fields if f not in LOOKUP_FIELDS]
    if unknown:
        raise ValueError(f"unknown lookup field(s) {', '.join(map(repr, unknown))}; "
                         f"valid fields: {', '.join(LOOKUP_FIELDS)}")


class Services(Protocol):
    def authenticate(self, account: str, pin: str) -> dict[str, Any] | None:
        """The customer record when the PIN matches the account's hashed PIN, else None."""

    def lookup(self, by: str, value: str, fields: list[str]) -> dict[str, Any] | None:
        """Customer/account fields (``by`` is ``account``, ``phone`` or ``customer_id``)."""

    def create_ticket(self, customer_id: int | None, kind: str, summary: str,
                      session_id: str | None) -> str:
        """Open a ticket (fault report, complaint); returns its reference."""

    def ticket_status(self, customer_id: int | None, reference: str | None) -> dict[str, Any] | None:
        """Status of a ticket by reference, or of the customer's latest open ticket."""

    def request_callback(self, number: str, customer_id: int | None, queue: str | None,
                         session_id: str | None, note: str = "") -> str:
        """Store a callback request; returns its id."""

    def store_survey(self, session_id: str | None, question: str, rating: int | None) -> None:
        """Store one 1-5 answer (None = no answer) for the call."""

    def store_voicemail(self, session_id: str | None, mailbox: str,
                        customer_id: int | None) -> None:
        """Record that the caller was sent to voicemail box ``mailbox``."""
