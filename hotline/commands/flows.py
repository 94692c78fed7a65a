"""``hotline flows check|graph``: find every problem in flow files before a caller does,
and draw a flow so a reviewer can see where each key press leads.

``check`` prints compiler-style lines (``flows/main.yaml:14:7: message``) that editors
and CI understand, and exits 1 on any error; it never shows a traceback for bad input.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping

import click

from ivr.flow import Flow, FlowProblem, StepType

__all__ = ["flows", "render_dot", "render_mermaid"]

EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def _registry(ctx: click.Context) -> Mapping[str, StepType]:
    """The step types: injected by tests through ``obj={'registry': ...}``, else the real ones."""
    injected = (ctx.obj or {}).get("registry") if isinstance(ctx.obj, dict) else None
    if injected is not None:
        return injected
    try:
        importlib.import_module("ivr.steps")
    except ModuleNotFoundError as exc:
        if exc.name not in ("ivr.steps",):
            raise
        click.echo("hotline flows: the step types (ivr.steps) are not installed", err=True)
        ctx.exit(EXIT_USAGE)
    from ivr.flow import STEP_TYPES
    return STEP_TYPES


def _display(path: Path) -> str:
    """``path`` relative to the current directory when it is inside it (flows/main.yaml)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@click.group()
def flows() -> None:
    """Check and graph IVR flow files."""


@flows.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Warnings fail the check too.")
@click.pass_context
def check(ctx: click.Context, paths: tuple[Path, ...], strict: bool) -> None:
    """Check flow files (default: flows/); a PATH may be a file or a directory.

    Prints every problem as file:line:col: message, then a summary. Exit status:
    0 clean, 1 errors (or warnings with --strict), 2 a path could not be read.
    """
    from ivr.loader import check_flow_file

    registry = _registry(ctx)
    files: list[Path] = []
    missing = False
    for path in paths or (Path("flows"),):
        if path.is_dir():
            found = sorted(p for p in path.glob("*.yaml") if p.is_file())
            if not found:
                click.echo(f"{_display(path)}: no .yaml flow files in this directory", err=True)
                missing = True
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            click.echo(f"{path}: no such file or directory", err=True)
            missing = True

    problems: list[FlowProblem] = []
    for path in files:
        _, found = check_flow_file(_display(path), registry=registry, flows_dir=path.parent)
        problems.extend(found)
    for problem in problems:
        click.echo(str(problem))
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    click.echo(f"{_plural(len(files), 'file')}, {_plural(errors, 'error')}, "
               f"{_plural(warnings, 'warning')}")
    if missing:
        ctx.exit(EXIT_USAGE)
    if errors or (strict and warnings):
        ctx.exit(EXIT_PROBLEMS)


@flows.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot",
              show_default=True, help="Graphviz DOT or Mermaid.")
@click.pass_context
def graph(ctx: click.Context, file: Path, fmt: str) -> None:
    """Draw FILE's steps and where each key leads (pipe DOT into `dot -Tsvg`).

    Problems go to stderr; a flow with errors is still drawn, and the exit status is 1.
    """
    from ivr.loader import check_flow_file

    registry = _registry(ctx)
    if not file.is_file():
        click.echo(f"{file}: no such file", err=True)
        ctx.exit(EXIT_USAGE)
    flow, problems = check_flow_file(_display(file), registry=registry, flows_dir=file.parent)
    for problem in problems:
        click.echo(str(problem), err=True)
    if flow is None:
        ctx.exit(EXIT_PROBLEMS)
    render = render_dot if fmt == "dot" else render_mermaid
    click.echo(render(flow, registry), nl=False)
    if any(p.severity == "error" for p in problems):
        ctx.exit(EXIT_PROBLEMS)


# ---------------------------------------------------------------- rendering

def _missing_targets(flow: Flow, registry: Mapping[str, StepType]) -> list[str]:
    """Steps that edges go to but that do not exist: drawn in red so they stand out."""
    from ivr.validator import flow_edges

    return sorted({target for _, _, target in flow_edges(flow, registry) if target not in flow.steps})


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot_quote(text: str) -> str:
    return f'"{_dot_escape(text)}"'


def render_dot(flow: Flow, registry: Mapping[str, StepType]) -> str:
    """Graphviz DOT: one box per step (``name\\n(type)``), edges labelled by key."""
    from ivr.validator import flow_edges

    lines = [f"digraph {_dot_quote(flow.name)} {{", "  rankdir=LR;",
             '  node [shape=box, style=rounded, fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];',
             '  "__start__" [label="start", shape=circle];']
    for step in flow.steps.values():
        step_type = registry.get(step.type)
        extra = ", peripheries=2" if step_type is not None and step_type.terminal else ""
        label = f'"{_dot_escape(step.name)}\\n({_dot_escape(step.type or "?")})"'
        lines.append(f"  {_dot_quote(step.name)} [label={label}{extra}];")
    if flow.start in flow.steps:
        lines.append(f'  "__start__" -> {_dot_quote(flow.start)};')
    for missing in _missing_targets(flow, registry):
        lines.append(f'  {_dot_quote(missing)} [label="{_dot_escape(missing)}\\n(missing)", color=red];')
    for source, key, target in flow_edges(flow, registry):
        lines.append(f"  {_dot_quote(source)} -> {_dot_quote(target)} [label={_dot_quote(key)}];")
    if flow.on_error in flow.steps:
        lines.append('  "__error__" [label="any error", shape=octagon];')
        lines.append(f'  "__error__" -> {_dot_quote(flow.on_error)} [label="on_error", style=dashed];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Mermaid reads ``#`` as the start of an entity and ``"`` as the end of a label."""
    return text.replace("#", "#35;").replace('"', "#quot;")


def render_mermaid(flow: Flow, registry: Mapping[str, StepType]) -> str:
    """Mermaid flowchart; node ids are prefixed (``end`` is a Mermaid keyword)."""
    from ivr.validator import flow_edges

    def node_id(name: str) -> str:
        return f"s_{name}"

    lines = ["flowchart LR", "  start__((start))"]
    for step in flow.steps.values():
        step_type = registry.get(step.type)
        label = f"{_mermaid_text(step.name)}<br/>({_mermaid_text(step.type or '?')})"
        if step_type is not None and step_type.terminal:
            lines.append(f'  {node_id(step.name)}(["{label}"])')
        else:
            lines.append(f'  {node_id(step.name)}["{label}"]')
    if flow.start in flow.steps:
        lines.append(f"  start__ --> {node_id(flow.start)}")
    for missing in _missing_targets(flow, registry):
        lines.append(f'  {node_id(missing)}["{_mermaid_text(missing)}<br/>(missing)"]')
    for source, key, target in flow_edges(flow, registry):
        lines.append(f'  {node_id(source)} -->|"{_mermaid_text(key)}"| {node_id(target)}')
    if flow.on_error in flow.steps:
        lines.append("  error__{{any error}}")
        lines.append(f'  error__ -.->|"on_error"| {node_id(flow.on_error)}')
    return "\n".join(lines) + "\n"
