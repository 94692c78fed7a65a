"""``hotline simulate FLOW``: hear a flow in the terminal before any caller does.

The real engine runs the flow; ``ivr.simulator`` plays Asterisk and the caller: it
prints what the caller would hear, reads key presses from the terminal (or from
``--digits``), decides how queues end, then shows the path taken and the variables
(masked values as ••••). Scripted runs never block: with no terminal and no digits
left, inputs time out and the caller hangs up.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ivr.simulator import (
    DEMO_CUSTOMERS, HANGUP, MASK, Pressed, ScriptedCaller, SimulatedCall,
    SimulationError, demo_services, flow_timezone, load_customers, parse_digit_groups, parse_now,
)

__all__ = ["simulate"]

_QUEUE_RESULTS = ("answered", "timeout", "full", "joinempty", "leaveempty", "ask")


def _demo_accounts_help() -> str:
    rows = [f"{c['account']} / PIN {c['pin']}  {c['tier']:<8} {c['name']}" for c in DEMO_CUSTOMERS]
    return "\b\nDemo customers (account / PIN  tier  name):\n" + "\n".join("  " + r for r in rows)


def _flow_path(flow: str) -> Path:
    path = Path(flow)
    if not path.suffix:
        path = path.with_suffix(".yaml")
        if not path.exists() and (Path("flows") / path).exists():
            path = Path("flows") / path
    if not path.exists():
        raise click.BadParameter(f"no flow file {path}", param_hint="FLOW")
    return path


def _services(customers_file: Path | None, db_url: str | None) -> Any:
    if db_url:
        try:
            from sqlalchemy.exc import ArgumentError, NoSuchModuleError

            from db.database import Database, DatabaseUnavailable
            from db.ivr_services import DatabaseServices
        except ImportError as exc:  # pragma: no cover - db is part of the tree
            raise click.UsageError(f"--db needs the database layer: {exc}") from None
        try:
            return DatabaseServices(Database(db_url))
        except NoSuchModuleError:
            scheme = db_url.partition(":")[0]
            raise click.BadParameter(f"unknown database type {scheme[:40]!r} (use e.g. "
                                     f"sqlite:///hotline.db or postgresql://user@host/db)",
                                     param_hint="--db") from None
        except (ArgumentError, DatabaseUnavailable, ValueError, ImportError) as exc:
            # DatabaseUnavailable masks the password; the others never quote the URL.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise click.BadParameter(f"cannot use this database URL: {reason}", param_hint="--db") from None
    if customers_file is not None:
        from ruamel.yaml.error import YAMLError
        try:
            return demo_services(load_customers(customers_file))
        except (OSError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--customers") from None
        except YAMLError as exc:
            raise click.BadParameter(f"{customers_file}: not valid YAML: {_yaml_reason(exc)}",
                                     param_hint="--customers") from None
        except RecursionError:
            raise click.BadParameter(f"{customers_file}: nested too deeply to read",
                                     param_hint="--customers") from None
    return demo_services()


def _yaml_reason(exc: Exception) -> str:
    """One line out of a ruamel error: the problem and where (ruamel's own text spans lines)."""
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def _masked_names(sim: SimulatedCall, flows: Any) -> set[str]:
    """Variables whose value must be shown as ••••: masked inputs and ``mask: true`` collects."""
    names = set()
    for item in getattr(sim.session, "inputs", []) or []:
        value = item.get("value") if isinstance(item, dict) else getattr(item, "value", None)
        var = item.get("var") if isinstance(item, dict) else getattr(item, "var", None)
        if value == MASK and var:
            names.add(str(var))
    for name in flows.names():
        for step in flows.get(name).steps.values():
            if step.type == "collect" and step.params.get("mask") and step.params.get("var"):
                names.add(step.params["var"])
    return names


def _show_value(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 70 else text[:67] + "..."


@click.command(epilog=_demo_accounts_help())
@click.argument("flow")
@click.option("--caller-id", default="13800000001", show_default=True, help="Caller's number (CALLERID(num)).")
@click.option("--caller-name", default="Simulated Caller", show_default=True, help="Caller's name.")
@click.option("--dnid", default="4000", show_default=True, help="Number the caller dialled.")
@click.option("--digits", default=None,
              help="Scripted keys: comma-separated groups, one per input; an empty group is a "
                   f"timeout, '{HANGUP}' hangs up. E.g. 1,100001#,1234#,1")
@click.option("--lang", "language", default=None, help="Caller's starting language (en, zh).")
@click.option("--now", default=None,
              help="Time of the call, e.g. 2026-11-24T10:00 (in the time zone of the flow's hours "
                   "step) or 2026-11-24T10:00+08:00. Default: now.")
@click.option("--queue-result", type=click.Choice(_QUEUE_RESULTS), default=None,
              help="How a queue ends: answered by an agent, or left without one. "
                   "Default: ask on a terminal, else answered.")
@click.option("--dial-result", default="ANSWER", show_default=True,
              help="DIALSTATUS of transfers: ANSWER, BUSY, NOANSWER, CHANUNAVAIL.")
@click.option("--customers", "customers_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Customers from a YAML/JSON list instead of the demo ones.")
@click.option("--db", "db_url", default=None, help="Use this database (URL) instead of demo customers.")
@click.option("--max-timeouts", default=3, show_default=True,
              help="With no terminal and no digits left: timeouts before the caller hangs up.")
def simulate(flow: str, caller_id: str, caller_name: str, dnid: str, digits: str | None,
             language: str | None, now: str | None, queue_result: str | None, dial_result: str,
             customers_file: Path | None, db_url: str | None, max_timeouts: int) -> None:
    """Run FLOW (a file such as flows/main.yaml) in the terminal, as a caller would hear it."""
    import ivr.steps  # noqa: F401  - registers the step types
    from ivr.library import FlowLibrary

    path = _flow_path(flow)
    try:
        groups = parse_digit_groups(digits)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--digits") from None
    library = FlowLibrary(path.parent)
    if path.stem not in library:
        problems = [str(p) for p in library.problems if Path(p.pos.file).stem == path.stem]
        click.echo(f"{path}: cannot run this flow:", err=True)
        for line in problems or [f"no flow {path.stem!r} in {path.parent}"]:
            click.echo(f"  {line}", err=True)
        raise SystemExit(1)
    the_flow = library.get(path.stem)
    try:
        epoch = parse_now(now, flow_timezone(the_flow, library))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--now") from None
    services = _services(customers_file, db_url)

    interactive = sys.stdin.isatty()
    script = ScriptedCaller(groups=list(groups), max_timeouts=max_timeouts)
    if queue_result is None:
        queue_result = "ask" if interactive else "answered"

    try:
        sim = SimulatedCall(the_flow, services=services, flows=library, caller_id=caller_id,
                            caller_name=caller_name, dnid=dnid, language=language, now=epoch)
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"📞 {caller_id} calls {the_flow.name} ({path}, version {the_flow.version})")
    shown = 0
    typed_on_screen = False   # keys typed at the terminal are on screen already

    def show_new() -> None:
        nonlocal shown
        for item in sim.transcript[shown:]:
            if not (typed_on_screen and isinstance(item, Pressed) and not item.hangup):
                click.echo(f"   {item}")
        shown = len(sim.transcript)

    try:
        while not sim.ended:
            show_new()
            kind = sim.pending_kind
            if kind == "input":
                typed_on_screen = not (script.groups or not interactive)
                group = _ask_keys() if typed_on_screen else script.next_input()
                if group == HANGUP:
                    sim.hangup()
                else:
                    sim.press(group)
            elif kind == "queue":
                typed_on_screen = False
                result = queue_result
                if result == "ask":
                    queue, prio = sim.pending_queue()
                    answer = click.prompt(f"   📞 in queue {queue}: agent answers (a) or the caller "
                                          "leaves without an agent (t)?", default="a",
                                          type=click.Choice(["a", "t"]))
                    result = "answered" if answer == "a" else "timeout"
                sim.end_queue(result)
            elif kind == "dial":
                sim.end_dial(dial_result)
        show_new()
    except SimulationError as exc:
        show_new()
        raise click.ClickException(str(exc)) from None
    except (KeyboardInterrupt, EOFError):
        click.echo("\n   (interrupted: the caller hangs up)")
        if not sim.ended:
            sim.hangup()
        show_new()

    _summary(sim, library)


def _ask_keys() -> str:
    while True:
        text = click.prompt("   🔢 keys (Enter = no key, h = hang up)", default="", show_default=False)
        text = text.strip()
        if text == HANGUP or text == "" or all(ch in "0123456789*#" for ch in text):
            return text
        click.echo("   only 0-9, * and # can be pressed (or h to hang up)")


def _summary(sim: SimulatedCall, library: Any) -> None:
    outcome = sim.outcome
    click.echo("")
    line = f"⏹  outcome: {outcome.kind}"
    if outcome.target:
        line += f" → {outcome.target}"
    if outcome.step:
        line += f" (at step {outcome.step})"
    if outcome.detail:
        line += f" — {outcome.detail}"
    click.echo(line)
    from ivr.testing import step_name_of
    click.echo("🧭 path: " + " → ".join(step_name_of(e) for e in sim.trace))
    masked = _masked_names(sim, library)
    inputs = getattr(sim.session, "inputs", []) or []
    if inputs:
        click.echo("⌨️  inputs:")
        for item in inputs:
            if isinstance(item, dict):
                value = MASK if item.get("var") in masked else item.get("value")
                click.echo(f"   {item.get('step')}: {item.get('var')} = {_show_value(value)}")
            else:
                click.echo(f"   {item}")
    click.echo("📋 variables:")
    public = getattr(sim.session, "public_variables", None)
    variables = public() if callable(public) else sim.variables
    for name in sorted(variables):
        value = MASK if name in masked and variables[name] not in (None, "") else variables[name]
        click.echo(f"   {name} = {_show_value(value)}")
