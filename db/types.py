"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no time zones: a plain ``DateTime(timezone=True)`` comes back naive there
and aware on PostgreSQL. ``UTCDateTime`` stores UTC and always returns aware UTC
datetimes, and refuses naive ones (a naive datetime is a bug in the caller: we cannot
know which clock it was read from). POSIX seconds (what the tracker and the AGI driver
count in) are accepted too.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime", "utcnow", "to_utc"]


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default of every ``*_at`` column)."""
    return datetime.now(timezone.utc)


def to_utc(value: datetime | float | int) -> datetime:
    """An aware UTC datetime from an aware datetime or POSIX seconds; naive is refused."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime or POSIX seconds, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to a UTC column; "
                         "pass an aware datetime (datetime.now(timezone.utc))")
    return value.astimezone(timezone.utc)


class UTCDateTime(TypeDecorator):
    """``DateTime(timezone=True)`` that stores UTC and returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = to_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)  # stored as UTC text without an offset
        return value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
