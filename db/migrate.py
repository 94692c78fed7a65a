"""Schema migrations as a Python API: what ``hotline db`` and ``hotline serve`` call.

Alembic is configured in code (the scripts ship inside the ``db`` package), so an
installed Hotline migrates a database from any working directory without an ini file.
"""
from __future__ import annotations

import os
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from db.database import DatabaseUnavailable, make_engine, mask_url, normalise_url
from db.models import Base
from db.types import UTCDateTime

__all__ = ["SchemaOutOfDate", "alembic_config", "upgrade", "downgrade", "current_revision",
           "head_revision", "is_up_to_date", "check_schema", "schema_diff"]

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Migrations spell plain SQLAlchemy types, so they never import our code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# Shared by migrations/env.py and ``schema_diff`` so both compare the same way.
CONFIGURE_OPTIONS: dict[str, Any] = {
    "target_metadata": Base.metadata,
    "render_as_batch": True,
    "compare_type": True,
    "render_item": render_item,
}


class SchemaOutOfDate(Exception):
    """The database schema is not the one this Hotline was built for (run the upgrade)."""


def alembic_config() -> Config:
    """An Alembic ``Config`` pointing at the packaged migration scripts (no ini file)."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    return config


def _with_connection(url: str | URL, work: Any) -> Any:
    engine = make_engine(url)
    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            raise DatabaseUnavailable.from_error(url, exc) from None
        with connection:
            result = work(connection)
            connection.commit()
            return result
    finally:
        engine.dispose()


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (default: the newest)."""
    def work(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    _with_connection(url, work)


def downgrade(url: str | URL, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` = empty schema)."""
    def work(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    _with_connection(url, work)


def current_revision(url: str | URL) -> str | None:
    """The revision the database is at; None for a database never migrated.

    A SQLite file that does not exist is not created just to be asked.
    """
    parsed = normalise_url(url)
    if (parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
            and not os.path.exists(parsed.database)):
        return None
    return _with_connection(url, lambda c: MigrationContext.configure(c).get_current_revision())


def head_revision() -> str:
    """The newest revision shipped with this Hotline."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts found in " + MIGRATIONS_DIR
    return head


def is_up_to_date(url: str | URL) -> bool:
    return current_revision(url) == head_revision()


def check_schema(url: str | URL) -> None:
    """Raise ``SchemaOutOfDate`` (a one-line, actionable message) unless at head."""
    current, head = current_revision(url), head_revision()
    if current != head:
        at = f"revision {current}" if current else "an empty schema"
        raise SchemaOutOfDate(
            f"database {mask_url(url)} is at {at}, this Hotline needs revision {head}: "
            "run `hotline db upgrade` (or set db.auto_migrate = true)")


def schema_diff(url: str | URL) -> list[Any]:
    """Differences between the database and ``db.models`` (empty when they agree)."""
    from alembic.autogenerate import compare_metadata

    def work(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts=dict(CONFIGURE_OPTIONS))
        return compare_metadata(context, CONFIGURE_OPTIONS["target_metadata"])
    return _with_connection(url, work)
