"""One object that owns the engine, the sessions and the threads database work runs on.

Twisted code calls ``Database.run(fn, *args)`` and gets a Deferred: ``fn(session, *args)``
runs inside one transaction on a dedicated thread pool, so the reactor never blocks on
the database. Sync code (CLI, classic AGI, FastAGI service threads, tests) calls
``run_sync`` with the same functions. A database that cannot be reached is a
``DatabaseUnavailable`` with a one-line message an operator can act on.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:  # pragma: no cover
    from twisted.internet.defer import Deferred

__all__ = ["Database", "DatabaseUnavailable", "default_url", "mask_url", "make_engine",
           "normalise_url"]

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 5


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened (the server's or the setup's fault, not ours).

    ``str(exc)`` is one line, password masked, fit to show an operator as is.
    """

    @classmethod
    def from_error(cls, url: str | URL, error: BaseException) -> DatabaseUnavailable:
        cause = getattr(error, "orig", None) or error
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        return cls(f"database unavailable at {mask_url(url)}: {first_line}")


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***`` (safe to print or log)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def default_url(data_dir: str | os.PathLike[str]) -> str:
    """SQLite in the service's data directory: ``sqlite:///<data_dir>/hotline.db``."""
    return "sqlite:///" + os.path.join(os.fspath(data_dir), "hotline.db")


def normalise_url(url: str | URL) -> URL:
    """Parse ``url``; bare ``postgresql://``/``postgres://`` get the psycopg 3 driver."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnavailable(f"not a database URL: {exc}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine set up for Hotline's use of ``url`` (also used by migrations).

    SQLite: the parent directory is created; WAL journal, a busy timeout, foreign keys
    on, and ``BEGIN IMMEDIATE`` transactions so concurrent writers wait for each other
    instead of failing with "database is locked". PostgreSQL: a connect timeout so an
    unreachable server fails in seconds, and pre-ping to survive server restarts.
    """
    url = normalise_url(url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if _is_memory_sqlite(url):
            kwargs["poolclass"] = StaticPool  # one shared in-memory database for all threads
        else:
            parent = os.path.dirname(os.path.abspath(url.database))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"database unavailable at {mask_url(url)}: cannot create {parent}: "
                    f"{exc.strerror}") from None
        engine = create_engine(url, echo=echo, **kwargs)
        _configure_sqlite(engine, memory=_is_memory_sqlite(url))
        return engine
    kwargs = {"pool_pre_ping": True}
    if backend == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    try:
        return create_engine(url, echo=echo, **kwargs)
    except ImportError as exc:  # driver missing: an installation problem
        raise DatabaseUnavailable(
            f"database unavailable at {mask_url(url)}: driver not installed ({exc.name}); "
            "for PostgreSQL: pip install 'hotline[postgres]'") from None


def _configure_sqlite(engine: Engine, *, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Engine + session factory + thread pool for one database URL.

    ``reactor`` is only needed by ``run``/``start`` (defaults to the global reactor,
    imported then, so the CLI never loads Twisted's reactor).
    """

    def __init__(self, url: str | URL, *, pool_threads: int = 4, reactor: Any = None,
                 echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, echo=echo)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.pool_threads = pool_threads
        self._reactor = reactor
        self._threadpool: Any = None
        self._shutdown_trigger: Any = None

    def __repr__(self) -> str:
        return f"<Database {mask_url(self.url)}>"

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    # -- sync -----------------------------------------------------------------------
    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in one transaction: committed if it returns, rolled
        back if it raises. Return plain values, not ORM objects, across threads."""
        with self.Session() as session:
            with session.begin():
                try:
                    session.connection()
                except DBAPIError as exc:
                    raise DatabaseUnavailable.from_error(self.url, exc) from None
                try:
                    return fn(session, *args)
                except DBAPIError as exc:
                    if exc.connection_invalidated:
                        raise DatabaseUnavailable.from_error(self.url, exc) from None
                    raise

    def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless a ``SELECT 1`` round trip works."""
        self.run_sync(lambda session: session.execute(text("SELECT 1")).scalar_one())

    def dispose(self) -> None:
        """Close pooled connections (the pool reopens them if used again)."""
        self.engine.dispose()

    # -- Twisted --------------------------------------------------------------------
    def _get_reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        return self._reactor

    @property
    def threadpool(self) -> Any:
        if self._threadpool is None:
            from twisted.python.threadpool import ThreadPool
            self._threadpool = ThreadPool(minthreads=0, maxthreads=self.pool_threads,
                                          name="hotline-db")
        return self._threadpool

    def start(self) -> None:
        """Start the worker threads; they are stopped at reactor shutdown (or ``stop``)."""
        if self.threadpool.started:
            return
        self.threadpool.start()
        reactor = self._get_reactor()
        if hasattr(reactor, "addSystemEventTrigger"):
            self._shutdown_trigger = reactor.addSystemEventTrigger(
                "during", "shutdown", self._stop_from_shutdown)

    def _stop_from_shutdown(self) -> None:
        self._shutdown_trigger = None
        self.stop()

    def stop(self) -> None:
        """Wait for running work to finish, stop the threads, close connections."""
        if self._shutdown_trigger is not None:
            self._get_reactor().removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if self._threadpool is not None and self._threadpool.started:
            self._threadpool.stop()
        self.engine.dispose()

    def run(self, fn: Callable[..., T], *args: Any) -> Deferred:
        """``run_sync(fn, *args)`` on the pool; a Deferred firing (on the reactor thread)
        with its result or failing with its exception. ``start()`` must have been called."""
        from twisted.internet.threads import deferToThreadPool
        if not self.threadpool.started:
            from twisted.internet.defer import fail
            return fail(RuntimeError("Database.run() before Database.start()"))
        return deferToThreadPool(self._get_reactor(), self.threadpool, self.run_sync, fn, *args)

    def health_check(self) -> Deferred:
        """For ``/healthz``: a Deferred of ``{"ok": bool, ...}``, never failing."""
        def check(session: Session) -> dict[str, Any]:
            session.execute(text("SELECT 1")).scalar_one()
            return {"ok": True, "backend": self.url.get_backend_name()}

        d = self.run(check)
        d.addErrback(lambda failure: {"ok": False, "error": str(failure.value)
                                      or type(failure.value).__name__})
        return d
