"""``hotline db upgrade|current|seed``: bring a database to the schema this Hotline needs,
say where it stands, and load the demo customers.

The database is ``--url``, else ``HOTLINE_DB_URL``, else ``sqlite:///var/hotline.db``
(relative to the working directory). Failures are one line on stderr and exit 1,
never a traceback; passwords in URLs are always masked.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import click

__all__ = ["db", "resolve_url", "DEFAULT_URL"]

DEFAULT_URL = "sqlite:///var/hotline.db"
EXIT_FAILURE = 1


def resolve_url(url: str | None) -> str:
    """``--url``, else ``HOTLINE_DB_URL``, else SQLite under ./var."""
    return url or os.environ.get("HOTLINE_DB_URL") or DEFAULT_URL


class DbCommandError(click.ClickException):
    exit_code = EXIT_FAILURE

    def show(self, file: Any = None) -> None:
        click.echo(f"hotline db: {self.message}", err=True)


def _guarded(work: Callable[[], Any]) -> Any:
    """Run ``work``; turn every expected failure into a one-line ``DbCommandError``."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from db.database import DatabaseUnavailable
    from db.migrate import SchemaOutOfDate

    try:
        return work()
    except (DatabaseUnavailable, SchemaOutOfDate, CommandError, ValueError) as exc:
        raise DbCommandError(str(exc)) from None
    except SQLAlchemyError as exc:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
        raise DbCommandError(f"database error: {type(exc).__name__}: {first}") from None


url_option = click.option(
    "--url", metavar="URL", default=None,
    help=f"SQLAlchemy database URL [default: $HOTLINE_DB_URL, else {DEFAULT_URL}]")


@click.group()
def db() -> None:
    """Database schema (Alembic) and sample data."""


@db.command()
@url_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(url: str | None, revision: str) -> None:
    """Create or migrate the schema to this version of Hotline."""
    from db import migrate
    from db.database import mask_url

    url = resolve_url(url)

    def work() -> tuple[str | None, str | None]:
        before = migrate.current_revision(url)
        migrate.upgrade(url, revision)
        return before, migrate.current_revision(url)

    before, after = _guarded(work)
    where = mask_url(url)
    if before == after:
        click.echo(f"{where}: already at revision {after}, nothing to do")
    else:
        click.echo(f"{where}: upgraded from {before or 'an empty schema'} to revision {after}")


@db.command()
@url_option
@click.option("--check", is_flag=True, help="Exit 1 unless the schema is up to date.")
def current(url: str | None, check: bool) -> None:
    """Show the schema revision of the database and whether it is up to date."""
    from db import migrate
    from db.database import mask_url

    url = resolve_url(url)
    revision, head = _guarded(lambda: (migrate.current_revision(url), migrate.head_revision()))
    where = mask_url(url)
    if revision == head:
        click.echo(f"{where}: revision {revision} (up to date)")
        return
    at = f"revision {revision}" if revision else "an empty schema"
    click.echo(f"{where}: {at}, this Hotline needs {head}: run `hotline db upgrade`")
    if check:
        raise SystemExit(EXIT_FAILURE)


@db.command()
@url_option
def seed(url: str | None) -> None:
    """Add the demo customers and tickets (PINs listed in db/seed.py); safe to re-run."""
    from db import migrate
    from db.database import Database, mask_url
    from db.seed import seed_demo

    url = resolve_url(url)

    def work() -> dict[str, int]:
        migrate.check_schema(url)
        database = Database(url)
        try:
            return database.run_sync(seed_demo)
        finally:
            database.dispose()

    added = _guarded(work)
    click.echo(f"{mask_url(url)}: added {added['customers']} demo customers and "
               f"{added['tickets']} tickets (demo PINs: see db/seed.py)")
