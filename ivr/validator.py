"""Check a flow before any caller hears it, reporting every problem with file:line:col.

A broken flow found at 3 a.m. by a caller costs far more than one refused by
``hotline flows check`` or by the hot reload. Each step type declares its keys
(``ivr.flow.Key``), so this module can check kinds, targets, prompt files,
expressions, variables and the shape of the graph (unreachable steps, loops that
never wait for the caller) without running anything.
"""
from __future__ import annotations

import math
import os
import re
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ivr.expr import ExprError, compile_expr, compile_template
from ivr.flow import STEP_TYPES, Flow, FlowProblem, Key, SourcePos, Step, StepType
from ivr.loader import (
    EXPRESSION_PATHS, did_you_mean, iter_path_values, read_flow_unchecked, step_keys,
)

__all__ = ["validate_flow", "ALWAYS_DEFINED", "PROMPT_EXTENSIONS", "find_prompt_file", "flow_edges"]

# Variables every session has (docs/flow-spec.md, "Variables always defined");
# arg_1..arg_N and arg_<name> come from the AGI request and are accepted by prefix.
ALWAYS_DEFINED = frozenset({
    "caller_id", "caller_name", "dnid", "channel", "uniqueid", "linkedid", "language",
    "session_id", "flow", "now", "customer_id", "tier", "authenticated",
})
_ARG_PREFIX = "arg_"

PROMPT_EXTENSIONS = (".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".g722")
_PROMPT_FORMS = ("text", "file", "sound")
_DTMF = set("0123456789*#")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}\Z")
_FLOW_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,99}\Z")
_LANGUAGE = re.compile(r"[a-z]{2}([_-][A-Za-z]{2,4})?\Z")
_SOUND_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-./]*\Z")


def validate_flow(flow: Flow, *, registry: Mapping[str, StepType] | None = None,
                  flows_dir: str | Path | None = None,
                  known_flows: Iterable[str] | None = None) -> list[FlowProblem]:
    """Every problem in ``flow`` (errors and warnings), in no particular order.

    ``flows_dir`` is where prompt files (``sounds/``) and subflows are looked up
    (default: the flow file's directory); ``known_flows`` overrides the subflow names.
    """
    registry = STEP_TYPES if registry is None else registry
    directory = Path(flows_dir) if flows_dir is not None else Path(flow.path).parent
    return _Validator(flow, registry, directory,
                      None if known_flows is None else set(known_flows)).run()


def find_prompt_file(sounds_dir: Path, name: str, languages: Iterable[str] = ()) -> Path | None:
    """The recorded prompt ``name`` in ``sounds_dir`` (or its language subfolders), if any."""
    for folder in [sounds_dir, *(sounds_dir / lang for lang in languages if lang)]:
        for ext in PROMPT_EXTENSIONS:
            candidate = folder / f"{name}{ext}"
            if candidate.is_file():
                return candidate
    return None


def flow_edges(flow: Flow, registry: Mapping[str, StepType] | None = None) -> list[tuple[str, str, str]]:
    """Every (from step, key, to step) of the flow's graph, in file order."""
    registry = STEP_TYPES if registry is None else registry
    edges = []
    for step in flow.steps.values():
        for key, target in _step_edges(step, registry.get(step.type), flow.steps):
            edges.append((step.name, key, target))
    return edges


def _step_edges(step: Step, step_type: StepType | None, steps: Mapping[str, Step]) -> list[tuple[str, str]]:
    if step_type is None:
        # Unknown type: guess edges from any value naming a step, so one typo in a
        # type does not make every step after it "unreachable" too.
        return [(path, value) for path, value in _walk(step.params) if isinstance(value, str)
                and value in steps]
    try:
        edges = list(step_type.targets(step))
    except Exception:   # malformed values, already reported by the kind checks
        edges = []
    # Every declared target key counts, even if a step type's targets() forgets one.
    for key, spec in step_type.keys.items():
        value = step.params.get(key)
        if spec.kind == "target" and value is not None:
            edges.append((key, value))
        elif spec.kind == "digit_targets" and isinstance(value, Mapping):
            edges.extend((f"{key}.{digit}", target) for digit, target in value.items())
    unique: dict[tuple[str, str], None] = {}
    for key, target in edges:
        if isinstance(key, str) and isinstance(target, str):
            unique.setdefault((key, target), None)
    return list(unique)


