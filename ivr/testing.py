"""Flow tests for administrators: script a call, check what the caller hears.

A call-centre admin who changes a menu wants a test that reads like the call itself::

    from ivr.testing import call

    def test_vip_balance():
        (call("flows/main.yaml", caller_id="13800000001", now="2026-11-24T10:00+08:00")
            .press("1")                       # English
            .press("100001#").press("1234#")  # account, PIN
            .hears("balance")
            .press("1")
            .hears_money(1234567)
            .press("0")
            .ends_in_queue("vip", priority=10))

It drives the real engine through ``ivr.simulator.SimulatedCall`` (no Asterisk, no
database: ``InMemoryServices`` with the demo customers unless you pass ``services``).
A failed check raises ``AssertionError`` with the transcript of the call so far.
Steps visited are recorded for ``pytest --flow-coverage`` (``ivr.pytest_plugin``).
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ivr.commands import Outcome
from ivr.flow import Flow
from ivr.simulator import (
    DEMO_CUSTOMERS, Heard, PromptCatalogue, SimulatedCall, SimulationError,
    demo_services, flow_timezone, parse_now,
)

__all__ = ["call", "CallTest", "FlowCoverage", "COVERAGE", "step_name_of", "flow_of"]


# ------------------------------------------------------------------ coverage across a test session

def step_name_of(entry: Any) -> str:
    """The step name of one trace entry (a name, or an object/dict with ``step``/``name``)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping):
        return str(entry.get("step") or entry.get("name"))
    for attr in ("step", "name"):
        value = getattr(entry, attr, None)
        if isinstance(value, str):
            return value
    return str(entry)


def flow_of(entry: Any, default: str) -> str:
    """The flow of one trace entry (``flow`` field, or ``flow.step`` / ``flow:step`` names)."""
    if isinstance(entry, Mapping) and entry.get("flow"):
        return str(entry["flow"])
    value = getattr(entry, "flow", None)
    if isinstance(value, str) and value:
        return value
    return default


class FlowCoverage:
    """Which steps of which flows the tests of this session went through."""

    def __init__(self) -> None:
        self.steps: dict[str, list[str]] = {}          # flow -> every step, file order
        self.visited: dict[str, set[str]] = defaultdict(set)
        self.files: dict[str, str] = {}

    def know(self, flow: Flow) -> None:
        if flow.name not in self.steps:
            self.steps[flow.name] = list(flow.steps)
            self.files[flow.name] = flow.path

    def record(self, trace: Iterable[Any], start_flow: str, flows: Mapping[str, Flow]) -> None:
        for entry in trace:
            name = step_name_of(entry)
            flow = flow_of(entry, "")
            if not flow:
                flow, name = _split_qualified(name, start_flow, flows)
            if flow in flows:
                self.know(flows[flow])
            self.visited[flow].add(name)

    def report(self) -> list[str]:
        """One line per flow: ``name  visited/total  never: a, b``."""
        lines = []
        width = max((len(n) for n in self.steps), default=0)
        for name in sorted(self.steps):
            steps = self.steps[name]
            seen = [s for s in steps if s in self.visited.get(name, ())]
            never = [s for s in steps if s not in self.visited.get(name, ())]
            pct = 100.0 * len(seen) / len(steps) if steps else 100.0
            line = f"{name:<{width}}  {len(seen):>3}/{len(steps):<3} {pct:5.1f}%"
            if never:
                line += "  never: " + ", ".join(never)
            lines.append(line)
        return lines

    def clear(self) -> None:
        self.steps.clear()
        self.visited.clear()
        self.files.clear()


def _split_qualified(name: str, start_flow: str, flows: Mapping[str, Flow]) -> tuple[str, str]:
    for sep in (".", ":", "/"):
        if sep in name:
            flow, _, step = name.rpartition(sep)
            flow = flow.rpartition(sep)[2] if sep in flow else flow
            if flow in flows and step in flows[flow].steps:
                return flow, step
    return start_flow, name


COVERAGE = FlowCoverage()


# ------------------------------------------------------------------ flows and services

class _Flows:
    """Every flow of one directory (``FlowLibrary``), loaded once per test session."""

    _libraries: dict[str, Any] = {}

    @classmethod
    def library(cls, flows_dir: Path) -> Any:
        from ivr.library import FlowLibrary
        key = str(flows_dir.resolve())
        library = cls._libraries.get(key)
        if library is None:
            library = cls._libraries[key] = FlowLibrary(flows_dir)
        else:
            library.reload()
        return library


