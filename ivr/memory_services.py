"""``ivr.services.Services`` without a database: for the simulator, flow tests and the demo.

It answers exactly like ``db.ivr_services.DatabaseServices`` (same record fields, same
lookup fields and errors, PINs checked against salted scrypt hashes with
``ivr.pins``), and keeps everything a test wants to check afterwards: tickets,
callbacks, survey answers and voicemails, in plain lists.
"""
from __future__ import annotations

import copy
import threading
from typing import Any, Iterable, Mapping

from ivr import pins
from ivr.services import (
    CUSTOMER_FIELDS, LOOKUP_BY, LOOKUP_FIELDS, OPEN_TICKET_STATUSES, TICKET_FIELDS,
    check_lookup_request,
)

__all__ = ["InMemoryServices", "DEMO_CUSTOMERS", "CUSTOMER_FIELDS", "TICKET_FIELDS", "LOOKUP_FIELDS",
           "LOOKUP_BY", "OPEN_TICKET_STATUSES"]


# The demo customers of docs/flows.md (`hotline simulate`), PINs in clear only here.
DEMO_CUSTOMERS: tuple[Mapping[str, Any], ...] = (
    {"account": "100001", "pin": "1234", "name": "王芳 (Wang Fang)", "phone": "13800000001", "tier": "vip",
     "language": "zh", "balance_cents": 1234567, "currency": "CNY", "last_payment_cents": 20000,
     "last_payment_at": "2026-11-20T10:00:00",
     "tickets": [{"reference": "T-000101", "status": "in_progress", "kind": "fault",
                  "summary": "No dial tone"}]},
    {"account": "100002", "pin": "2345", "name": "李强 (Li Qiang)", "phone": "13800000002", "tier": "key",
     "language": "zh", "balance_cents": 50000, "currency": "CNY", "last_payment_cents": None,
     "last_payment_at": None, "tickets": []},
    {"account": "100003", "pin": "3456", "name": "Alice Chen", "phone": "13800000003", "tier": "regular",
     "language": "en", "balance_cents": -1250, "currency": "CNY", "last_payment_cents": 9900,
     "last_payment_at": "2026-10-02T09:30:00",
     "tickets": [{"reference": "T-000102", "status": "closed", "kind": "fault", "summary": "Slow internet"}]},
)


def _digits(text: Any) -> str:
    return "".join(ch for ch in str(text or "") if ch.isdigit())


