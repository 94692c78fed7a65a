"""Read flow files into ``ivr.flow`` objects, remembering where every key was written.

An administrator fixing a flow needs ``flows/main.yaml:14:7: ...``, not a traceback,
so the loader works on ruamel.yaml's *node* tree (``compose``) rather than on loaded
objects: every key and value node carries its line and column, and a mapping node
still holds duplicate keys (a loaded dict has already dropped one of them). The
loader builds plain Python values from the nodes, records positions, applies each
key's default, then runs the validator; every problem is collected, none raised early.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.flow import STEP_TYPES, Flow, FlowError, FlowProblem, Key, SourcePos, Step, StepType

__all__ = [
    "LoadedFlow", "LoadedStep", "load_flow", "parse_flow_text", "check_flow_file",
    "check_flow_text", "FILE_KEYS", "COMMON_STEP_KEYS", "EXPRESSION_PATHS", "STEP_NAME",
    "step_keys", "did_you_mean", "iter_path_values", "MAX_FILE_BYTES", "file_size_problem",
    "read_flow_unchecked",
]

MAX_FILE_BYTES = 1_000_000     # a flow is a page of YAML; refuse anything absurd
_MAX_NODES = 100_000           # guards against alias bombs ("billion laughs")
_MAX_DEPTH = 60                # and self-referencing aliases

STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Top-level keys of a flow file (docs/flow-spec.md, "File shape").
FILE_KEYS: dict[str, str] = {
    "flow": "name of the flow (defaults to the file name)",
    "description": "what the flow is for",
    "start": "first step (defaults to the first step written)",
    "language": "default prompt language",
    "voice": "text-to-speech voice",
    "operator_queue": "queue of the built-in error fallback",
    "on_error": "step run on any flow error",
    "max_steps": "steps per call before the flow is stopped",
    "variables": "initial values of flow variables",
    "steps": "the steps, by name",
}

_TEXT_FILE_KEYS = ("flow", "description", "start", "language", "voice", "operator_queue", "on_error")

# Keys every step accepts whatever its type.
COMMON_STEP_KEYS: dict[str, Key] = {
    "type": Key("str", required=True, doc="the step type"),
    "description": Key("str", doc="what the step is for"),
    "log": Key("text", doc="VERBOSE line written to the Asterisk CLI"),
}

# Expressions nested inside structured keys: (step type, path pattern; "*" = any key/index).
EXPRESSION_PATHS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("branch", ("conditions", "*", "if")),
    ("set", ("vars", "*")),
)

# Key kinds whose YAML value is text even when it looks like a number or a boolean:
# `confirm_digit: 1`, `destination: 1001`, `if: true` keep the characters written.
_TEXT_KINDS = frozenset({"str", "text", "digit", "digits", "target", "expr", "var", "flow", "queue", "prompt"})


def step_keys(step_type: StepType) -> dict[str, Key]:
    """Every key a step of this type accepts: the common ones plus its own."""
    return {**COMMON_STEP_KEYS, **step_type.keys}


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a candidate is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class LoadedStep(Step):
    """A step read from a file, with where each value (not just each key) was written.

    ``key_pos`` and ``value_pos`` are keyed by path: ``"timeout"`` for a step key,
    ``"choices.1"`` or ``"conditions.0.if"`` for nested ones. ``text_pos`` holds the
    position of the first character of one-line scalars whose source text is their
    value, so an error at column N of an expression can point at the exact column.
    """

    value_pos: dict[str, SourcePos] = field(default_factory=dict)
    text_pos: dict[str, SourcePos] = field(default_factory=dict)


@dataclass
class LoadedFlow(Flow):
    """A flow read from a file, with positions of its top-level keys and its warnings."""

    key_pos: dict[str, SourcePos] = field(default_factory=dict)
    value_pos: dict[str, SourcePos] = field(default_factory=dict)
    text_pos: dict[str, SourcePos] = field(default_factory=dict)
    warnings: list[FlowProblem] = field(default_factory=list)

    def where(self, key: str | None = None) -> SourcePos | None:
        return self.key_pos.get(key, self.pos) if key else self.pos


@dataclass
class _Positions:
    key: dict[str, SourcePos] = field(default_factory=dict)
    value: dict[str, SourcePos] = field(default_factory=dict)
    text: dict[str, SourcePos] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)   # path -> source text of plain non-str scalars


class _TooComplex(Exception):
    pass


class _Builder:
    """Turns ruamel nodes into plain values (dict/list/str/int/float/bool/None)."""

    def __init__(self, filename: str, text: str, yaml: YAML):
        self.filename = filename
        self.text = text
        self.constructor = yaml.constructor
        self.problems: list[FlowProblem] = []
        self.nodes = 0

    def pos(self, node: Node) -> SourcePos:
        mark = node.start_mark
        return SourcePos(self.filename, mark.line + 1, mark.column + 1)

    def problem(self, node: Node, message: str) -> None:
        self.problems.append(FlowProblem(self.pos(node), message))

    def build(self, node: Node, path: str, positions: _Positions, label: str,
              depth: int = 0) -> Any:
        """The value of ``node``; records positions of it and everything inside it."""
        self.nodes += 1
        if self.nodes > _MAX_NODES or depth > _MAX_DEPTH:
            raise _TooComplex()
        if path:
            positions.value[path] = self.pos(node)
        if isinstance(node, ScalarNode):
            return self.scalar(node, path, positions)
        if isinstance(node, SequenceNode):
            out = []
            for index, item in enumerate(node.value):
                item_path = f"{path}.{index}" if path else str(index)
                positions.key.setdefault(item_path, self.pos(item))
                out.append(self.build(item, item_path, positions, label, depth + 1))
            return out
        if isinstance(node, MappingNode):
            return self.mapping(node, path, positions, label, depth)
        self.problem(node, f"{label}unsupported YAML value")  # pragma: no cover
        return None

    def mapping(self, node: MappingNode, path: str, positions: _Positions, label: str,
                depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, SourcePos] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, f"{label}a mapping key must be a plain name, not a "
                                       f"{'list' if isinstance(key_node, SequenceNode) else 'mapping'}")
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(key_node, f"{label}YAML merge keys ('<<') are not supported in flows")
                continue
            key = key_node.value   # the characters written: `1:` and `"1":` are both "1"
            key_pos = self.pos(key_node)
            key_path = f"{path}.{key}" if path else key
            if key in first_seen:
                self.problems.append(FlowProblem(key_pos, label + _twice(key, path, first_seen[key])))
                continue
            first_seen[key] = key_pos
            positions.key[key_path] = key_pos
            out[key] = self.build(value_node, key_path, positions, label, depth + 1)
            if isinstance(value_node, ScalarNode) and value_node.value == "" and value_node.style is None:
                positions.value[key_path] = key_pos   # `key:` with nothing after: point at the key
        return out

    def scalar(self, node: ScalarNode, path: str, positions: _Positions) -> Any:
        start, end = node.start_mark, node.end_mark
        source = self.text[start.index:end.index] if end is not None else ""
        if "\n" not in source and node.style in (None, "'", '"'):
            quote = 0 if node.style is None else 1
            if source[quote:len(source) - quote] == node.value and path:
                positions.text[path] = SourcePos(self.filename, start.line + 1, start.column + 1 + quote)
        if node.tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"):
            return node.value   # dates stay text: holidays are written `2026-12-25`
        if node.tag == "tag:yaml.org,2002:null" and node.style is not None:
            return node.value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (YAMLError, ValueError, TypeError, AttributeError) as exc:
            reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.problem(node, f"cannot read value {node.value!r}: {reason}")
            return node.value
        if path and node.style is None and not isinstance(value, str) and value is not None:
            positions.raw[path] = node.value
        return value


def _twice(key: str, path: str, first: SourcePos) -> str:
    where = f"line {first.line}:{first.col}"
    if not path:
        return f"key '{key}' appears twice (first at {where})"
    if re.fullmatch(r"[0-9*#]", key):
        return (f"digit '{key}' appears twice in '{path}' "
                f"(first at {where}; {key}: and \"{key}\": are the same key)")
    return f"key '{key}' appears twice in '{path}' (first at {where})"


def file_size_problem(filename: str, size: int) -> FlowProblem | None:
    """The problem of a flow file of ``size`` bytes, if it is too large to read at all."""
    if size <= MAX_FILE_BYTES:
        return None
    return FlowProblem(SourcePos(filename, 1, 1), f"file is too large ({size} bytes, at most {MAX_FILE_BYTES})")


def _too_deep_problem(filename: str, text: str) -> FlowProblem:
    """Where a document too deeply nested for ruamel's (recursive) composer goes too deep.

    The composer builds nodes recursively and runs out of Python stack past a few
    hundred levels; the parser underneath is a state machine, so its events can be
    counted at any depth to point at the first collection past ``_MAX_DEPTH``.
    """
    message = f"file is too complex (nested more than {_MAX_DEPTH} levels deep)"
    depth = 0
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            kind = type(event).__name__
            if kind in ("MappingStartEvent", "SequenceStartEvent"):
                depth += 1
                if depth > _MAX_DEPTH and event.start_mark is not None:
                    mark = event.start_mark
                    return FlowProblem(SourcePos(filename, mark.line + 1, mark.column + 1), message)
            elif kind in ("MappingEndEvent", "SequenceEndEvent"):
                depth -= 1
    except (YAMLError, RecursionError, ValueError):
        pass
    return FlowProblem(SourcePos(filename, 1, 1), message)


def _yaml_problem(filename: str, exc: MarkedYAMLError) -> FlowProblem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        message = f"{exc.problem} ({exc.context}"
        if exc.context_mark is not None:
            message += f" started at line {exc.context_mark.line + 1}:{exc.context_mark.column + 1}"
        message += ")"
    return FlowProblem(SourcePos(filename, line, col), f"YAML syntax error: {message}")


def iter_path_values(params: Mapping[str, Any], pattern: tuple[str, ...],
                     prefix: str = "") -> Iterator[tuple[str, Any, Any, Any]]:
    """Every (path, container, key, value) matching ``pattern`` ("*" = any key/index)."""
    if not pattern:
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(params, Mapping):
        items = list(params.items()) if head == "*" else (
            [(head, params[head])] if head in params else [])
    elif isinstance(params, list) and head == "*":
        items = list(enumerate(params))
    else:
        return
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if rest:
            yield from iter_path_values(value, rest, path)
        else:
            yield path, params, key, value


def _as_text(value: Any, path: str, positions: _Positions) -> Any:
    """A scalar written bare (``1001``, ``true``) read back as the characters written."""
    if isinstance(value, (bool, int, float)) and path in positions.raw:
        return positions.raw[path]
    return value


class _FlowReader:
    def __init__(self, filename: str, data: bytes, registry: Mapping[str, StepType]):
        self.filename = filename
        self.data = data
        self.registry = registry
        self.problems: list[FlowProblem] = []

    def at(self, line: int = 1, col: int = 1) -> SourcePos:
        return SourcePos(self.filename, line, col)

    def read(self) -> LoadedFlow | None:
        too_large = file_size_problem(self.filename, len(self.data))
        if too_large is not None:
            self.problems.append(too_large)
            return None
        try:
            text = self.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = self.data[:exc.start].count(b"\n") + 1
            col = exc.start - (self.data.rfind(b"\n", 0, exc.start) + 1) + 1
            self.problems.append(FlowProblem(self.at(line, col), "file is not UTF-8 text"))
            return None
        yaml = YAML(typ="safe", pure=True)
        try:
            root = yaml.compose(text)
        except MarkedYAMLError as exc:
            self.problems.append(_yaml_problem(self.filename, exc))
            return None
        except YAMLError as exc:
            self.problems.append(FlowProblem(self.at(), f"YAML syntax error: {exc}"))
            return None
        except RecursionError:
            # Hundreds of nested [ or { : refused like an alias bomb, never a traceback.
            self.problems.append(_too_deep_problem(self.filename, text))
            return None
        if root is None:
            self.problems.append(FlowProblem(self.at(), "empty flow file: expected a mapping with 'steps:'"))
            return None
        builder = _Builder(self.filename, text, yaml)
        if not isinstance(root, MappingNode):
            builder.problem(root, "a flow file must be a mapping of keys (flow, start, steps...)")
            self.problems.extend(builder.problems)
            return None
        try:
            return self.read_flow(root, builder)
        except _TooComplex:
            self.problems.append(FlowProblem(self.at(), "file is too complex (too deep, or aliases "
                                                         "that expand too far)"))
            return None
        finally:
            self.problems[:0] = builder.problems

    def read_flow(self, root: MappingNode, builder: _Builder) -> LoadedFlow | None:
        top = _Positions()
        steps_node: MappingNode | None = None
        values: dict[str, Any] = {}
        seen: dict[str, SourcePos] = {}
        for key_node, value_node in root.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            pos = builder.pos(key_node)
            if key is None:
                builder.problem(key_node, "a top-level key must be a plain name")
                continue
            if key in seen:
                first = seen[key]
                builder.problem(key_node, f"key '{key}' appears twice (first at line {first.line}:{first.col})")
                continue
            seen[key] = pos
            top.key[key] = pos
            if key not in FILE_KEYS:
                builder.problem(key_node, f"unknown top-level key '{key}'{did_you_mean(key, FILE_KEYS)}")
                continue
            if key == "steps":
                top.value[key] = builder.pos(value_node)
                steps_node = value_node
                continue
            values[key] = builder.build(value_node, key, top, "")
            if key in _TEXT_FILE_KEYS:
                values[key] = _as_text(values[key], key, top)

        if steps_node is None:
            self.problems.append(FlowProblem(self.at(), "flow has no 'steps:'"))
            return None
        if not isinstance(steps_node, MappingNode) or not steps_node.value:
            builder.problem(steps_node, "'steps' must be a mapping of step name -> step "
                                        "(e.g. `welcome: {type: say, prompt: Hello}`)")
            return None

        steps: dict[str, Step] = {}
        for key_node, value_node in steps_node.value:
            step = self.read_step(key_node, value_node, builder, steps)
            if step is not None:
                steps[step.name] = step
        if not steps:
            return None

        name = Path(self.filename).stem
        flow = LoadedFlow(
            name=name, path=self.filename, version=hashlib.sha256(self.data).hexdigest()[:12],
            start=next(iter(steps)), steps=steps, pos=self.at(),
            key_pos=top.key, value_pos=top.value, text_pos=top.text)
        self.apply_file_values(flow, values)
        return flow

    def apply_file_values(self, flow: LoadedFlow, values: dict[str, Any]) -> None:
        def bad(key: str, expected: str) -> None:
            self.problems.append(FlowProblem(flow.value_pos.get(key, flow.key_pos[key]),
                                             f"'{key}' must be {expected}"))

        for key in _TEXT_FILE_KEYS:
            if key not in values or values[key] is None:
                continue
            if not isinstance(values[key], str):
                bad(key, "text")
                continue
            attr = "name" if key == "flow" else key
            setattr(flow, attr, values[key])
        if "max_steps" in values:
            value = values["max_steps"]
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                flow.max_steps = value
            else:
                bad("max_steps", "a whole number above 0")
        if "variables" in values and values["variables"] is not None:
            if isinstance(values["variables"], dict):
                flow.variables = values["variables"]
            else:
                bad("variables", "a mapping of variable name -> initial value")

    def read_step(self, key_node: Node, value_node: Node, builder: _Builder,
                  steps: dict[str, Step]) -> LoadedStep | None:
        if not isinstance(key_node, ScalarNode):
            builder.problem(key_node, "a step name must be a plain name")
            return None
        name = key_node.value
        pos = builder.pos(key_node)
        if name in steps:
            first = steps[name].pos
            builder.problem(key_node, f"step '{name}' is defined twice (first at line {first.line}:{first.col})")
            return None
        if not STEP_NAME.match(name):
            builder.problem(key_node, f"step name '{name}' is not valid: use letters, digits and _, "
                                      f"not starting with a digit")
        label = f"step '{name}': "
        if not isinstance(value_node, MappingNode):
            builder.problem(value_node, f"{label}a step must be a mapping with a 'type' "
                                        f"(e.g. `type: say`)")
            return None
        positions = _Positions()
        params = builder.mapping(value_node, "", positions, label, 1)
        type_name = params.pop("type", None)
        if isinstance(type_name, (int, float, bool)):
            type_name = positions.raw.get("type", str(type_name))
        step = LoadedStep(name=name, type=type_name if isinstance(type_name, str) else "",
                          params=params, pos=pos, key_pos=positions.key,
                          value_pos=positions.value, text_pos=positions.text)
        step_type = self.registry.get(step.type)
        if step_type is not None:
            self.normalise(step, step_type, positions)
        if "type" in positions.key and not isinstance(type_name, str):
            self.problems.append(FlowProblem(positions.value["type"],
                                             f"{label}'type' must be a step type name"))
        return step

    @staticmethod
    def normalise(step: LoadedStep, step_type: StepType, positions: _Positions) -> None:
        """Text kinds keep the characters written; defaults fill the keys left out."""
        keys = step_keys(step_type)
        for key, spec in keys.items():
            if key == "type":
                continue
            if key in step.params:
                value = step.params[key]
                if spec.kind in _TEXT_KINDS:
                    step.params[key] = _as_text(value, key, positions)
                elif spec.kind == "digit_targets" and isinstance(value, dict):
                    step.params[key] = {digit: _as_text(tgt, f"{key}.{digit}", positions)
                                        for digit, tgt in value.items()}
            elif spec.default is not None:
                step.params[key] = copy.deepcopy(spec.default)
        for type_name, pattern in EXPRESSION_PATHS:
            if step.type != type_name:
                continue
            for path, container, item_key, value in list(iter_path_values(step.params, pattern)):
                container[item_key] = _as_text(value, path, positions)


def read_flow_unchecked(path: str | Path, *, registry: Mapping[str, StepType] | None = None
                        ) -> LoadedFlow | None:
    """The flow in the file at ``path`` read but not validated; None if it cannot be read.

    For checks that look across flows (a subflow calling back into its caller) without
    validating every other file again; never raises.
    """
    registry = STEP_TYPES if registry is None else registry
    try:
        if file_size_problem(str(path), os.stat(path).st_size) is not None:
            return None
        return _FlowReader(str(path), Path(path).read_bytes(), registry).read()
    except Exception:   # unreadable, or a file too odd to read: it has its own problems
        return None


def check_flow_text(text: str | bytes, filename: str, *,
                    registry: Mapping[str, StepType] | None = None,
                    flows_dir: str | Path | None = None,
                    known_flows: Iterable[str] | None = None) -> tuple[LoadedFlow | None, list[FlowProblem]]:
    """Read and validate a flow; returns it (None if unreadable) and every problem found.

    Problems include warnings; the flow is usable only when none is an error.
    """
    from ivr.validator import validate_flow   # the validator imports this module

    registry = STEP_TYPES if registry is None else registry
    data = text.encode("utf-8") if isinstance(text, str) else text
    reader = _FlowReader(filename, data, registry)
    flow = reader.read()
    problems = list(reader.problems)
    if flow is not None:
        problems.extend(validate_flow(
            flow, registry=registry,
            flows_dir=Path(flows_dir) if flows_dir is not None else Path(filename).parent,
            known_flows=known_flows))
        flow.warnings = [p for p in problems if p.severity != "error"]
    return flow, _sorted(problems)


def _sorted(problems: list[FlowProblem]) -> list[FlowProblem]:
    seen: set[FlowProblem] = set()
    unique = [p for p in problems if not (p in seen or seen.add(p))]
    return sorted(unique, key=lambda p: (p.pos.file, p.pos.line, p.pos.col))


def check_flow_file(path: str | Path, *, registry: Mapping[str, StepType] | None = None,
                    flows_dir: str | Path | None = None,
                    known_flows: Iterable[str] | None = None) -> tuple[LoadedFlow | None, list[FlowProblem]]:
    """``check_flow_text`` on a file; an unreadable file is one problem, not an exception."""
    filename = str(path)
    try:
        # Look at the size first: a 2 GB file must not be read into memory to be refused.
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, [FlowProblem(SourcePos(filename, 1, 1), "cannot read file: not a regular file")]
        too_large = file_size_problem(filename, st.st_size)
        if too_large is not None:
            return None, [too_large]
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, [FlowProblem(SourcePos(filename, 1, 1), f"cannot read file: {exc.strerror or exc}")]
    return check_flow_text(data, filename, registry=registry,
                           flows_dir=flows_dir if flows_dir is not None else Path(path).parent,
                           known_flows=known_flows)


def _raise_on_errors(flow: LoadedFlow | None, problems: list[FlowProblem]) -> LoadedFlow:
    if flow is None or any(p.severity == "error" for p in problems):
        raise FlowError(problems)
    return flow


def parse_flow_text(text: str | bytes, filename: str = "<flow>", *,
                    registry: Mapping[str, StepType] | None = None,
                    flows_dir: str | Path | None = None,
                    known_flows: Iterable[str] | None = None) -> Flow:
    """The flow in ``text``; raises ``FlowError`` carrying every problem if it has errors."""
    return _raise_on_errors(*check_flow_text(text, filename, registry=registry,
                                             flows_dir=flows_dir, known_flows=known_flows))


def load_flow(path: str | Path, *, registry: Mapping[str, StepType] | None = None,
              flows_dir: str | Path | None = None,
              known_flows: Iterable[str] | None = None) -> Flow:
    """The flow in the file at ``path``; raises ``FlowError`` carrying every problem."""
    return _raise_on_errors(*check_flow_file(path, registry=registry, flows_dir=flows_dir,
                                             known_flows=known_flows))