def _resolve_flow(flow: str | os.PathLike) -> tuple[Path, str]:
    path = Path(flow)
    if path.suffix not in (".yaml", ".yml"):
        path = path.with_suffix(".yaml")
    if not path.is_absolute() and not path.exists():
        here = Path.cwd()
        for parent in (here, *here.parents):
            if (parent / path).exists():
                path = parent / path
                break
    if not path.exists():
        raise FileNotFoundError(f"no flow file {flow} (looked from {Path.cwd()})")
    return path.parent, path.stem


# ------------------------------------------------------------------ the call under test

@dataclass
class _Check:
    since: int = 0   # index in the transcript of the first item not checked by hears*()


class CallTest:
    """A scripted call; every method returns the same object so checks chain."""

    def __init__(self, sim: SimulatedCall, flows: Mapping[str, Flow]):
        self.sim = sim
        self._flows = flows
        self._check = _Check()
        self._recorded = 0   # trace entries already added to COVERAGE
        COVERAGE.know(sim.flow)

    # -- what the test can look at
    @property
    def services(self) -> Any:
        return self.sim.services

    @property
    def outcome(self) -> Outcome | None:
        return self.sim.outcome

    @property
    def trace(self) -> list:
        return self.sim.trace

    @property
    def steps(self) -> list[str]:
        return [step_name_of(e) for e in self.sim.trace]

    @property
    def variables(self) -> dict[str, Any]:
        return self.sim.variables

    def transcript(self) -> str:
        lines = [f"call into {self.sim.flow.name} ({self.sim.flow.path})"]
        lines += [f"  {item}" for item in self.sim.transcript]
        if self.sim.outcome is not None:
            o = self.sim.outcome
            lines.append(f"  ⏹  outcome {o.kind}" + (f" → {o.target}" if o.target else "")
                         + (f" at {o.step}" if o.step else "") + (f" ({o.detail})" if o.detail else ""))
        elif self.sim.pending_kind:
            lines.append(f"  … waiting for {self.sim.pending_kind}")
        lines.append("  path: " + " → ".join(self.steps))
        return "\n".join(lines)

    def _fail(self, message: str) -> AssertionError:
        self._record()
        return AssertionError(f"{message}\n\n{self.transcript()}")

    def _record(self) -> None:
        """Add the steps visited since the last record to the session's flow coverage."""
        trace = self.sim.trace
        COVERAGE.record(trace[self._recorded:], self.sim.flow.name, self._flows)
        self._recorded = len(trace)

    def _do(self, action, *args) -> "CallTest":
        try:
            action(*args)
        except SimulationError as exc:
            raise self._fail(str(exc)) from None
        self._record()
        return self

    # -- what the caller does
    def press(self, keys: str) -> "CallTest":
        """Answer the next input (menu, collect, PIN...) with ``keys``."""
        return self._do(self.sim.press, str(keys))

    def timeout(self) -> "CallTest":
        """Let the next input time out (the caller presses nothing)."""
        return self._do(self.sim.timeout)

    def hangup(self) -> "CallTest":
        """The caller hangs up now."""
        return self._do(self.sim.hangup)

    def agent_answers(self) -> "CallTest":
        """The call waiting in the queue is answered; the agent call ends, the flow goes on."""
        return self._do(self.sim.end_queue, "answered")

    def queue_times_out(self, status: str = "timeout") -> "CallTest":
        """The caller leaves the queue without an agent (``timeout``, ``full``, ``joinempty``...)."""
        return self._do(self.sim.end_queue, status)

    def dial_ends(self, status: str = "ANSWER") -> "CallTest":
        """The pending Dial ends with DIALSTATUS ``status`` (ANSWER, BUSY, NOANSWER...)."""
        return self._do(self.sim.end_dial, status)

    # -- what the caller hears
    # Checks read the transcript in order: each one looks at what was heard after the
    # previous successful check, and moves past the item it matched.
    def _unchecked(self) -> list[tuple[int, Heard]]:
        return [(i, item) for i, item in enumerate(self.sim.transcript)
                if i >= self._check.since and isinstance(item, Heard)]

    def _find(self, match, what: str) -> "CallTest":
        for index, heard in self._unchecked():
            if match(heard):
                self._check.since = index + 1
                return self
        raise self._fail(f"the caller did not hear {what} (since the last check)")

    def hears(self, text: str) -> "CallTest":
        """A prompt heard since the last check contains ``text`` (case-insensitive)."""
        needle = text.casefold()
        return self._find(lambda h: h.kind == "text" and needle in h.value.casefold(), repr(text))

    def not_hears(self, text: str) -> "CallTest":
        """No prompt heard since the last check contains ``text``."""
        needle = text.casefold()
        for _, heard in self._unchecked():
            if heard.kind == "text" and needle in heard.value.casefold():
                raise self._fail(f"the caller heard {text!r}: {heard}")
        return self

    def _hears_kind(self, kind: str, value: str, what: str) -> "CallTest":
        return self._find(lambda h: h.kind == kind and h.value == value, what)

    def hears_number(self, number: int) -> "CallTest":
        return self._hears_kind("number", str(int(number)), f"the number {number}")

    def hears_digits(self, digits: str) -> "CallTest":
        return self._hears_kind("digits", str(digits), f"the digits {digits}")

    def hears_sound(self, name: str) -> "CallTest":
        return self._hears_kind("sound", name, f"the sound {name!r}")

    def hears_file(self, name: str) -> "CallTest":
        return self._hears_kind("file", name, f"the recording {name!r}")

    def hears_date(self, iso_date: str) -> "CallTest":
        return self._hears_kind("date", str(iso_date), f"the date {iso_date}")

    def hears_spelled(self, text: str) -> "CallTest":
        """``text`` was spelt out (SAY ALPHA: a ticket reference inside a prompt...)."""
        return self._hears_kind("alpha", str(text), f"{text!r} spelt out")

    def hears_money(self, cents: int) -> "CallTest":
        """An amount in cents was said: the units as a number, then the cents (when not 0)."""
        sign = -1 if cents < 0 else 1
        units, rest = divmod(abs(int(cents)), 100)
        if units or not rest:
            wanted = [str(sign * units)] + ([str(rest)] if rest else [])
        else:
            wanted = [str(sign * rest)]
        numbers = [(i, h.value) for i, h in self._unchecked() if h.kind == "number"]
        for start in range(len(numbers) - len(wanted) + 1):
            window = numbers[start:start + len(wanted)]
            if [v for _, v in window] == wanted:
                self._check.since = window[-1][0] + 1
                return self
        raise self._fail(f"the caller did not hear the amount {'-' if sign < 0 else ''}{units}.{rest:02d} "
                         f"(numbers heard: {', '.join(v for _, v in numbers) or 'none'})")

    # -- where the call went
    def visited(self, step: str) -> "CallTest":
        if step not in self.steps:
            raise self._fail(f"the call did not go through step {step!r}")
        return self

    def not_visited(self, step: str) -> "CallTest":
        if step in self.steps:
            raise self._fail(f"the call went through step {step!r}")
        return self

    def variable(self, name: str, expected: Any) -> "CallTest":
        variables = self.sim.variables
        if name not in variables:
            raise self._fail(f"no variable {name!r}")
        if variables[name] != expected:
            raise self._fail(f"variable {name!r} is {variables[name]!r}, expected {expected!r}")
        return self

    def waits_for_input(self) -> "CallTest":
        if self.sim.pending_kind != "input":
            raise self._fail(f"the call is not waiting for keys ({self.sim.pending_kind or 'it is over'})")
        return self

    def ends_in_queue(self, queue: str, priority: int | None = None) -> "CallTest":
        """The call is now waiting in ``queue`` (with that priority, when given)."""
        pending = self.sim.pending_queue()
        if pending is None:
            where = (f"it waits for {self.sim.pending_kind}" if self.sim.pending_kind
                     else f"it ended: {self.sim.outcome.kind if self.sim.outcome else '?'}")
            raise self._fail(f"the call is not in a queue ({where})")
        name, prio = pending
        if name != queue:
            raise self._fail(f"the call is in queue {name!r}, expected {queue!r}")
        if priority is not None and prio != priority:
            raise self._fail(f"the call is in queue {name!r} with priority {prio}, expected {priority}")
        return self

    def ends_with(self, kind: str, target: str | None = None) -> "CallTest":
        """The call is over with outcome ``kind`` (and ``target``, when given)."""
        if not self.sim.ended:
            raise self._fail(f"the call is not over: it waits for {self.sim.pending_kind}")
        outcome = self.sim.outcome
        if outcome.kind != kind or (target is not None and outcome.target != target):
            got = outcome.kind + (f" → {outcome.target}" if outcome.target else "")
            raise self._fail(f"the call ended with {got}, expected {kind}"
                             + (f" → {target}" if target else ""))
        self._record()
        return self

    def hangs_up(self) -> "CallTest":
        """The call is over (the flow hung up, or the caller did)."""
        if not self.sim.ended:
            raise self._fail(f"the call is not over: it waits for {self.sim.pending_kind}")
        self._record()
        return self

    def masked(self, value: str) -> "CallTest":
        """``value`` (a PIN...) appears nowhere in the session's inputs or variables shown."""
        inputs = getattr(self.sim.session, "inputs", [])
        if any(value in str(item) for item in inputs):
            raise self._fail(f"{value!r} is stored unmasked in the session inputs: {inputs}")
        return self


