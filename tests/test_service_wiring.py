"""How ``hotline serve`` hands its configuration to the parts it wires (no sockets)."""
from __future__ import annotations

import shutil
from pathlib import Path

from twisted.internet.testing import MemoryReactorClock

from hotline.config import load_config
from db_helpers import database, pg_databases, pg_migrated_url  # noqa: F401
from hotline.service import HotlineService

FLOWS = Path(__file__).resolve().parents[1] / "flows"


def make_service(tmp_path, **agi):
    shutil.copytree(FLOWS, tmp_path / "flows")
    overrides = {"ami.enabled": False, "http.enabled": False, "db.auto_migrate": True,
                 "agi.flows_dir": str(tmp_path / "flows"), "agi.listen": "127.0.0.1:0",
                 "service.data_dir": str(tmp_path / "var"),
                 "prompts.sounds_dir": str(tmp_path / "var" / "sounds")}
    overrides.update({f"agi.{k}": v for k, v in agi.items()})
    service = HotlineService(load_config(None, environ={}, overrides=overrides),
                             reactor=MemoryReactorClock())
    service.start()
    return service


def test_agi_timeouts_come_from_the_config(tmp_path):
    """[agi] command/playback/exec timeouts reach the FastAGI server; exec 0 means no limit."""
    service = make_service(tmp_path, command_timeout=5.0, playback_timeout=90.0, exec_timeout=0.0)
    try:
        timeouts = service.agi_factory.timeouts
        assert (timeouts.quick, timeouts.playback, timeouts.exec) == (5.0, 90.0, None)
    finally:
        service.database.stop()


def test_a_limited_exec_timeout_is_passed_on(tmp_path):
    """A non-zero exec_timeout bounds EXEC (Queue, Dial) replies."""
    service = make_service(tmp_path, exec_timeout=3600.0)
    try:
        assert service.agi_factory.timeouts.exec == 3600.0
        assert service.library.names() == ["main", "main_zh", "office_hours", "selfservice", "survey"]
    finally:
        service.database.stop()


def test_prompt_voices_and_prefix_reach_every_call(tmp_path):
    """[prompts] voices and sounds_prefix are what the engine names prompt files with."""
    from ivr.agi import AgiEnvironment  # noqa: F401  (the factory takes the parsed env)
    service = make_service(tmp_path)
    try:
        factory = service.agi_factory.session_factory
        assert factory.voices == {"en": "gmw/en-us", "zh": "sit/cmn"}
        assert factory.sounds_prefix == "hotline"
    finally:
        service.database.stop()


def test_unbuilt_prompts_are_reported_at_start(tmp_path, caplog):
    """Flows whose text prompts were never built: serve warns, naming the command to run."""
    import logging
    with caplog.at_level(logging.WARNING, logger="hotline.serve"):
        service = make_service(tmp_path)
    try:
        assert service.prompts_missing > 0
        [warning] = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "prompts_missing"]
        assert warning.fields["fix"] == "hotline prompts build"
        assert warning.fields["missing"] == service.prompts_missing
    finally:
        service.database.stop()


def test_built_prompts_are_not_reported(tmp_path, caplog):
    """Once every prompt file is there, serve finds nothing missing (no speech engine needed)."""
    import logging

    from ivr.library import FlowLibrary
    from ivr.prompts import missing_prompts
    sounds = tmp_path / "var" / "sounds"
    library = FlowLibrary(FLOWS)
    for prompt in missing_prompts([library.get(n) for n in library.names()], sounds):
        path = sounds / f"{prompt.name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF" + b"\0" * 100)
    with caplog.at_level(logging.WARNING, logger="hotline.serve"):
        service = make_service(tmp_path)
    try:
        assert service.prompts_missing == 0
        assert not [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "prompts_missing"]
    finally:
        service.database.stop()


def test_calls_left_open_by_a_previous_run_are_closed_unless_still_live(database):  # noqa: F811
    """At the first resync: a call row a previous run left open and Asterisk no longer has
    is closed at its last event as resync_missing; a call Asterisk still has, and one that
    started during this run, are left open."""
    from datetime import datetime, timedelta, timezone

    from db import repository
    from hotline.service import close_calls_left_open

    start = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)

    def seed(session):
        gone = repository.upsert_call(session, "gone.1", started_at=start, answered_at=start + timedelta(seconds=5))
        repository.add_call_event(session, gone, start + timedelta(seconds=30), "call_answered")
        repository.upsert_call(session, "live.1", started_at=start)
        repository.upsert_call(session, "new.1", started_at=start + timedelta(hours=2))

    database.run_sync(seed)
    this_run_started = (start + timedelta(hours=1)).timestamp()
    closed = database.run_sync(close_calls_left_open, {"live.1"}, this_run_started)
    assert closed == 1
    gone = database.run_sync(lambda s: repository.get_call(s, "gone.1").__dict__.copy())
    assert (gone["close_reason"], gone["disposition"]) == ("resync_missing", "answered")
    assert gone["ended_at"] == start + timedelta(seconds=30)
    still_open = database.run_sync(lambda s: sorted(c.linkedid for c in repository.open_calls(s)))
    assert still_open == ["live.1", "new.1"]
