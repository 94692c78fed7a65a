"""The flow model every part of Hotline shares: flows, steps, source positions, problems.

The loader (``ivr.loader``) builds these from YAML, the validator (``ivr.validator``)
checks them against each step type's declared keys, and the engine (``ivr.engine``)
runs them. A step type is a class registered by its ``type`` name; it declares its
keys (so the validator can check a file without running it) and its behaviour (a
generator that yields commands and receives results, so the engine stays sans-I/O).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generator, Iterable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from ivr.commands import Command, Result
    from ivr.engine import StepContext

__all__ = [
    "SourcePos", "FlowProblem", "FlowError", "Key", "KEY_KINDS", "Step", "Flow",
    "StepType", "STEP_TYPES", "register_step_type", "StepRun",
]


@dataclass(frozen=True)
class SourcePos:
    """Where something stands in a flow file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class FlowProblem:
    """One thing wrong with a flow file, printed as ``file:line:col: message``."""

    pos: SourcePos
    message: str
    severity: str = "error"  # "error" refuses the flow; "warning" is printed only

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.pos}: {prefix}{self.message}"


class FlowError(Exception):
    """A flow file was refused; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[FlowProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# Key kinds a step type may declare. The validator knows how to check each one:
#   str      plain string                       int / float / bool   scalar of that type
#   text     string that may use ${var}         digit   one DTMF key 0-9 * #
#   digits   string of DTMF keys                prompt  what to play: text (TTS), or a
#            mapping {text|file: ..., per-language {en: ..., zh: ...}}
#   target   a step name in this flow           digit_targets  mapping DTMF key -> step name
#   expr     an expression (ivr.expr)           var     a variable name the step WRITES
#   flow     name of another flow file          queue   an Asterisk queue name
#   list / map   structured; the step type checks it in ``check()``
#   int_or_map   one whole number, or a mapping (queue priority: 5, or per tier)
KEY_KINDS = frozenset({
    "str", "int", "float", "bool", "text", "digit", "digits", "prompt", "target",
    "digit_targets", "expr", "var", "flow", "queue", "list", "map", "int_or_map",
})


@dataclass(frozen=True)
class Key:
    """One documented key of a step type."""

    kind: str
    required: bool = False
    default: Any = None
    doc: str = ""
    choices: tuple = ()

    def __post_init__(self) -> None:
        if self.kind not in KEY_KINDS:
            raise ValueError(f"unknown key kind {self.kind!r}")


@dataclass
class Step:
    """One named step of a flow, with its keys (defaults applied) and where it was written."""

    name: str
    type: str
    params: dict[str, Any]
    pos: SourcePos
    key_pos: dict[str, SourcePos] = field(default_factory=dict)

    def where(self, key: str | None = None) -> SourcePos:
        """Position of ``key`` in the file, or of the step itself."""
        return self.key_pos.get(key, self.pos) if key else self.pos


@dataclass
class Flow:
    """A loaded, validated flow file.

    ``version`` is a short hash of the file's bytes: stored with every IVR session so a
    report can tell which version of a flow a caller went through.
    """

    name: str
    path: str
    version: str
    start: str
    steps: dict[str, Step]
    on_error: str | None = None        # step name; None = the built-in operator fallback
    operator_queue: str = "operator"   # where the built-in fallback sends the caller
    language: str = "en"
    voice: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)  # initial values
    description: str = ""
    max_steps: int = 200               # guard against loops: per call
    pos: SourcePos | None = None


StepRun = Generator["Command", "Result", "str | None"]


class StepType:
    """Base class of a step type. Subclass, set ``type_name`` and ``keys``, register.

    ``run`` is a generator: it yields ``Command`` objects, receives the ``Result`` of
    each, and returns the name of the next step (``None`` ends the flow). It never
    does I/O itself: database work is a yielded ``ServiceCall``.
    """

    type_name: ClassVar[str] = ""
    keys: ClassVar[Mapping[str, Key]] = {}
    doc: ClassVar[str] = ""
    waits_for_input: ClassVar[bool] = False  # plays/reads from the caller (loop check)
    terminal: ClassVar[bool] = False          # ends the flow (hangup, queue...)

    def targets(self, step: Step) -> list[tuple[str, str]]:
        """Outgoing edges as (key, step name); default: every target/digit_targets key."""
        out: list[tuple[str, str]] = []
        for key, spec in self.keys.items():
            value = step.params.get(key)
            if value is None:
                continue
            if spec.kind == "target":
                out.append((key, value))
            elif spec.kind == "digit_targets":
                out.extend((f"{key}.{digit}", tgt) for digit, tgt in value.items())
        return out

    def writes(self, step: Step) -> set[str]:
        """Variables this step sets (default: every ``var`` key's value)."""
        return {step.params[k] for k, spec in self.keys.items()
                if spec.kind == "var" and step.params.get(k)}

    def reads(self, step: Step) -> set[str]:
        """Variables this step reads (the validator checks they are defined somewhere)."""
        return set()

    def check(self, step: Step) -> list[FlowProblem]:
        """Step-specific checks beyond key kinds (e.g. min_digits <= max_digits)."""
        return []

    def run(self, step: Step, ctx: "StepContext") -> StepRun:  # pragma: no cover
        raise NotImplementedError
        yield  # make it a generator


STEP_TYPES: dict[str, StepType] = {}


def register_step_type(cls: type[StepType]) -> type[StepType]:
    """Class decorator: make a step type known to the loader, validator and engine."""
    if not cls.type_name:
        raise ValueError(f"{cls.__name__} has no type_name")
    STEP_TYPES[cls.type_name] = cls()
    return cls