def call(flow: str | os.PathLike, *, caller_id: str = "13800000001",
         caller_name: str = "Test Caller", dnid: str = "4000", now: Any = None,
         language: str | None = None, services: Any = None,
         customers: Sequence[Mapping[str, Any]] | None = None) -> CallTest:
    """Start a call into ``flow`` (a path like ``flows/main.yaml``) and run to the first input.

    ``now``: ``"2026-11-24T10:00+08:00"`` (a time without offset is in the time zone of
    the flow's ``hours`` step), a datetime, or epoch seconds; default: the real time.
    ``services``: your own ``InMemoryServices``; default: the demo customers
    (``ivr.simulator.DEMO_CUSTOMERS``), or ``customers`` if given.
    """
    import ivr.steps  # noqa: F401  - registers the step types
    flows_dir, name = _resolve_flow(flow)
    library = _Flows.library(flows_dir)
    try:
        the_flow = library.get(name)
    except Exception as exc:
        problems = "\n".join(str(p) for p in library.problems) or str(exc)
        raise AssertionError(f"flow {name!r} cannot be loaded:\n{problems}") from None
    flows = {n: library.get(n) for n in library.names()}
    if services is None:
        services = demo_services(_hashed(customers if customers is not None else DEMO_CUSTOMERS))
    for known in _reachable_flows(the_flow, flows):
        COVERAGE.know(known)
    epoch = parse_now(now, flow_timezone(the_flow, library))
    sim = SimulatedCall(the_flow, services=services, flows=library, caller_id=caller_id,
                        caller_name=caller_name, dnid=dnid, language=language, now=epoch,
                        catalogue=_catalogue(library))
    test = CallTest(sim, flows)
    test._record()
    return test


