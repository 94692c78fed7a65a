"""Shared pieces for the database tests: SQLite and PostgreSQL URLs, migrated databases,
and a fake reactor that lets ``Database.run`` be tested without running Twisted.

PostgreSQL comes from ``HOTLINE_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Each test run creates its own
``hotline_test_<random>`` databases there and drops them afterwards; with no server
reachable those tests are skipped, saying why.
"""
from __future__ import annotations

import os
import queue
import uuid
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db.database import Database, mask_url
from db.migrate import upgrade
from db.models import Base

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_MARK = pytest.mark.postgres


def pg_server_url() -> str:
    return os.environ.get("HOTLINE_TEST_PG_URL") or DEFAULT_PG_URL


def _admin_connect() -> Any:
    """A psycopg autocommit connection to the test server, or a pytest skip saying why."""
    import psycopg

    url = make_url(pg_server_url())
    try:
        return psycopg.connect(
            host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username,
            password=url.password, dbname=url.database or "postgres",
            autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or ["?"])[0]
        pytest.skip(f"no PostgreSQL at {mask_url(url)} ({first}); "
                    "set HOTLINE_TEST_PG_URL to run these tests")


class PgDatabases:
    """Creates throwaway databases on the test server and drops them at the end."""

    def __init__(self) -> None:
        self.admin = _admin_connect()
        self.created: list[str] = []

    def create(self) -> str:
        name = f"hotline_test_{uuid.uuid4().hex[:12]}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(pg_server_url()).set(
            drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self.created:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    databases = PgDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture
def pg_empty_url(pg_databases: PgDatabases) -> str:
    """A new, empty PostgreSQL database (never migrated) for this test."""
    return pg_databases.create()


@pytest.fixture(scope="session")
def pg_migrated_url(pg_databases: PgDatabases) -> str:
    """One PostgreSQL database per test run, migrated to head."""
    url = pg_databases.create()
    upgrade(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/hotline.db"


def _empty_tables(database: Database) -> None:
    def work(session: Any) -> None:
        if database.url.get_backend_name() == "postgresql":
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(table.delete())
    database.run_sync(work)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=PG_MARK)])
def database(request: Any, tmp_path: Any) -> Iterator[Database]:
    """A migrated, empty ``Database``: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/hotline.db"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_migrated_url")
    database = Database(url)
    _empty_tables(database)
    try:
        yield database
    finally:
        database.dispose()


class QueueReactor:
    """Just enough reactor for ``deferToThreadPool``: ``callFromThread`` queues the call,
    and ``pump`` runs queued calls on the test thread, as the reactor thread would."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Callable[..., Any], tuple, dict]] = queue.Queue()
        self.triggers: dict[int, tuple[str, str, Callable[[], Any]]] = {}

    def callFromThread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.calls.put((fn, args, kwargs))

    def addSystemEventTrigger(self, phase: str, event: str, fn: Callable[[], Any]) -> int:
        handle = len(self.triggers) + 1
        self.triggers[handle] = (phase, event, fn)
        return handle

    def removeSystemEventTrigger(self, handle: int) -> None:
        del self.triggers[handle]

    def pump(self, deferred: Any, timeout: float = 10.0) -> Any:
        """Run calls from worker threads until ``deferred`` has fired; its result (or raise)."""
        outcome: list[Any] = []
        deferred.addBoth(outcome.append)
        while not outcome:
            fn, args, kwargs = self.calls.get(timeout=timeout)  # bounded wait, no sleeping
            fn(*args, **kwargs)
        result = outcome[0]
        from twisted.python.failure import Failure
        if isinstance(result, Failure):
            result.raiseException()
        return result


_PIN_HASHES: dict[str, str] = {}


@pytest.fixture
def cached_pin_hashes(monkeypatch: Any) -> None:
    """Hash each PIN once per test run (scrypt is slow on purpose; seeding does 12).

    Only for tests that do not check salting: equal PINs get equal hashes here.
    """
    import ivr.pins

    real_hash_pin = ivr.pins.hash_pin

    def cached(pin: str) -> str:
        if pin not in _PIN_HASHES:
            _PIN_HASHES[pin] = real_hash_pin(pin)
        return _PIN_HASHES[pin]

    monkeypatch.setattr(ivr.pins, "hash_pin", cached)
