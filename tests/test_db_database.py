"""Database: engine setup per backend, transactions, Deferreds off the reactor thread,
and a one-line error when the database cannot be reached."""
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from db.database import (
    Database, DatabaseUnavailable, default_url, make_engine, mask_url, normalise_url,
)
from db.migrate import upgrade
from db.models import AgentEvent, Call
from db_helpers import (  # noqa: F401
    QueueReactor, database, pg_databases, pg_migrated_url, sqlite_url,
)

UNREACHABLE_PG = "postgresql+psycopg://hotline:s3cretpw@127.0.0.1:1/hotline"


def test_mask_url_hides_the_password():
    """Passwords never appear in a masked URL; the rest stays readable."""
    masked = mask_url("postgresql+psycopg://hotline:s3cretpw@db.example:5432/calls")
    assert "s3cretpw" not in masked
    assert masked == "postgresql+psycopg://hotline:***@db.example:5432/calls"


def test_mask_url_of_garbage_does_not_echo_it():
    """An unparseable URL is not printed back (it may hold a secret)."""
    assert "s3cret" not in mask_url("not a url s3cret")


def test_default_url_is_sqlite_in_the_data_dir():
    """The default database is hotline.db in the service's data directory."""
    assert default_url("var") == "sqlite:///var/hotline.db"


def test_bare_postgresql_urls_use_psycopg3():
    """postgresql:// and postgres:// URLs get the psycopg (v3) driver, not psycopg2."""
    assert normalise_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/d").drivername == "postgresql+psycopg"


def test_sqlite_parent_directory_is_created(tmp_path):
    """A SQLite file in a directory that does not exist yet still opens."""
    url = f"sqlite:///{tmp_path}/deep/er/hotline.db"
    Database(url).ping()
    assert os.path.exists(tmp_path / "deep" / "er" / "hotline.db")


def test_sqlite_uses_wal_busy_timeout_and_foreign_keys(sqlite_url):
    """SQLite connections run in WAL mode, wait when locked, and enforce foreign keys."""
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_unreachable_postgresql_is_one_masked_line():
    """A server that refuses connections gives DatabaseUnavailable: one line, no password."""
    with pytest.raises(DatabaseUnavailable) as caught:
        Database(UNREACHABLE_PG).ping()
    message = str(caught.value)
    assert "\n" not in message
    assert "s3cretpw" not in message
    assert message.startswith("database unavailable at postgresql+psycopg://hotline:***@127.0.0.1:1/")


def test_unopenable_sqlite_is_database_unavailable(tmp_path):
    """A SQLite path that cannot be created is DatabaseUnavailable, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DatabaseUnavailable, match="cannot create"):
        Database(f"sqlite:///{blocker}/sub/hotline.db")


def test_run_sync_commits_when_fn_returns(database):
    """What fn writes is committed when it returns."""
    database.run_sync(lambda s: s.add(AgentEvent(agent="PJSIP/1001", state="logged_in")))
    assert database.run_sync(lambda s: s.scalar(select(AgentEvent.agent))) == "PJSIP/1001"


def test_run_sync_rolls_back_when_fn_raises(database):
    """What fn writes is rolled back when it raises, and the exception propagates."""
    def fail(session):
        session.add(AgentEvent(agent="PJSIP/1001", state="logged_in"))
        session.flush()
        raise KeyError("boom")

    with pytest.raises(KeyError):
        database.run_sync(fail)
    assert database.run_sync(lambda s: s.scalar(select(AgentEvent.id))) is None


def test_ping_succeeds_on_a_reachable_database(database):
    """ping() returns quietly when SELECT 1 works."""
    assert database.ping() is None


def test_datetimes_round_trip_as_aware_utc(database):
    """A time written in any zone comes back as the same instant, aware, in UTC."""
    shanghai = timezone(timedelta(hours=8))
    written = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=shanghai)
    database.run_sync(lambda s: s.add(Call(linkedid="1700000000.1", started_at=written)))
    read = database.run_sync(lambda s: s.scalar(select(Call.started_at)))
    assert read == written
    assert read.tzinfo == timezone.utc
    assert read.hour == 1


def test_naive_datetimes_are_refused(database):
    """A naive datetime is a caller bug: it is rejected, not guessed."""
    with pytest.raises(Exception, match="naive datetime"):
        database.run_sync(lambda s: (s.add(Call(linkedid="x", started_at=datetime(2026, 1, 1))),
                                     s.flush()))


def test_run_fires_with_the_result_computed_off_the_calling_thread(sqlite_url):
    """run() returns a Deferred that fires with fn's result; fn ran on a pool thread."""
    upgrade(sqlite_url)
    reactor = QueueReactor()
    database = Database(sqlite_url, reactor=reactor, pool_threads=2)
    database.start()
    try:
        def work(session, tag):
            value = session.execute(text("SELECT 41 + 1")).scalar_one()
            return tag, value, threading.get_ident()

        deferred = database.run(work, "answer")
        tag, value, thread = reactor.pump(deferred)
    finally:
        database.stop()
    assert (tag, value) == ("answer", 42)
    assert thread != threading.get_ident()


