"""`hotline db upgrade|current|seed`: the operator's view of the schema, with one-line errors."""
import pytest
from click.testing import CliRunner

from db import migrate
from db_helpers import PG_MARK, cached_pin_hashes, pg_databases, pg_empty_url, sqlite_url  # noqa: F401
from hotline.cli import main

UNREACHABLE_PG = "postgresql+psycopg://hotline:s3cretpw@127.0.0.1:1/hotline"


@pytest.fixture
def runner():
    return CliRunner()


def run(runner, *args, env=None):
    return runner.invoke(main, ["db", *args], env=env or {"HOTLINE_DB_URL": ""},
                         catch_exceptions=False)


def test_upgrade_creates_the_schema(runner, sqlite_url):
    """`hotline db upgrade --url` brings an empty database to head and says so."""
    result = run(runner, "upgrade", "--url", sqlite_url)
    assert result.exit_code == 0, result.output
    assert f"to revision {migrate.head_revision()}" in result.output
    assert migrate.is_up_to_date(sqlite_url)


def test_upgrade_of_an_up_to_date_database_does_nothing(runner, sqlite_url):
    """A second upgrade reports there was nothing to do."""
    run(runner, "upgrade", "--url", sqlite_url)
    result = run(runner, "upgrade", "--url", sqlite_url)
    assert result.exit_code == 0 and "nothing to do" in result.output


def test_current_tells_an_empty_database_to_upgrade(runner, sqlite_url):
    """`current` on a database never migrated names the command to run."""
    result = run(runner, "current", "--url", sqlite_url)
    assert result.exit_code == 0
    assert "empty schema" in result.output and "hotline db upgrade" in result.output


def test_current_check_exits_1_when_out_of_date(runner, sqlite_url):
    """`current --check` is a script-friendly test: exit 1 until upgraded, then 0."""
    assert run(runner, "current", "--check", "--url", sqlite_url).exit_code == 1
    run(runner, "upgrade", "--url", sqlite_url)
    result = run(runner, "current", "--check", "--url", sqlite_url)
    assert result.exit_code == 0 and "(up to date)" in result.output


def test_url_comes_from_the_environment(runner, sqlite_url):
    """Without --url, HOTLINE_DB_URL is the database."""
    result = run(runner, "upgrade", env={"HOTLINE_DB_URL": sqlite_url})
    assert result.exit_code == 0 and migrate.is_up_to_date(sqlite_url)


def test_default_database_is_var_hotline_db_in_the_working_directory(runner, tmp_path, monkeypatch):
    """With neither --url nor HOTLINE_DB_URL, ./var/hotline.db is created and migrated."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOTLINE_DB_URL", raising=False)
    result = runner.invoke(main, ["db", "upgrade"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "var" / "hotline.db").exists()


def test_seed_adds_demo_customers_once(runner, sqlite_url, cached_pin_hashes):
    """`seed` adds the demo customers; run again it adds none."""
    run(runner, "upgrade", "--url", sqlite_url)
    first = run(runner, "seed", "--url", sqlite_url)
    second = run(runner, "seed", "--url", sqlite_url)
    assert first.exit_code == 0 and "added 12 demo customers" in first.output
    assert "added 0 demo customers" in second.output


def test_seed_refuses_an_unmigrated_database(runner, sqlite_url):
    """Seeding before upgrading fails with one line saying to upgrade."""
    result = run(runner, "seed", "--url", sqlite_url)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "hotline db upgrade" in result.output


@pytest.mark.parametrize("command", ["upgrade", "current", "seed"])
def test_unreachable_database_is_one_line_without_password(runner, command):
    """An unreachable server: exit 1, one line on stderr, password masked, no traceback."""
    result = run(runner, command, "--url", UNREACHABLE_PG)
    assert result.exit_code == 1
    assert result.output.startswith("hotline db: database unavailable at ")
    assert result.output.count("\n") == 1
    assert "s3cretpw" not in result.output and "Traceback" not in result.output


def test_a_bad_url_is_one_line(runner):
    """A URL that is not a database URL is reported, not a traceback."""
    result = run(runner, "current", "--url", "nonsense")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith("hotline db: ")


@PG_MARK
def test_upgrade_and_current_on_postgresql(runner, pg_empty_url):
    """The CLI migrates PostgreSQL and never prints the URL's password."""
    result = run(runner, "upgrade", "--url", pg_empty_url)
    assert result.exit_code == 0, result.output
    assert "(up to date)" in run(runner, "current", "--url", pg_empty_url).output