class InMemoryServices:
    """Customers from a list of dicts (``pin`` hashed at once, or ``pin_hash`` given).

    Each dict may hold the ``CUSTOMER_FIELDS`` and ``tickets`` (list of {reference,
    status, kind, summary}); ``customer_id`` defaults to 1, 2, 3... Thread-safe: the
    FastAGI driver calls services from worker threads.
    """

    def __init__(self, customers: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None = None):
        if customers is None:
            customers = DEMO_CUSTOMERS
        if isinstance(customers, Mapping):
            customers = [{"account": account, **record} for account, record in customers.items()]
        self._lock = threading.Lock()
        self.customers: list[dict[str, Any]] = []
        self.tickets: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.survey_answers: list[dict[str, Any]] = []
        self.voicemails: list[dict[str, Any]] = []
        for index, given in enumerate(customers, start=1):
            record = {name: copy.deepcopy(given.get(name)) for name in CUSTOMER_FIELDS}
            record["customer_id"] = given.get("customer_id", index)
            record["account"] = str(given["account"])
            record["tier"] = given.get("tier") or "regular"
            record["language"] = given.get("language") or "en"
            record["currency"] = given.get("currency") or "CNY"
            record["balance_cents"] = given.get("balance_cents") or 0
            record["phone"] = _digits(given.get("phone"))
            if given.get("pin_hash"):
                record["pin_hash"] = given["pin_hash"]
            elif given.get("pin") is not None:
                record["pin_hash"] = pins.hash_pin(str(given["pin"]))
            else:
                record["pin_hash"] = None
            self.customers.append(record)
            for ticket in given.get("tickets") or []:
                self.tickets.append({"customer_id": record["customer_id"], "kind": "fault",
                                     "summary": "", "session_id": None, **ticket})
        self._dummy_hash: str | None = None

    # -- finding customers ---------------------------------------------------------------------
    def _by(self, by: str, value: Any) -> dict[str, Any] | None:
        text = "" if value is None else str(value).strip()
        for customer in self.customers:
            if by == "account" and customer["account"] == text:
                return customer
            if by == "phone" and text and customer["phone"] == _digits(text):
                return customer
            if by == "customer_id" and text not in ("", "None", "none") and str(customer["customer_id"]) == text:
                return customer
        return None

    @staticmethod
    def _public(customer: Mapping[str, Any]) -> dict[str, Any]:
        record = {name: copy.deepcopy(customer[name]) for name in CUSTOMER_FIELDS}
        return record

    def _ticket_fields(self, customer_id: Any) -> dict[str, Any]:
        mine = [t for t in self.tickets if t["customer_id"] == customer_id]
        open_ones = [t for t in mine if t.get("status") in OPEN_TICKET_STATUSES]
        latest = (open_ones or mine or [None])[-1]
        return {
            "ticket_reference": latest["reference"] if latest else None,
            "ticket_status": latest["status"] if latest else None,
            "ticket_kind": latest.get("kind") if latest else None,
            "open_tickets": len(open_ones),
        }

    # -- Services --------------------------------------------------------------------------------
    def authenticate(self, account: str, pin: str) -> dict[str, Any] | None:
        customer = self._by("account", account)
        if customer is None or not customer.get("pin_hash"):
            # Same cost as a wrong PIN: no account enumeration by timing.
            if self._dummy_hash is None:
                self._dummy_hash = pins.hash_pin("00000000")
            pins.verify_pin(str(pin or ""), self._dummy_hash)
            return None
        if not pins.verify_pin(str(pin or ""), customer["pin_hash"]):
            return None
        return self._public(customer)

    def lookup(self, by: str, value: str, fields: list[str]) -> dict[str, Any] | None:
        check_lookup_request(by, fields)
        customer = self._by(by, value)
        if customer is None:
            return None
        record = self._public(customer)
        if any(f in TICKET_FIELDS for f in fields):
            record.update(self._ticket_fields(customer["customer_id"]))
        return {f: record[f] for f in fields}

    def create_ticket(self, customer_id: int | None, kind: str, summary: str,
                      session_id: str | None) -> str:
        with self._lock:
            reference = f"T-{len(self.tickets) + 1:06d}"
            self.tickets.append({"reference": reference, "customer_id": customer_id, "kind": kind,
                                 "summary": summary, "status": "open", "session_id": session_id})
        return reference

    def ticket_status(self, customer_id: int | None, reference: str | None) -> dict[str, Any] | None:
        if reference:
            found = [t for t in self.tickets if t["reference"] == str(reference)]
            ticket = found[0] if found else None
            if ticket is not None and customer_id is not None and str(ticket["customer_id"]) != str(customer_id):
                ticket = None   # never tell a caller about someone else's ticket
        elif customer_id is not None:
            mine = [t for t in self.tickets if str(t["customer_id"]) == str(customer_id)
                    and t.get("status") in OPEN_TICKET_STATUSES]
            ticket = mine[-1] if mine else None
        else:
            return None
        if ticket is None:
            return None
        return {"reference": ticket["reference"], "status": ticket["status"], "kind": ticket.get("kind"),
                "summary": ticket.get("summary", "")}

    def request_callback(self, number: str, customer_id: int | None, queue: str | None,
                         session_id: str | None, note: str = "") -> str:
        with self._lock:
            callback_id = str(len(self.callbacks) + 1)
            self.callbacks.append({"id": callback_id, "number": number, "customer_id": customer_id,
                                   "queue": queue, "session_id": session_id, "note": note})
        return callback_id

    def store_survey(self, session_id: str | None, question: str, rating: int | None) -> None:
        if rating is not None and not (isinstance(rating, int) and 1 <= rating <= 5):
            raise ValueError(f"a survey rating is 1 to 5 or None, not {rating!r}")
        with self._lock:
            self.survey_answers.append({"session_id": session_id, "question": question, "rating": rating})

    def store_voicemail(self, session_id: str | None, mailbox: str, customer_id: int | None) -> None:
        with self._lock:
            self.voicemails.append({"session_id": session_id, "mailbox": mailbox, "customer_id": customer_id})