def test_run_fails_the_deferred_with_fns_exception(sqlite_url):
    """An exception in fn fails the Deferred with that exception."""
    reactor = QueueReactor()
    database = Database(sqlite_url, reactor=reactor)
    database.start()
    try:
        def work(session):
            raise LookupError("no such call")
        with pytest.raises(LookupError, match="no such call"):
            reactor.pump(database.run(work))
    finally:
        database.stop()


def test_run_before_start_fails_loudly(sqlite_url):
    """Using run() before start() is our own bug: the Deferred fails with a RuntimeError."""
    database = Database(sqlite_url, reactor=QueueReactor())
    failures = []
    database.run(lambda s: 1).addErrback(failures.append)
    assert failures and failures[0].check(RuntimeError)


def test_start_registers_a_shutdown_trigger_that_stops_the_pool(sqlite_url):
    """The pool stops with the reactor: start() adds a shutdown trigger that stops it."""
    reactor = QueueReactor()
    database = Database(sqlite_url, reactor=reactor)
    database.start()
    [(phase, event, stop)] = reactor.triggers.values()
    assert (phase, event) == ("during", "shutdown")
    stop()
    assert not database.threadpool.started


def test_stop_removes_the_shutdown_trigger(sqlite_url):
    """Stopping by hand leaves no trigger behind to stop it twice."""
    reactor = QueueReactor()
    database = Database(sqlite_url, reactor=reactor)
    database.start()
    database.stop()
    assert reactor.triggers == {}
    assert not database.threadpool.started


def test_health_check_reports_ok(sqlite_url):
    """The /healthz check fires with ok=True on a working database."""
    reactor = QueueReactor()
    database = Database(sqlite_url, reactor=reactor)
    database.start()
    try:
        assert reactor.pump(database.health_check()) == {"ok": True, "backend": "sqlite"}
    finally:
        database.stop()


def test_health_check_reports_an_unreachable_database_without_failing():
    """The /healthz check fires with ok=False and the one-line reason, never errbacks."""
    reactor = QueueReactor()
    database = Database(UNREACHABLE_PG, reactor=reactor)
    database.start()
    try:
        result = reactor.pump(database.health_check())
    finally:
        database.stop()
    assert result["ok"] is False
    assert "database unavailable" in result["error"] and "s3cretpw" not in result["error"]


def test_concurrent_writers_on_sqlite_all_succeed(sqlite_url):
    """Writes racing on the pool's threads wait for each other instead of failing 'locked'."""
    from twisted.internet.defer import gatherResults

    upgrade(sqlite_url)
    reactor = QueueReactor()
    database = Database(sqlite_url, reactor=reactor, pool_threads=4)
    database.start()
    try:
        def write(session, n):
            existing = session.scalar(select(func.count(AgentEvent.id)))  # read, then write
            session.add(AgentEvent(agent=f"PJSIP/{1000 + n}", state="available"))
            return existing

        reactor.pump(gatherResults([database.run(write, n) for n in range(40)]))
        count = database.run_sync(lambda s: s.scalar(select(func.count(AgentEvent.id))))
    finally:
        database.stop()
    assert count == 40
