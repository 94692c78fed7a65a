"""Demo customers and tickets, so a fresh install answers a real call on day one.

``hotline db seed`` (or ``seed_demo(session)``) adds them; running it again adds
nothing. The PINs are public: use these only on a demo or test system.

======= ================ ======== ===== ============= ===========================
account name             tier     PIN   phone         notes
======= ================ ======== ===== ============= ===========================
100001  张伟             vip      1234  13800138001   zh; fault ticket in progress
100002  Alice Johnson    key      2345  13900139002   en
100003  李娜             regular  3456  13700137003   zh; owes money; complaint open
100004  Robert Chen      regular  4567  13600136004   en; no payment on record
100005  王芳             key      5678  13500135005   zh; fault ticket closed
100006  刘洋             regular  6789  15800158006   zh
100007  Emily Zhao       vip      7890  15900159007   en; request ticket open
100008  陈静             regular  8901  18600186008   zh; balance zero
100009  Michael Brown    regular  9012  18700187009   en
100010  杨磊             key      0123  18800188010   zh
100011  赵敏             regular  1357  13300133011   zh
100012  Sarah Wu         vip      2468  13100131012   en
======= ================ ======== ===== ============= ===========================
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

from sqlalchemy.orm import Session

from db import repository as repo

__all__ = ["DEMO_CUSTOMERS", "DEMO_TICKETS", "seed_demo"]


class DemoCustomer(NamedTuple):
    account: str
    name: str
    tier: str
    pin: str
    phone: str
    language: str
    balance_cents: int
    last_payment_cents: int | None
    last_payment_at: datetime | None


def _at(day: str, hhmm: str = "10:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=timezone.utc)


DEMO_CUSTOMERS = (
    DemoCustomer("100001", "张伟", "vip", "1234", "13800138001", "zh", 1256800, 50000, _at("2026-11-02", "03:15")),
    DemoCustomer("100002", "Alice Johnson", "key", "2345", "13900139002", "en", 32050, 19900, _at("2026-11-10", "14:40")),
    DemoCustomer("100003", "李娜", "regular", "3456", "13700137003", "zh", -8650, 5000, _at("2026-09-28", "08:05")),
    DemoCustomer("100004", "Robert Chen", "regular", "4567", "13600136004", "en", 0, None, None),
    DemoCustomer("100005", "王芳", "key", "5678", "13500135005", "zh", 88800, 100000, _at("2026-11-15", "01:30")),
    DemoCustomer("100006", "刘洋", "regular", "6789", "15800158006", "zh", 4523, 3000, _at("2026-10-21", "11:11")),
    DemoCustomer("100007", "Emily Zhao", "vip", "7890", "15900159007", "en", 530000, 200000, _at("2026-11-20", "09:00")),
    DemoCustomer("100008", "陈静", "regular", "8901", "18600186008", "zh", 0, 12800, _at("2026-10-05", "06:45")),
    DemoCustomer("100009", "Michael Brown", "regular", "9012", "18700187009", "en", 1999, 2999, _at("2026-11-01", "16:20")),
    DemoCustomer("100010", "杨磊", "key", "0123", "18800188010", "zh", 67400, 30000, _at("2026-11-18", "02:00")),
    DemoCustomer("100011", "赵敏", "regular", "1357", "13300133011", "zh", 15800, 10000, _at("2026-11-12", "12:30")),
    DemoCustomer("100012", "Sarah Wu", "vip", "2468", "13100131012", "en", 1020000, 500000, _at("2026-11-22", "07:10")),
)

# (account, kind, status, summary)
DEMO_TICKETS = (
    ("100001", "fault", "in_progress", "No dial tone on the home line since this morning"),
    ("100003", "complaint", "open", "Charged twice for the October bill"),
    ("100005", "fault", "closed", "Broadband slow every evening"),
    ("100007", "request", "open", "Move the fibre line to the new office address"),
)


def seed_demo(session: Session) -> dict[str, int]:
    """Add the demo customers (and their tickets) that are missing; counts of what was added."""
    added_customers = added_tickets = 0
    created: dict[str, int] = {}
    for demo in DEMO_CUSTOMERS:
        if repo.customer_by_account(session, demo.account) is not None:
            continue
        customer = repo.create_customer(
            session, demo.account, demo.name, demo.phone, demo.tier, demo.pin,
            language=demo.language, balance_cents=demo.balance_cents,
            last_payment_cents=demo.last_payment_cents, last_payment_at=demo.last_payment_at)
        created[demo.account] = customer.id
        added_customers += 1
    for account, kind, status, summary in DEMO_TICKETS:
        if account in created:  # tickets come with their customer, never twice
            repo.create_ticket(session, kind, summary, customer_id=created[account], status=status)
            added_tickets += 1
    return {"customers": added_customers, "tickets": added_tickets}
