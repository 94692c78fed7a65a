"""``hotline serve`` end to end: the real command in a subprocess, with a temporary config,
driven over loopback by the AGI-side and AMI-side Asterisk simulators.

What issue 10 asks for: a call through the IVR into a queue is seen by both halves and
ends as one call record joined to its IVR session; ``/metrics`` and ``/healthz`` answer;
SIGTERM in the middle of a call leaves a complete record; a bad config, a port in use
and an unreachable or out-of-date database each give their one-line error.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from db_helpers import (  # noqa: F401  (fixture used by pg_empty_url)
    PG_MARK,
    pg_databases,
    pg_empty_url,
)
from serve_helpers import (
    SUPPORT_FLOW,
    AmiSimProcess,
    ServeProcess,
    agi_call,
    db_upgrade,
    free_port,
    ivr_to_queue_events,
    poll,
    query,
    run_serve,
    toml_config,
)

from ivr.agisim import CallScript, split_agi_args

pytestmark = pytest.mark.integration

AMI_SECRET = "s3cret-for-serve-tests"   # given to the service only through the environment


@dataclass
class Site:
    """A temporary install: flows, free ports, a database URL and a ``hotline.toml``."""

    dir: Path
    agi_port: int
    http_port: int
    db_url: str

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def write_config(self, **sections: dict[str, Any]) -> Path:
        values: dict[str, dict[str, Any]] = {
            "agi": {"listen": f"127.0.0.1:{self.agi_port}", "flows_dir": "flows",
                    "reload_interval": 0},
            "ami": {"enabled": False},
            "db": {"url": self.db_url},
            "http": {"listen": self.http},
            "service": {"data_dir": "var", "shutdown_grace": 5.0},
        }
        for section, keys in sections.items():
            values.setdefault(section, {}).update(keys)
        path = self.dir / "hotline.toml"
        path.write_text(toml_config(values))
        return path

    def script(self, **kwargs: Any) -> CallScript:
        kwargs.setdefault("request", f"agi://127.0.0.1:{self.agi_port}/support_line")
        return CallScript(**kwargs)

    def ivr_sessions(self, session_id: str) -> list[dict]:
        return query(self.db_url, "SELECT * FROM ivr_sessions WHERE id = :id", id=session_id)

    def calls_joined_to(self, session_id: str) -> list[dict]:
        return query(self.db_url, "SELECT * FROM calls WHERE ivr_session_id = :id", id=session_id)


def _new_site(path: Path, db_url: str | None = None) -> Site:
    (path / "flows").mkdir()
    (path / "flows" / "support_line.yaml").write_text(SUPPORT_FLOW)
    return Site(path, free_port(), free_port(), db_url or f"sqlite:///{path}/var/hotline.db")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A temporary install on SQLite."""
    return _new_site(tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=PG_MARK)])
def any_db_site(request: Any, tmp_path: Path) -> Site:
    """A temporary install on SQLite, then on a fresh PostgreSQL database."""
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_empty_url")
    return _new_site(tmp_path, url)


@pytest.fixture
def serve() -> Iterator[Callable[..., ServeProcess]]:
    """Starts ``hotline serve``; every process is killed at the end and its log printed
    (pytest shows it when the test failed)."""
    started: list[ServeProcess] = []

    def start(site: Site, args: list[str], env: dict[str, str] | None = None) -> ServeProcess:
        proc = ServeProcess(site.dir, args, env, http=site.http)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        print(f"--- hotline serve {' '.join(proc.args)} (exit {proc.proc.returncode}) stderr:")
        print(proc.stderr())


@pytest.fixture
def ami_sim() -> Iterator[AmiSimProcess]:
    sim = AmiSimProcess(AMI_SECRET)
    yield sim
    sim.close()


