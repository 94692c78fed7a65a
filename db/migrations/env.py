"""Alembic environment for Hotline's schema.

``db.migrate`` hands us an open connection (``config.attributes["connection"]``), so
``hotline db upgrade`` works from any directory with no alembic.ini. The ``alembic``
command line (developers, see db/alembic.ini) gets the URL from ``-x url=...`` or
HOTLINE_DB_URL instead. ``render_as_batch`` lets SQLite alter tables by rebuilding them.
"""
from __future__ import annotations

import os
from typing import Any

from alembic import context

from db.database import make_engine
from db.migrate import CONFIGURE_OPTIONS

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("HOTLINE_DB_URL")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set HOTLINE_DB_URL")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), literal_binds=True, **CONFIGURE_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Any) -> None:
    context.configure(connection=connection, **CONFIGURE_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run_with(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