def _walk(value: Any, path: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (yes/no)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"'{value[:40]}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Validator:
    def __init__(self, flow: Flow, registry: Mapping[str, StepType], flows_dir: Path,
                 known_flows: set[str] | None):
        self.flow = flow
        self.registry = registry
        self.flows_dir = flows_dir
        self.known_flows = known_flows
        self.problems: list[FlowProblem] = []
        # (variable, where, message prefix) of every read, checked once writes are known
        self.reads: list[tuple[str, SourcePos, str]] = []
        self.writes: set[str] = set()
        self.broken_steps: set[str] = set()
        self.file = flow.path

    # ------------------------------------------------------------ positions

    def key_at(self, step: Step, path: str) -> SourcePos:
        while path:
            if path in step.key_pos:
                return step.key_pos[path]
            path = path.rpartition(".")[0]
        return step.pos

    def value_at(self, step: Step, path: str) -> SourcePos:
        value_pos = getattr(step, "value_pos", {})
        return value_pos.get(path) or self.key_at(step, path)

    def text_at(self, step: Step, path: str, column: int) -> tuple[SourcePos, bool]:
        """Position of column ``column`` (1-based) of a scalar's text; exact or not."""
        start = getattr(step, "text_pos", {}).get(path)
        if start is not None:
            return SourcePos(start.file, start.line, start.col + column - 1), True
        return self.value_at(step, path), False

    def flow_at(self, key: str) -> SourcePos:
        """Position of a file-level key's value (a hand-built Flow has none: its own pos)."""
        pos = getattr(self.flow, "value_pos", {}).get(key) or getattr(self.flow, "key_pos", {}).get(key)
        return pos or self.flow.pos or SourcePos(self.file, 1, 1)

    def error(self, pos: SourcePos, message: str, step: Step | None = None) -> None:
        self.problems.append(FlowProblem(pos, message))
        if step is not None:
            self.broken_steps.add(step.name)

    def warning(self, pos: SourcePos, message: str) -> None:
        self.problems.append(FlowProblem(pos, message, severity="warning"))

    # ------------------------------------------------------------ run

    def run(self) -> list[FlowProblem]:
        self.writes |= ALWAYS_DEFINED | set(self.flow.variables)
        self.check_file_keys()
        for step in self.flow.steps.values():
            self.check_step(step)
        self.check_graph()
        self.check_subflow_loops()
        self.check_reads()
        return self.problems

    def check_file_keys(self) -> None:
        flow, steps = self.flow, self.flow.steps
        file_stem = Path(flow.path).stem
        if flow.name != file_stem and "flow" in getattr(flow, "key_pos", {}):
            self.warning(self.flow_at("flow"), f"flow name '{flow.name}' differs from the file name "
                                               f"'{file_stem}': callers and subflows use the file name")
        if flow.start not in steps:
            self.error(self.flow_at("start"), f"start step '{flow.start}' does not exist"
                                              f"{did_you_mean(flow.start, steps)}")
        if flow.on_error is not None and flow.on_error not in steps:
            self.error(self.flow_at("on_error"), f"on_error step '{flow.on_error}' does not exist"
                                                 f"{did_you_mean(flow.on_error, steps)}")
        if not _QUEUE_NAME.match(flow.operator_queue or ""):
            self.error(self.flow_at("operator_queue"),
                       f"operator_queue '{flow.operator_queue}' is not a valid queue name "
                       f"(letters, digits, _ . -)")
        if not _LANGUAGE.match(flow.language or ""):
            self.error(self.flow_at("language"), f"language '{flow.language}' is not a language code "
                                                 f"like 'en' or 'zh'")
        for name in flow.variables:
            if not _VAR_NAME.match(str(name)):
                self.error(getattr(flow, "key_pos", {}).get(f"variables.{name}") or self.flow_at("variables"),
                           f"variable name '{name}' is not valid: use letters, digits and _")

    # ------------------------------------------------------------ steps

    def check_step(self, step: Step) -> None:
        label = f"step '{step.name}': "
        step_type = self.registry.get(step.type)
        if step_type is None:
            if not step.type:
                if "type" not in step.key_pos:   # else the loader said what is wrong with it
                    self.error(step.pos, f"{label}no 'type' (one of: {', '.join(sorted(self.registry))})", step)
            else:
                self.error(self.value_at(step, "type"), f"{label}unknown step type '{step.type}'"
                                                        f"{did_you_mean(step.type, self.registry)}", step)
            return
        keys = step_keys(step_type)
        for key in step.params:
            if key not in keys:
                self.error(self.key_at(step, key), f"{label}unknown key '{key}'"
                                                   f"{did_you_mean(key, keys)}", step)
        for key, spec in keys.items():
            if key == "type":
                continue
            value = step.params.get(key)
            if value is None:
                if spec.required:
                    self.error(step.pos if key not in step.key_pos else self.key_at(step, key),
                               f"{label}missing required key '{key}'", step)
                continue
            self.check_value(step, key, spec, value, label)
        self.check_nested_expressions(step, label)
        # A step type's writes()/reads() may trip over malformed values, already reported.
        try:
            self.writes |= {w for w in step_type.writes(step) if isinstance(w, str)}
        except Exception:
            pass
        try:
            self.reads.extend((name, step.pos, label) for name in step_type.reads(step)
                              if isinstance(name, str))
        except Exception:
            pass
        try:
            extra = step_type.check(step)
        except Exception as exc:
            # A crash on values already reported is noise; on a clean step it is our bug.
            if step.name not in self.broken_steps:
                self.error(step.pos, f"{label}could not be checked ({type(exc).__name__}: {exc}); "
                                     f"this is a bug in step type '{step.type}'", step)
        else:
            for problem in extra:
                self.problems.append(problem)
                if problem.severity == "error":
                    self.broken_steps.add(step.name)

    def check_value(self, step: Step, key: str, spec: Key, value: Any, label: str) -> None:
        where = self.value_at(step, key)
        kind = spec.kind

        def bad(expected: str) -> None:
            self.error(where, f"{label}'{key}' must be {expected}, not {_describe(value)}", step)

        checker = _SIMPLE_KINDS.get(kind)
        if checker is not None:
            ok, expected = checker
            if not ok(value):
                bad(expected)
                return
        if kind == "float" and not _finite(value):
            # YAML's .nan / .inf are floats, but no timer can wait for them.
            self.error(where, f"{label}'{key}' must be a finite number (seconds), "
                              f"not {_describe(value)[:60]}", step)
            return
        if spec.choices and value not in spec.choices:
            choices = ", ".join(str(c) for c in spec.choices)
            self.error(where, f"{label}'{key}' must be one of {choices}, not {_describe(value)}"
                              f"{did_you_mean(str(value), [str(c) for c in spec.choices])}", step)
            return
        if kind == "text":
            self.check_template(step, key, value, label)
        elif kind == "expr":
            self.check_expression(step, key, value, label)
        elif kind == "prompt":
            self.check_prompt(step, key, value, label, languages=())
        elif kind == "digit_targets":
            for digit, target in value.items():
                path = f"{key}.{digit}"
                if digit not in _DTMF:
                    self.error(self.key_at(step, path), f"{label}'{digit}' in '{key}' is not a phone "
                                                        f"key: use one of 0-9 * #", step)
                if not isinstance(target, str):
                    self.error(self.value_at(step, path), f"{label}'{path}' must name a step, "
                                                          f"not {_describe(target)}", step)
        elif kind == "var":
            if value in ALWAYS_DEFINED:
                self.warning(where, f"{label}'{key}' overwrites the built-in variable '{value}'")
        elif kind == "flow":
            self.check_subflow(step, key, value, label)
        elif kind in ("list", "map"):
            self.check_nested_prompts(step, key, value, label)

    def check_nested_prompts(self, step: Step, path: str, value: Any, label: str, depth: int = 0) -> None:
        """Prompts inside structured keys (survey ``questions[].prompt``) are prompts too."""
        if depth > 4:
            return
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for item_key, item in items:
            item_path = f"{path}.{item_key}"
            if isinstance(item_key, str) and (item_key == "prompt" or item_key.endswith("_prompt")):
                if item is not None:
                    self.check_prompt(step, item_path, item, label, languages=())
            elif isinstance(item, (dict, list)):
                self.check_nested_prompts(step, item_path, item, label, depth + 1)

    def check_template(self, step: Step, path: str, text: str, label: str) -> None:
        try:
            template = compile_template(text)
        except ExprError as exc:
            pos, exact = self.text_at(step, path, exc.column)
            where = "" if exact else f" (column {exc.column} of the text)"
            self.error(pos, f"{label}'{path}': {exc.message}{where}", step)
            return
        for name in template.names:
            pos, _ = self.text_at(step, path, template.positions[name])
            self.reads.append((name, pos, label))

    def check_expression(self, step: Step, path: str, source: Any, label: str) -> None:
        if isinstance(source, (bool, int, float)) or source is None:
            return   # a literal value
        if not isinstance(source, str):
            self.error(self.value_at(step, path), f"{label}'{path}' must be an expression, "
                                                  f"not {_describe(source)}", step)
            return
        try:
            expression = compile_expr(source)
        except ExprError as exc:
            pos, exact = self.text_at(step, path, exc.column)
            where = "" if exact else f" (column {exc.column} of the expression)"
            self.error(pos, f"{label}bad expression in '{path}': {exc.message}{where}", step)
            return
        for name in sorted(expression.names):
            pos, _ = self.text_at(step, path, expression.positions[name])
            self.reads.append((name, pos, label))

    def check_nested_expressions(self, step: Step, label: str) -> None:
        for type_name, pattern in EXPRESSION_PATHS:
            if step.type != type_name:
                continue
            for path, _container, item_key, value in iter_path_values(step.params, pattern):
                self.check_expression(step, path, value, label)
                if type_name == "set" and isinstance(item_key, str):
                    if _VAR_NAME.match(item_key):
                        self.writes.add(item_key)
                    else:
                        self.error(self.key_at(step, path), f"{label}'{item_key}' is not a valid "
                                                            f"variable name", step)

    def check_prompt(self, step: Step, path: str, value: Any, label: str,
                     languages: tuple[str, ...]) -> None:
        where = self.value_at(step, path)
        if isinstance(value, str):
            self.check_template(step, path, value, label)
            return
        if isinstance(value, list) and value and not languages:
            for index, item in enumerate(value):   # prompts played in order
                self.check_prompt(step, f"{path}.{index}", item, label, languages)
            return
        if not isinstance(value, dict) or not value:
            self.error(where, f"{label}'{path}' must be text to speak, a mapping like "
                              f"{{file: welcome}}, {{sound: beep}}, {{text: ...}} or {{en: ..., zh: ...}}, "
                              f"or a list of those, not {_describe(value)}", step)
            return
        forms = [k for k in value if k in _PROMPT_FORMS]
        others = [k for k in value if k not in _PROMPT_FORMS]
        if forms:
            if len(value) > 1:
                self.error(where, f"{label}'{path}' must have exactly one of text, file or sound "
                                  f"(found {', '.join(map(str, value))})", step)
                return
            form = forms[0]
            item = value[form]
            item_path = f"{path}.{form}"
            if not isinstance(item, str) or not item:
                self.error(self.value_at(step, item_path), f"{label}'{item_path}' must be text, "
                                                           f"not {_describe(item)}", step)
            elif form == "text":
                self.check_template(step, item_path, item, label)
            elif form == "file":
                self.check_prompt_file(step, item_path, item, label, languages)
            elif not _SOUND_NAME.match(item) or ".." in item:
                self.error(self.value_at(step, item_path), f"{label}'{item_path}': '{item}' is "
                                                           f"not a sound name", step)
            return
        if languages:
            self.error(where, f"{label}'{path}': a per-language prompt cannot hold other languages", step)
            return
        for lang in others:
            lang_path = f"{path}.{lang}"
            if not _LANGUAGE.match(str(lang)):
                self.error(self.key_at(step, lang_path),
                           f"{label}unknown key '{lang}' in prompt '{path}'"
                           f"{did_you_mean(str(lang), _PROMPT_FORMS)}: use text, file, sound or a "
                           f"language code like en", step)
                continue
            self.check_prompt(step, lang_path, value[lang], label, languages=(lang,))

    def check_prompt_file(self, step: Step, path: str, name: str, label: str,
                          languages: tuple[str, ...]) -> None:
        where = self.value_at(step, path)
        if not _SOUND_NAME.match(name) or ".." in name.split("/"):
            self.error(where, f"{label}'{path}': '{name}' is not a prompt file name "
                              f"(letters, digits, _ - and / for subfolders)", step)
            return
        stem, dot, ext = name.rpartition(".")
        if dot and f".{ext.lower()}" in PROMPT_EXTENSIONS:
            self.error(where, f"{label}'{path}': write the prompt name without its extension: "
                              f"'{stem}'", step)
            return
        sounds = self.flows_dir / "sounds"
        if find_prompt_file(sounds, name, (*languages, self.flow.language)) is None:
            shown = _display_path(sounds / name)
            self.error(where, f"{label}prompt file '{name}' not found: no {shown}"
                              f".{{{','.join(e[1:] for e in PROMPT_EXTENSIONS)}}}", step)

    def check_subflow(self, step: Step, key: str, name: str, label: str) -> None:
        where = self.value_at(step, key)
        if not _FLOW_NAME.match(name):
            self.error(where, f"{label}'{key}': '{name}' is not a flow name (a file name "
                              f"without .yaml)", step)
            return
        known = self.known_flows
        if known is None:
            known = {p.stem for p in self.flows_dir.glob("*.yaml")} if self.flows_dir.is_dir() else set()
        if name not in known:
            shown = _display_path(self.flows_dir / f"{name}.yaml")
            self.error(where, f"{label}flow '{name}' not found (no {shown})"
                              f"{did_you_mean(name, known)}", step)

    # ------------------------------------------------------------ graph

    def check_graph(self) -> None:
        steps = self.flow.steps
        graph: dict[str, list[str]] = {name: [] for name in steps}
        for step in steps.values():
            step_type = self.registry.get(step.type)
            for key, target in _step_edges(step, step_type, steps):
                if target in steps:
                    graph[step.name].append(target)
                elif step_type is not None:
                    self.error(self.value_at(step, key),
                               f"step '{step.name}': '{key}' goes to step '{target}', which does not "
                               f"exist{did_you_mean(target, steps)}", step)
        self.check_reachable(graph)
        self.check_loops(graph)

    def check_reachable(self, graph: dict[str, list[str]]) -> None:
        if self.flow.start not in graph:
            return   # already reported; everything would look unreachable
        roots = [n for n in (self.flow.start, self.flow.on_error) if n in graph]
        seen = set(roots)
        todo = deque(roots)
        while todo:
            for nxt in graph[todo.popleft()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        for name, step in self.flow.steps.items():
            if name not in seen:
                self.error(step.pos, f"step '{name}' is unreachable: no step leads to it from the "
                                     f"start step '{self.flow.start}'; reference it (next, choices, "
                                     f"...) or delete it")

    def check_loops(self, graph: dict[str, list[str]]) -> None:
        """A cycle made only of steps that never wait for the caller spins forever."""
        def silent(name: str) -> bool:
            step_type = self.registry.get(self.flow.steps[name].type)
            return step_type is not None and not step_type.waits_for_input

        silent_graph = {name: [t for t in targets if silent(t)]
                        for name, targets in graph.items() if silent(name)}
        order = {name: i for i, name in enumerate(self.flow.steps)}
        for component in _strongly_connected(silent_graph):
            first = min(component, key=order.__getitem__)
            if len(component) == 1 and first not in silent_graph[first]:
                continue
            cycle = _cycle_through(first, silent_graph, set(component))
            self.error(self.flow.steps[first].pos,
                       f"infinite loop with no caller input: {' -> '.join(cycle)}")

    def check_subflow_loops(self) -> None:
        """A chain of subflow calls back to this flow with no caller input on the way.

        A subflow call nests (the caller continues at ``next`` when the subflow ends),
        so such a chain never ends: every call fails once the nesting limit is reached.
        Only steps reached from each flow's start before any step that waits for the
        caller count; a step after a subflow's return is not followed (no false alarm
        when the subflow itself waits for the caller).
        """
        own = Path(self.flow.path).stem
        reported: set[str] = set()
        for step, name in _silent_subflow_calls(self.flow, self.registry):
            if name in reported or not self.subflow_known(name):
                continue
            chain = self.chain_back(name, own)
            if chain is None:
                continue
            reported.add(name)
            self.error(self.value_at(step, "flow"),
                       f"step '{step.name}': subflow loop with no caller input: "
                       f"{' -> '.join([own, *chain])}; each call nests one level deeper until "
                       f"the call fails: let the caller press a key (a menu...) before calling "
                       f"back, or use 'goto' inside one flow", step)

    def subflow_known(self, name: str) -> bool:
        if not _FLOW_NAME.match(name):
            return False
        return self.known_flows is None or name in self.known_flows

    def chain_back(self, first: str, own: str) -> list[str] | None:
        """Flow names from ``first`` to ``own`` following silent subflow calls, or None."""
        came_from: dict[str, str | None] = {first: None}
        todo = deque([first])
        while todo:
            name = todo.popleft()
            if name == own:
                chain = [name]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])   # type: ignore[arg-type]
                return list(reversed(chain))
            for nxt in _silent_calls_of_file(self.flows_dir / f"{name}.yaml", self.registry):
                if nxt not in came_from and self.subflow_known(nxt):
                    came_from[nxt] = name
                    todo.append(nxt)
        return None

    # ------------------------------------------------------------ variables

    def check_reads(self) -> None:
        reported: set[tuple[str, str]] = set()
        candidates = sorted(self.writes)
        for name, pos, label in self.reads:
            if name in self.writes or name.startswith(_ARG_PREFIX) or (label, name) in reported:
                continue
            reported.add((label, name))
            self.error(pos, f"{label}variable '{name}' is never set: not built in, not in "
                            f"'variables:', and no step writes it{did_you_mean(name, candidates)}")