def _metric(text: str, name: str) -> float | None:
    """The value of the sample ``name`` (with labels, exactly as exposed) or None."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def _wait_tracking(proc: ServeProcess) -> None:
    """Logged in to AMI and resynchronised: from now on events are the tracker's to follow.

    (Before the first resync has been answered, a simulated call could be contradicted
    by the simulator's empty channel list and closed as ``resync_missing``.)
    """
    proc.wait_healthy(need=("db", "ami"))
    poll(lambda: (_metric(proc.get("/metrics")[1].decode(), "hotline_ami_resyncs_total") or 0) >= 1,
         10, "the first AMI resync")


def _only_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hotline: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


class SessionIdCatcher:
    """``before_reply`` hook part: remembers the id in ``SET VARIABLE HOTLINE_SESSION <id>``."""

    def __init__(self) -> None:
        self.session_id: str | None = None

    def see(self, line: str) -> None:
        args = split_agi_args(line)
        if [a.upper() for a in args[:3]] == ["SET", "VARIABLE", "HOTLINE_SESSION"]:
            self.session_id = args[3]


# --- 1. the happy path: both halves, one joined record --------------------------------------------
def test_call_through_ivr_into_queue_is_one_call_record_joined_to_its_ivr_session(
        any_db_site: Site, serve: Callable[..., ServeProcess], ami_sim: AmiSimProcess) -> None:
    """An IVR call queued to 'support' and answered is one answered calls row carrying its IVR session id."""
    site = any_db_site
    site.write_config(ami={"enabled": True, "port": ami_sim.port, "reconnect_initial": 0.1,
                           "reconnect_max": 1.0})
    db_upgrade(site.db_url, site.dir)
    proc = serve(site, ["--config", "hotline.toml"], {"HOTLINE_AMI_SECRET": AMI_SECRET})
    _wait_tracking(proc)
    assert proc.health()[1]["flows"]["ok"]
    assert ami_sim.logins() == 1

    base = int(time.time()) * 10 + 7          # a Uniqueid base no other call uses
    linkedid = f"{base}.0"
    catcher = SessionIdCatcher()
    seen_live: list[float | None] = []

    def asterisk(n: int, line: str) -> None:
        catcher.see(line)
        if line.upper().startswith("EXEC QUEUE"):
            # While the AGI sits in Queue(), Asterisk reports the call on AMI: queued,
            # agent rung and connected ... then the agent hangs up and Queue() returns.
            assert catcher.session_id, "the engine set no HOTLINE_SESSION before queueing"
            events = ivr_to_queue_events(session_id=catcher.session_id, base=base)
            cut = next(i for i, (name, _) in enumerate(events) if name == "AgentComplete")
            assert ami_sim.send(b"".join(data for _, data in events[:cut])) == 1
            seen_live.append(poll(lambda: _metric(proc.get("/metrics")[1].decode(),
                                                  "hotline_live_calls"), 5, "a live call on /metrics"))
            assert ami_sim.send(b"".join(data for _, data in events[cut:])) == 1

    result = agi_call("127.0.0.1", site.agi_port, site.script(
        uniqueid=f"{base}.1", linkedid=linkedid, channel="Local/burst@ivr-in-00000000;2",
        caller_id="5550400", caller_name="Ivy Queue", keys=["1"], queue_status="CONNECTED"),
        before_reply=asterisk)
    assert result.closed_by_server and not result.timed_out
    session_id = result.session_id
    assert session_id and session_id == catcher.session_id
    assert seen_live == [1.0]

    calls = poll(lambda: [c for c in site.calls_joined_to(session_id) if c["ended_at"]], 10,
                 "the finished calls row")
    assert len(calls) == 1
    call = calls[0]
    assert (call["linkedid"], call["disposition"], call["queue"]) == (linkedid, "answered", "support")
    assert call["close_reason"] == "hangup"
    sessions = poll(lambda: site.ivr_sessions(session_id), 10, "the ivr_sessions row")
    assert len(sessions) == 1
    ivr = sessions[0]
    assert (ivr["outcome"], ivr["outcome_target"], ivr["linkedid"], ivr["uniqueid"]) == (
        "queued", "support", linkedid, f"{base}.1")
    assert ivr["ended_at"] is not None

    def metrics_settled() -> str | None:
        text = proc.get("/metrics")[1].decode()
        written = _metric(text, "hotline_db_write_seconds_count") or 0
        return text if written >= 2 and _metric(text, "hotline_live_calls") == 0 else None
    text = poll(metrics_settled, 10, "record writes and no live call on /metrics")
    assert _metric(text, 'hotline_ivr_sessions_total{outcome="queued"}') == 1.0
    assert _metric(text, "hotline_ami_events_total") >= len(ivr_to_queue_events(
        session_id=session_id, base=base))
    assert _metric(text, "hotline_ami_logged_in") == 1.0
    assert _metric(text, "hotline_ami_resyncs_total") == 1.0
    status, health = proc.health()
    assert status == 200 and health["status"] == "ok"
    assert all(health[part]["ok"] for part in ("db", "ami", "flows"))

    proc.terminate()
    assert proc.wait(10) == 0
    assert "service_stopped" in proc.log_events()


def test_healthz_says_503_until_ami_is_reachable_then_200_after_login(
        site: Site, serve: Callable[..., ServeProcess]) -> None:
    """With Asterisk down /healthz is 503 naming AMI (the rest ok); once AMI is up it turns 200."""
    ami_port = free_port()
    site.write_config(ami={"enabled": True, "port": ami_port, "reconnect_initial": 0.1,
                           "reconnect_max": 0.5}, db={"auto_migrate": True})
    proc = serve(site, ["--config", "hotline.toml"], {"HOTLINE_AMI_SECRET": AMI_SECRET})

    def unhealthy() -> dict | None:
        status, body = proc.health()
        return body if status == 503 else None
    body = poll(unhealthy, 15, "/healthz 503")
    assert body["status"] == "unhealthy"
    assert body["ami"]["ok"] is False
    assert body["db"]["ok"] is True and body["flows"]["ok"] is True

    sim = AmiSimProcess(AMI_SECRET, port=ami_port)
    try:
        body = proc.wait_healthy(need=("ami",))
        assert body["status"] == "ok"
        assert sim.logins() == 1
    finally:
        sim.close()


# --- 2. SIGTERM in the middle of a call -------------------------------------------------------------
def test_sigterm_mid_call_lets_the_call_finish_within_grace_and_stores_it(
        site: Site, serve: Callable[..., ServeProcess]) -> None:
    """SIGTERM while the caller is in the menu: the call carries on, is stored complete, exit 0."""
    site.write_config(service={"shutdown_grace": 5.0}, db={"auto_migrate": True})
    proc = serve(site, ["--config", "hotline.toml"])
    proc.wait_healthy(need=("db", "flows"))
    catcher = SessionIdCatcher()

    def asterisk(n: int, line: str) -> None:
        catcher.see(line)
        if line.upper().startswith("STREAM FILE BEEP"):   # the menu waits for a key
            proc.terminate()
            proc.wait_log("service_draining", timeout=10)
            assert refuses_connections(site.agi_port), "still accepting calls while draining"

    result = agi_call("127.0.0.1", site.agi_port, site.script(keys=["1"], queue_status="CONNECTED"),
                      before_reply=asterisk)
    assert result.closed_by_server and not result.timed_out
    assert any(c.upper().startswith("EXEC QUEUE") for c in result.commands)
    assert proc.wait(10) == 0
    rows = site.ivr_sessions(catcher.session_id)
    assert len(rows) == 1
    assert rows[0]["outcome"] == "queued" and rows[0]["ended_at"] is not None


def refuses_connections(port: int) -> bool:
    """True when nothing accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def test_sigterm_with_a_call_outliving_the_grace_still_exits_and_stores_it(
        site: Site, serve: Callable[..., ServeProcess]) -> None:
    """A caller still in Queue() when the grace runs out: the socket is closed, the session
    stored as queued (Asterisk still holds the caller in the queue), exit 0."""
    site.write_config(service={"shutdown_grace": 1.0}, db={"auto_migrate": True})
    proc = serve(site, ["--config", "hotline.toml"])
    proc.wait_healthy(need=("db", "flows"))
    catcher = SessionIdCatcher()
    queue_command: list[int] = []

    def asterisk(n: int, line: str) -> None:
        catcher.see(line)
        if line.upper().startswith("EXEC QUEUE"):   # Queue() answers only when the call ends
            queue_command.append(n)
            proc.terminate()

    script = site.script(keys=["1"], queue_status="CONNECTED")
    script.silent_at = 6      # ANSWER... the EXEC Queue is command 6 (checked below)
    result = agi_call("127.0.0.1", site.agi_port, script, before_reply=asterisk, timeout=5)
    assert queue_command == [6]
    assert result.closed_by_server, "the session was still open well after the grace"
    assert proc.wait(5) == 0
    rows = site.ivr_sessions(catcher.session_id)
    assert len(rows) == 1 and rows[0]["ended_at"] is not None
    assert (rows[0]["outcome"], rows[0]["outcome_step"], rows[0]["outcome_target"]) == \
        ("queued", "to_support", "support")
    assert "shutdown" in rows[0]["outcome_detail"]


def test_call_left_open_by_sigterm_is_closed_at_the_next_start_when_asterisk_no_longer_has_it(
        any_db_site: Site, serve: Callable[..., ServeProcess], ami_sim: AmiSimProcess) -> None:
    """SIGTERM during a tracked call leaves its row open; the next start finds Asterisk
    without it and closes it as resync_missing, keeping what was known (answered, queue)."""
    site = any_db_site
    site.write_config(ami={"enabled": True, "port": ami_sim.port, "reconnect_initial": 0.1,
                           "reconnect_max": 1.0}, db={"auto_migrate": True})
    env = {"HOTLINE_AMI_SECRET": AMI_SECRET}
    first = serve(site, ["--config", "hotline.toml"], env)
    _wait_tracking(first)
    base = int(time.time()) * 10 + 3
    linkedid = f"{base}.0"
    events = ivr_to_queue_events(session_id="0" * 32, base=base)
    cut = next(i for i, (name, _) in enumerate(events) if name == "AgentComplete")
    assert ami_sim.send(b"".join(data for _, data in events[:cut])) == 1   # agent talking

    def answered_row() -> list[dict]:
        return [c for c in query(site.db_url, "SELECT * FROM calls WHERE linkedid = :l", l=linkedid)
                if c["answered_at"] is not None]
    poll(answered_row, 10, "the answered call in the database")
    first.terminate()
    assert first.wait(10) == 0
    (row,) = query(site.db_url, "SELECT * FROM calls WHERE linkedid = :l", l=linkedid)
    assert row["ended_at"] is None          # the call may well still be up on Asterisk

    second = serve(site, ["--config", "hotline.toml"], env)
    second.wait_healthy(need=("ami",))      # the simulated Asterisk lists no channel now
    closed = poll(lambda: [c for c in query(site.db_url, "SELECT * FROM calls WHERE linkedid = :l",
                                            l=linkedid) if c["ended_at"] is not None],
                  10, "the call left open to be closed")
    assert len(closed) == 1
    call = closed[0]
    assert (call["close_reason"], call["disposition"], call["queue"]) == (
        "resync_missing", "answered", "support")
    assert call["talk_seconds"] is not None and call["ivr_session_id"] == "0" * 32


# --- 3. start-up errors: one line each ----------------------------------------------------------------
def test_misspelt_config_key_is_one_line_naming_file_line_and_suggestion(site: Site) -> None:
    """A misspelt key exits 2 with one line: file:line and a did-you-mean."""
    site.write_config(agi={"flow_dir": "flows"})
    result = run_serve(site.dir, ["--config", "hotline.toml"])
    line = _only_error_line(result.stderr)
    assert result.returncode == 2
    number = next(n for n, text in enumerate((site.dir / "hotline.toml").read_text().splitlines(), 1)
                  if text.startswith("flow_dir"))
    assert f"hotline.toml:{number}" in line
    assert "did you mean 'flows_dir'" in line


@pytest.mark.parametrize("taken", ["agi", "http"])
def test_port_in_use_is_one_line_naming_the_address(site: Site, taken: str) -> None:
    """A listen port already taken exits 1 with one line naming the address and the reason."""
    site.write_config(db={"auto_migrate": True})
    port = site.agi_port if taken == "agi" else site.http_port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = run_serve(site.dir, ["--config", "hotline.toml"])
    line = _only_error_line(result.stderr)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for {'FastAGI' if taken == 'agi' else 'HTTP'}" in line
    assert "in use" in line


def test_unreachable_database_is_one_line_with_the_url(site: Site) -> None:
    """A PostgreSQL server that does not answer exits 1 with one line naming it."""
    site.write_config()
    result = run_serve(site.dir, ["--config", "hotline.toml"],
                       {"HOTLINE_DB_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"})
    line = _only_error_line(result.stderr)
    assert result.returncode == 1
    assert "database unavailable at postgresql+psycopg://nobody@127.0.0.1:1/x" in line


def test_out_of_date_schema_is_one_line_telling_to_upgrade(site: Site) -> None:
    """A database never upgraded exits 1 with one line saying to run `hotline db upgrade`."""
    site.write_config()
    result = run_serve(site.dir, ["--config", "hotline.toml"])
    line = _only_error_line(result.stderr)
    assert result.returncode == 1
    assert "hotline db upgrade" in line


def test_check_config_prints_the_config_with_secrets_masked(site: Site) -> None:
    """--check-config prints the effective config and never the secrets themselves."""
    site.write_config(ami={"enabled": True})
    db_password = "pg-pass-do-not-print"
    result = run_serve(site.dir, ["--config", "hotline.toml", "--check-config"], {
        "HOTLINE_AMI_SECRET": AMI_SECRET,
        "HOTLINE_DB_URL": f"postgresql+psycopg://hotline:{db_password}@127.0.0.1:1/hotline"})
    assert result.returncode == 0, result.stderr
    assert AMI_SECRET not in result.stdout + result.stderr
    assert db_password not in result.stdout + result.stderr
    assert 'secret = "********"  # env HOTLINE_AMI_SECRET' in result.stdout
    assert f'listen = "127.0.0.1:{site.agi_port}"  # hotline.toml:' in result.stdout
    assert not (site.dir / "var").exists()   # nothing was started


# --- 4. AGI alone ----------------------------------------------------------------------------------------
def test_agi_alone_from_the_command_line_stores_a_call(site: Site,
                                                        serve: Callable[..., ServeProcess]) -> None:
    """`serve --no-ami --no-http --agi ... --auto-migrate` in a bare directory serves and stores a call."""
    proc = serve(site, ["--no-ami", "--no-http", "--auto-migrate",
                        "--agi", f"127.0.0.1:{site.agi_port}"])
    proc.wait_log("service_start")
    result = agi_call("127.0.0.1", site.agi_port, site.script(keys=["1"], queue_status="CONNECTED"))
    assert result.closed_by_server and not result.timed_out
    proc.terminate()
    assert proc.wait(10) == 0
    assert (site.dir / "var" / "hotline.db").is_file()
    rows = site.ivr_sessions(result.session_id)
    assert [(r["flow"], r["outcome"], r["outcome_target"]) for r in rows] == [
        ("support_line", "queued", "support")]