_CATALOGUES: dict[tuple, PromptCatalogue] = {}
_HASHED: dict[int, tuple[Sequence[Mapping[str, Any]], list[dict[str, Any]]]] = {}


def _hashed(customers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``customers`` with each ``pin`` replaced by its hash, computed once per test session
    (a PIN hash costs tens of milliseconds by design; verifying still does)."""
    from ivr import pins
    cached = _HASHED.get(id(customers))
    if cached is not None and cached[0] is customers:
        return [dict(c) for c in cached[1]]
    out = []
    for customer in customers:
        record = dict(customer)
        if record.get("pin") is not None and not record.get("pin_hash"):
            record["pin_hash"] = pins.hash_pin(str(record.pop("pin")))
        out.append(record)
    _HASHED[id(customers)] = (customers, out)
    return [dict(c) for c in out]


def _reachable_flows(flow: Flow, flows: Mapping[str, Flow]) -> list[Flow]:
    """``flow`` and every flow its ``subflow`` steps run, directly or not."""
    found: dict[str, Flow] = {}
    todo = [flow]
    while todo:
        current = todo.pop()
        if current.name in found:
            continue
        found[current.name] = current
        for step in current.steps.values():
            name = step.params.get("flow") if step.type == "subflow" else None
            if isinstance(name, str) and name in flows:
                todo.append(flows[name])
    return list(found.values())


def _catalogue(library: Any) -> PromptCatalogue:
    key = (str(library.flows_dir), tuple((n, library.get(n).version) for n in library.names()))
    if key not in _CATALOGUES:
        _CATALOGUES[key] = PromptCatalogue(library.get(n) for n in library.names())
    return _CATALOGUES[key]
