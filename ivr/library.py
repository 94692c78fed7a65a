"""The flows a running server serves, reloaded from disk without dropping a call.

An administrator edits ``flows/main.yaml`` on a live system. A good edit should reach
the next caller; a broken one must never reach anyone: it is refused, logged with
file:line, and the last good version keeps serving. Calls in progress hold their own
``Flow`` object, so replacing a flow never changes a call halfway. Pure Python: the
FastAGI server polls ``reload()`` from a ``LoopingCall``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ivr.flow import STEP_TYPES, Flow, FlowProblem, SourcePos, StepType
from ivr.loader import check_flow_text, file_size_problem

__all__ = ["FlowLibrary", "UnknownFlow"]


class UnknownFlow(KeyError):
    """No flow of that name is being served (no such file, or never loaded cleanly)."""

    def __init__(self, name: str, reason: str = ""):
        self.name = name
        self.reason = reason
        super().__init__(name)

    def __str__(self) -> str:
        return f"no flow named '{self.name}'" + (f": {self.reason}" if self.reason else "")


@dataclass
class _FlowFile:
    path: Path
    stamp: tuple[int, int] = (0, -1)           # (mtime_ns, size) when last read
    digest: str = ""                           # sha256 of the bytes last checked
    flow: Flow | None = None                   # the last good version, served
    refused: list[FlowProblem] = field(default_factory=list)  # why the latest version was refused


class FlowLibrary:
    """Every ``*.yaml`` flow in one directory, by file name (``main.yaml`` -> ``main``)."""

    def __init__(self, flows_dir: str | Path, registry: Mapping[str, StepType] | None = None,
                 log: logging.Logger | None = None):
        self.flows_dir = Path(flows_dir)
        self.registry = STEP_TYPES if registry is None else registry
        self.log = log or logging.getLogger("hotline.flows")
        self._files: dict[str, _FlowFile] = {}
        self._names: frozenset[str] = frozenset()
        self.reload()

    # ------------------------------------------------------------ serving

    def get(self, name: str) -> Flow:
        """The flow to start a new call on; raises ``UnknownFlow``."""
        entry = self._files.get(name)
        if entry is None:
            raise UnknownFlow(name, f"no {self.flows_dir / (name + '.yaml')}")
        if entry.flow is None:
            raise UnknownFlow(name, f"{entry.path} has errors and no earlier good version")
        return entry.flow

    def __contains__(self, name: object) -> bool:
        entry = self._files.get(name) if isinstance(name, str) else None
        return entry is not None and entry.flow is not None

    def names(self) -> list[str]:
        """Names of the flows being served."""
        return sorted(name for name, entry in self._files.items() if entry.flow is not None)

    @property
    def problems(self) -> list[FlowProblem]:
        """Why the current version of each refused file was refused."""
        return [p for name in sorted(self._files) for p in self._files[name].refused]

    # ------------------------------------------------------------ reloading

    def reload(self) -> list[FlowProblem]:
        """Pick up added, changed and deleted files; returns the problems of files checked now."""
        try:
            if not self.flows_dir.is_dir():
                raise FileNotFoundError("not a directory")
            paths = {p.stem: p for p in self.flows_dir.glob("*.yaml") if p.is_file()}
        except OSError as exc:
            # A directory swapped out during a deploy must not take every flow down.
            self.log.error("flows_dir_unreadable dir=%s error=%s keeping=%d",
                           self.flows_dir, exc.strerror or exc, len(self.names()))
            return []
        names = frozenset(paths)
        names_changed = names != self._names
        for name in sorted(self._names - names):
            entry = self._files.pop(name)
            self.log.warning("flow_removed name=%s file=%s", name, entry.path)
        self._names = names

        found: list[FlowProblem] = []
        for name in sorted(names):
            entry = self._files.setdefault(name, _FlowFile(paths[name]))
            found.extend(self._refresh(name, entry, recheck=names_changed))
        return found

    def _refresh(self, name: str, entry: _FlowFile, recheck: bool) -> list[FlowProblem]:
        try:
            st = os.stat(entry.path)
        except OSError:
            return []   # deleted between glob and stat: the next reload drops it
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == entry.stamp and not recheck:
            return []
        too_large = file_size_problem(str(entry.path), st.st_size)
        if too_large is not None:   # refused without reading it into memory
            entry.stamp = stamp
            entry.digest = ""
            return self._refuse(name, entry, [too_large])
        try:
            data = entry.path.read_bytes()
        except OSError as exc:
            problem = FlowProblem(SourcePos(str(entry.path), 1, 1), f"cannot read file: {exc.strerror or exc}")
            return self._refuse(name, entry, [problem])
        entry.stamp = stamp
        digest = hashlib.sha256(data).hexdigest()
        if digest == entry.digest and not recheck:
            return []
        entry.digest = digest
        try:
            flow, problems = check_flow_text(data, str(entry.path), registry=self.registry,
                                             flows_dir=self.flows_dir, known_flows=self._names)
        except Exception as exc:
            # Whatever goes wrong with one file (a loader or validator bug, a stack
            # overflow on a pathological file) refuses that file only: the others load,
            # and the last good version of this one keeps serving.
            self.log.exception("flow_check_crashed name=%s file=%s error=%s", name, entry.path,
                               type(exc).__name__)
            problem = FlowProblem(SourcePos(str(entry.path), 1, 1),
                                  f"file could not be checked ({type(exc).__name__}); it is refused")
            return self._refuse(name, entry, [problem])
        errors = [p for p in problems if p.severity == "error"]
        if flow is None or errors:
            return self._refuse(name, entry, problems)
        for warning in problems:
            self.log.info("flow_warning name=%s problem=%s", name, warning)
        if entry.flow is None or entry.flow.version != flow.version or entry.refused:
            self.log.info("flow_loaded name=%s version=%s file=%s steps=%d%s", name, flow.version,
                          entry.path, len(flow.steps),
                          f" replaces={entry.flow.version}" if entry.flow is not None else "")
        entry.flow = flow
        entry.refused = []
        return problems

    def _refuse(self, name: str, entry: _FlowFile, problems: list[FlowProblem]) -> list[FlowProblem]:
        if problems == entry.refused:
            return problems   # same refusal as last poll: said already
        entry.refused = list(problems)
        serving = entry.flow.version if entry.flow is not None else "nothing"
        errors = sum(1 for p in problems if p.severity == "error")
        self.log.warning("flow_refused name=%s file=%s errors=%d serving=%s", name, entry.path,
                         errors, serving)
        for problem in problems:
            self.log.warning("flow_problem name=%s problem=%s", name, problem)
        return problems
