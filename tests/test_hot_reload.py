"""Hot reload as a running server lives it: new calls get the edited flow, calls in
progress finish on the version they started with, a broken edit never reaches a caller."""
from __future__ import annotations

import logging
import os

import ivr.steps  # noqa: F401  (registers the step types)
from ivr.commands import AgiResult, Exit, StreamFile
from ivr.driver import FlowWatcher
from ivr.engine import FlowSession
from ivr.library import FlowLibrary
from ivr.prompt_refs import DEFAULT_SOUNDS_PREFIX, tts_prompt_name

FLOW = """\
steps:
  first:
    type: say
    prompt: {first}
    next: second
  second:
    type: say
    prompt: {second}
"""


def write(path, first, second, *, bump=0):
    path.write_text(FLOW.format(first=first, second=second))
    stat = path.stat()   # make the edit visible even within the same mtime tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump))


def played(session, result=AgiResult(200, "0")):
    """The sound files the session plays until it exits."""
    files, command = [], session.start()
    while not isinstance(command, Exit):
        if isinstance(command, StreamFile):
            files.append(command.filename)
        command = session.feed(result)
    return files


def sound(text):
    return tts_prompt_name(text, "gmw/en-us", "en", DEFAULT_SOUNDS_PREFIX)


def test_new_calls_get_the_edit_and_calls_in_progress_keep_their_version(tmp_path, caplog):
    """A call started before the edit plays the old prompts to the end; the next call
    plays the new ones; the watcher logs nothing for a good edit."""
    path = tmp_path / "hello.yaml"
    write(path, "Version one.", "Still one.")
    library = FlowLibrary(tmp_path)
    watcher = FlowWatcher(library)
    before = FlowSession(library.get("hello"), {})
    first_command = before.start()
    while not isinstance(first_command, StreamFile):
        first_command = before.feed(AgiResult(200, "0"))
    assert first_command.filename == sound("Version one.")

    write(path, "Version two.", "Still two.", bump=10**9)
    with caplog.at_level(logging.WARNING):
        assert watcher.check() == []
    after = FlowSession(library.get("hello"), {})
    assert played(after) == [sound("Version two."), sound("Still two.")]

    rest = []
    command = before.feed(AgiResult(200, "0"))
    while not isinstance(command, Exit):
        if isinstance(command, StreamFile):
            rest.append(command.filename)
        command = before.feed(AgiResult(200, "0"))
    assert rest == [sound("Still one.")]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_broken_edit_is_refused_with_file_line_and_the_last_good_version_serves(tmp_path, caplog):
    """A typo in a live flow is logged as file:line:col; callers keep getting the good version."""
    path = tmp_path / "hello.yaml"
    write(path, "Version one.", "Still one.")
    library = FlowLibrary(tmp_path)
    good_version = library.get("hello").version
    path.write_text(FLOW.format(first="Oops.", second="Still.").replace("next: second", "nxet: second"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with caplog.at_level(logging.WARNING):
        problems = FlowWatcher(library).check()
    assert problems and str(problems[0]).startswith(f"{path}:5:5: step 'first': unknown key 'nxet'")
    assert any("unknown key 'nxet'" in r.getMessage() for r in caplog.records)
    assert library.get("hello").version == good_version
    assert played(FlowSession(library.get("hello"), {})) == [sound("Version one."), sound("Still one.")]