def _finite(value: float) -> bool:
    """A number a timer can use: not nan, not infinite, not an int past float range."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _silent_subflow_calls(flow: Flow, registry: Mapping[str, StepType]) -> list[tuple[Step, str]]:
    """(step, flow name) of each subflow call reached from the start before any input."""
    steps = flow.steps
    if flow.start not in steps:
        return []
    calls: list[tuple[Step, str]] = []
    seen = {flow.start}
    todo = deque([flow.start])
    while todo:
        step = steps[todo.popleft()]
        step_type = registry.get(step.type)
        if step_type is None or step_type.waits_for_input:
            continue
        called = [step.params.get(key) for key, spec in step_type.keys.items() if spec.kind == "flow"]
        called = [name for name in called if isinstance(name, str)]
        if called:
            calls.extend((step, name) for name in called)
            continue   # where a subflow returns to comes after the subflow: not followed
        for _key, target in _step_edges(step, step_type, steps):
            if target in steps and target not in seen:
                seen.add(target)
                todo.append(target)
    return calls


_SILENT_CALLS_CACHE: dict[tuple, tuple[str, ...]] = {}


def _silent_calls_of_file(path: Path, registry: Mapping[str, StepType]) -> tuple[str, ...]:
    """The flows the flow file at ``path`` calls before any input (cached per file version)."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    key = (str(path), st.st_mtime_ns, st.st_size, id(registry))
    cached = _SILENT_CALLS_CACHE.get(key)
    if cached is None:
        flow = read_flow_unchecked(path, registry=registry)
        cached = tuple(name for _step, name in _silent_subflow_calls(flow, registry)) if flow else ()
        if len(_SILENT_CALLS_CACHE) > 1024:
            _SILENT_CALLS_CACHE.clear()
        _SILENT_CALLS_CACHE[key] = cached
    return cached


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _strongly_connected(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a flow of thousands of steps must not recurse)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if child < len(targets):
                work.append((node, child + 1))
                nxt = targets[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _cycle_through(start: str, graph: Mapping[str, list[str]], members: set[str]) -> list[str]:
    """Shortest cycle start -> ... -> start inside one strongly connected component."""
    came_from: dict[str, str] = {}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        for nxt in graph[node]:
            if nxt not in members:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt not in came_from:
                came_from[nxt] = node
                todo.append(nxt)
    return [start, start]  # pragma: no cover - a component always has a cycle


_SIMPLE_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "text"),
    "text": (lambda v: isinstance(v, str), "text"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number (seconds)"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "digit": (lambda v: isinstance(v, str) and len(v) == 1 and v in _DTMF, "one phone key (0-9 * #)"),
    "digits": (lambda v: isinstance(v, str) and bool(v) and set(v) <= _DTMF, "phone keys (0-9 * #)"),
    "target": (lambda v: isinstance(v, str), "the name of a step"),
    "digit_targets": (lambda v: isinstance(v, dict), "a mapping of phone key -> step name"),
    "var": (lambda v: isinstance(v, str) and bool(_VAR_NAME.match(v)),
            "a variable name (letters, digits and _, not starting with a digit)"),
    "flow": (lambda v: isinstance(v, str), "the name of a flow"),
    "queue": (lambda v: isinstance(v, str) and bool(_QUEUE_NAME.match(v)),
              "a queue name (letters, digits, _ . -)"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "map": (lambda v: isinstance(v, dict), "a mapping"),
    "int_or_map": (lambda v: isinstance(v, dict) or (isinstance(v, int) and not isinstance(v, bool)),
                   "a whole number or a mapping"),
}
