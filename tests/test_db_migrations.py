"""Alembic migrations: an empty database upgrades to head, the migrated schema is exactly
the models, and the scripts are found wherever Hotline runs from."""
import configparser
import fnmatch
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from db import migrate
from db.models import Base
from db_helpers import PG_MARK, pg_databases, pg_empty_url, sqlite_url  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def test_empty_sqlite_database_has_no_revision(sqlite_url):
    """A database never migrated reports no revision and is not up to date."""
    assert migrate.current_revision(sqlite_url) is None
    assert not migrate.is_up_to_date(sqlite_url)


def test_upgrade_brings_an_empty_sqlite_database_to_head(sqlite_url):
    """After upgrade the database is at the newest shipped revision with every table."""
    migrate.upgrade(sqlite_url)
    assert migrate.current_revision(sqlite_url) == migrate.head_revision()
    assert migrate.is_up_to_date(sqlite_url)
    tables = set(inspect(create_engine(sqlite_url)).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def test_upgrade_twice_is_harmless(sqlite_url):
    """Upgrading an up-to-date database changes nothing."""
    migrate.upgrade(sqlite_url)
    migrate.upgrade(sqlite_url)
    assert migrate.is_up_to_date(sqlite_url)


def test_migrated_sqlite_schema_equals_the_models(sqlite_url):
    """Alembic finds no difference between the migrated SQLite schema and db.models."""
    migrate.upgrade(sqlite_url)
    assert migrate.schema_diff(sqlite_url) == []


def test_schema_diff_sees_a_missing_index(sqlite_url):
    """The comparison is real: a dropped index shows up as a difference."""
    migrate.upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_customers_phone"))
    engine.dispose()
    diff = migrate.schema_diff(sqlite_url)
    assert [d[0] for d in diff] == ["add_index"]
    assert diff[0][1].name == "ix_customers_phone"


def test_downgrade_to_base_removes_every_table(sqlite_url):
    """The initial migration can be reverted, leaving only Alembic's version table."""
    migrate.upgrade(sqlite_url)
    migrate.downgrade(sqlite_url, "base")
    assert migrate.current_revision(sqlite_url) is None
    assert set(inspect(create_engine(sqlite_url)).get_table_names()) <= {"alembic_version"}


def test_check_schema_names_the_command_to_run(sqlite_url):
    """An out-of-date schema is refused with a message that says `hotline db upgrade`."""
    with pytest.raises(migrate.SchemaOutOfDate, match="hotline db upgrade"):
        migrate.check_schema(sqlite_url)
    migrate.upgrade(sqlite_url)
    migrate.check_schema(sqlite_url)


def test_migrations_run_from_any_working_directory(sqlite_url, tmp_path, monkeypatch):
    """The scripts ship inside the package: no alembic.ini in the working directory needed."""
    monkeypatch.chdir(tmp_path)
    migrate.upgrade(sqlite_url)
    assert migrate.is_up_to_date(sqlite_url)


def test_every_migration_file_is_package_data():
    """Every file under db/migrations is listed by setup.cfg package_data, so installs get it."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["db"].split(",")]
    db_dir = ROOT / "db"
    files = [p.relative_to(db_dir).as_posix() for p in (db_dir / "migrations").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == []


@PG_MARK
def test_upgrade_brings_an_empty_postgresql_database_to_head(pg_empty_url):
    """PostgreSQL: an empty database upgrades to head."""
    assert migrate.current_revision(pg_empty_url) is None
    migrate.upgrade(pg_empty_url)
    assert migrate.is_up_to_date(pg_empty_url)


@PG_MARK
def test_migrated_postgresql_schema_equals_the_models(pg_empty_url):
    """Alembic finds no difference between the migrated PostgreSQL schema and db.models."""
    migrate.upgrade(pg_empty_url)
    assert migrate.schema_diff(pg_empty_url) == []


@PG_MARK
def test_postgresql_downgrade_to_base_and_up_again(pg_empty_url):
    """PostgreSQL: the initial migration reverts cleanly and applies again."""
    migrate.upgrade(pg_empty_url)
    migrate.downgrade(pg_empty_url, "base")
    assert migrate.current_revision(pg_empty_url) is None
    migrate.upgrade(pg_empty_url)
    assert migrate.schema_diff(pg_empty_url) == []


def test_asking_for_the_revision_does_not_create_a_sqlite_file(tmp_path):
    """`current` on a SQLite path that does not exist reports no revision and creates nothing."""
    path = tmp_path / "missing" / "hotline.db"
    assert migrate.current_revision(f"sqlite:///{path}") is None
    assert not path.exists() and not path.parent.exists()
