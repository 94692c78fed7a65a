"""The tables of docs/data-model.md as SQLAlchemy 2.0 typed models.

The schema itself is only ever created by Alembic (``hotline db upgrade``); these
classes are what the code reads and writes, and what a new migration is diffed
against. Enumerated values (tier, status, disposition ...) are plain strings checked
by the code that writes them, so adding a value never needs a table rebuild on SQLite.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, CheckConstraint, Float, ForeignKey, Integer, MetaData, String, Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.types import UTCDateTime, utcnow

__all__ = [
    "Base", "NAMING_CONVENTION", "Customer", "Ticket", "IvrSession", "Call", "CallEvent",
    "AgentEvent", "Callback", "SurveyAnswer", "Voicemail",
    "TIERS", "TICKET_KINDS", "TICKET_STATUSES", "DISPOSITIONS", "CLOSE_REASONS",
    "AGENT_STATES", "CALLBACK_STATUSES",
]

# Deterministic constraint names: the same migration works on SQLite (batch mode needs
# names to drop/alter constraints) and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TIERS = ("vip", "key", "regular")
TICKET_KINDS = ("fault", "complaint", "request")
TICKET_STATUSES = ("open", "in_progress", "closed")
DISPOSITIONS = ("answered", "abandoned", "voicemail", "callback", "ivr_only", "timeout", "unknown")
CLOSE_REASONS = ("hangup", "resync_missing", "shutdown")
AGENT_STATES = ("logged_in", "logged_out", "paused", "unpaused", "ringing", "talking",
                "wrap_up", "available")
CALLBACK_STATUSES = ("pending", "done", "failed")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32), index=True)  # digits only, as caller ID shows it
    tier: Mapped[str] = mapped_column(String(16), default="regular")
    pin_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(8), default="en")
    balance_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    last_payment_cents: Mapped[int | None] = mapped_column(BigInteger)
    last_payment_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tickets: Mapped[list[Ticket]] = relationship(back_populates="customer")

    def __repr__(self) -> str:  # never shows pin_hash
        return f"<Customer {self.id} account={self.account!r} tier={self.tier}>"


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    # Not a foreign key: the IVR session row is written when the session ends, after
    # the tickets it opened.
    ivr_session_id: Mapped[str | None] = mapped_column(String(32), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer | None] = relationship(back_populates="tickets")


class IvrSession(Base):
    __tablename__ = "ivr_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(128), default="")
    uniqueid: Mapped[str] = mapped_column(String(64), default="", index=True)
    # null when Asterisk had none to give ("unknown" caller ID, linkedid not read)
    linkedid: Mapped[str | None] = mapped_column(String(64), index=True)
    caller_id_num: Mapped[str | None] = mapped_column(String(64))
    caller_id_name: Mapped[str | None] = mapped_column(String(128))
    dnid: Mapped[str | None] = mapped_column(String(64))
    flow: Mapped[str] = mapped_column(String(128), default="")
    flow_version: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    steps: Mapped[list[Any]] = mapped_column(default=list)
    inputs: Mapped[list[Any]] = mapped_column(default=list)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    tier: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32), default="")
    outcome_target: Mapped[str | None] = mapped_column(String(255))
    outcome_step: Mapped[str | None] = mapped_column(String(128))
    outcome_detail: Mapped[str] = mapped_column(Text, default="")
    agi_commands: Mapped[int] = mapped_column(Integer, default=0)


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)
    caller_num: Mapped[str | None] = mapped_column(String(64))  # null: no caller ID
    caller_name: Mapped[str | None] = mapped_column(String(128))
    dnid: Mapped[str | None] = mapped_column(String(64))
    ivr_session_id: Mapped[str | None] = mapped_column(String(32), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ivr_entered_at: Mapped[datetime | None]
    queue_entered_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    queue_left_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    hold_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    agent: Mapped[str | None] = mapped_column(String(128))
    transfers: Mapped[list[Any]] = mapped_column(default=list)
    disposition: Mapped[str] = mapped_column(String(16), default="unknown")
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    hangup_cause_text: Mapped[str | None] = mapped_column(String(128))
    close_reason: Mapped[str | None] = mapped_column(String(16))  # null while the call is open

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", order_by="CallEvent.id", cascade="all, delete-orphan",
        passive_deletes=True)


class CallEvent(Base):
    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(128))
    uniqueid: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    call: Mapped[Call] = relationship(back_populates="events")


class AgentEvent(Base):
    __tablename__ = "agent_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(128), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(255))
    linkedid: Mapped[str | None] = mapped_column(String(64))


class Callback(Base):
    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    ivr_session_id: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class SurveyAnswer(Base):
    __tablename__ = "survey_answers"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ivr_session_id: Mapped[str | None] = mapped_column(String(32), index=True)
    linkedid: Mapped[str | None] = mapped_column(String(64), index=True)
    question: Mapped[str] = mapped_column(String(64))
    rating: Mapped[int | None] = mapped_column(Integer)
    agent: Mapped[str | None] = mapped_column(String(128))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class Voicemail(Base):
    __tablename__ = "voicemails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ivr_session_id: Mapped[str | None] = mapped_column(String(32))
    mailbox: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    caller_num: Mapped[str | None] = mapped_column(String(64))
    left_at: Mapped[datetime] = mapped_column(default=utcnow)
