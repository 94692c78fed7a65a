"""Shared pieces for the AGI tests: a scripted engine session, its factory, a record sink,
and readers for the recorded Asterisk conversations in the shared traces."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from twisted.internet import defer

from ivr.commands import (
    AgiResult, CallerHangup, ChannelCommand, Command, Exit, Outcome, Result, SetVariable,
)
from ivr.driver import UnknownFlow

from traces import TRACES  # noqa: E402


@dataclass(frozen=True)
class RawLine(ChannelCommand):
    """A recorded command line replayed verbatim."""

    line: str = ""

    def agi_line(self) -> str:
        return self.line


class ScriptedSession:
    """A stand-in for ``ivr.engine.FlowSession``: plays a fixed list of commands.

    It records every result it is fed. Like the engine, when told the caller is gone
    (``CallerHangup`` or a dead reply) it writes an outcome variable and exits.
    """

    def __init__(self, commands: Iterable[Command], *, outcome: Outcome | None = None,
                 session_id: str = "s" * 32, stop_on_dead: bool = True):
        self.commands = list(commands)
        self.final = outcome or Outcome("completed")
        self.session_id = session_id
        self.stop_on_dead = stop_on_dead
        self.results: list[Result] = []
        self.trace: list[str] = []
        self.inputs: list[dict] = []
        self.variables: dict[str, Any] = {"tier": "regular"}
        self.customer_id = None
        self.language = "en"
        self.outcome: Outcome | None = None
        self._ending: Outcome | None = None

    def start(self) -> Command:
        return self._next()

    def feed(self, result: Result) -> Command:
        self.results.append(result)
        if self._ending is not None:
            return self._exit(self._ending)
        if isinstance(result, CallerHangup) or (self.stop_on_dead and isinstance(result, AgiResult)
                                                 and result.dead):
            reason = result.reason if isinstance(result, CallerHangup) else "caller_hangup"
            self._ending = Outcome("timeout" if reason == "timeout" else "caller_hangup")
            return SetVariable("HOTLINE_OUTCOME", self._ending.kind)
        return self._next()

    def _next(self) -> Command:
        if self.commands:
            command = self.commands.pop(0)
            self.trace.append(type(command).__name__)
            return command
        return self._exit(self.final)

    def _exit(self, outcome: Outcome) -> Exit:
        self.outcome = outcome
        return Exit(outcome)


class ScriptedFactory:
    """Session factory for tests: flow name -> list of commands (anything else is unknown)."""

    def __init__(self, flows: dict[str, list[Command]], services: Any = None):
        self.flows = flows
        self.services = services
        self.sessions: list[ScriptedSession] = []
        self.envs: list[dict] = []

    def __call__(self, env: Any) -> ScriptedSession:
        self.envs.append(env)
        if env.flow not in self.flows:
            raise UnknownFlow(env.flow)
        session = ScriptedSession(self.flows[env.flow], session_id=f"{len(self.sessions):032x}")
        self.sessions.append(session)
        return session


class ListSink:
    """Keeps every record; ``save`` may be made to return a Deferred fired later."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def save(self, record: dict) -> None:
        self.records.append(record)


@dataclass
class RecordingServices:
    """Services whose calls say which thread ran them; ``block`` holds a call until set."""

    threads: list[int] = field(default_factory=list)
    block: threading.Event | None = None
    entered: defer.Deferred = field(default_factory=defer.Deferred)  # fired in the reactor thread

    def lookup(self, by: str, value: str, fields: list[str]) -> dict:
        from twisted.internet import reactor
        self.threads.append(threading.get_ident())
        if threading.current_thread() is threading.main_thread():
            self.entered.callback(None)
        else:
            reactor.callFromThread(self.entered.callback, None)
        if self.block is not None:
            self.block.wait(10)
        return {"by": by, "value": value}

    def authenticate(self, account: str, pin: str) -> None:
        raise RuntimeError("database is down")


def inline_runner(fn: Any, *args: Any) -> defer.Deferred:
    """Runs 'thread pool' work inline: for StringTransport tests that have no real reactor."""
    return defer.maybeDeferred(fn, *args)


# --- recorded conversations -------------------------------------------------------------------
_LOG_LINE = re.compile(r"^\S+ \[(?P<sid>[^\]]+)\] (?P<dir>AST>|APP>|---) ?(?P<text>.*)$")


@dataclass
class Exchange:
    """One command we sent and the lines Asterisk sent until its reply was complete."""

    command: str
    lines: list[str]


@dataclass
class RecordedSession:
    sid: str
    env_lines: list[str]
    exchanges: list[Exchange]


def read_agi_log(path: Path) -> dict[str, RecordedSession]:
    """Split an ``agi.log`` into sessions: env lines, then (command, reply lines) pairs."""
    sessions: dict[str, RecordedSession] = {}
    for raw in path.read_text().splitlines():
        m = _LOG_LINE.match(raw)
        if m is None:
            continue
        sid, direction, text = m.group("sid"), m.group("dir"), m.group("text")
        s = sessions.setdefault(sid, RecordedSession(sid, [], []))
        if direction == "---":
            continue
        if direction == "APP>":
            s.exchanges.append(Exchange(text, []))
        elif s.exchanges:
            s.exchanges[-1].lines.append(text)
        else:
            s.env_lines.append(text)
    return sessions


TINY_FLOW = """\
flow: tiny
description: Smallest useful flow for the AGI integration tests
operator_queue: operator
steps:
  menu:
    type: menu
    prompt: {sound: beep}
    choices: {"1": sales, "2": bye}
    timeout: 3
    retries: 1
  sales:
    type: queue
    queue: sales
    announce_position: false
  bye:
    type: say
    prompt: {sound: goodbye}
"""


def write_tiny_flow(directory: Path) -> Path:
    """A flows directory holding ``tiny.yaml`` (menu: 1 -> queue sales, 2 -> goodbye)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tiny.yaml").write_text(TINY_FLOW)
    return directory
