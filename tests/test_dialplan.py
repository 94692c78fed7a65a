"""The Asterisk configs in dialplan/ agree with themselves, with the flows and with Hotline.

Asterisk only reports a bad Goto or a missing queue when a caller reaches it; these
tests find them before a deploy. The first tests pin down the .conf parser itself.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

from hotline.asterisk_conf import (
    ConfError,
    load_conf,
    parse_application,
    parse_conf,
    parse_dialplan,
    split_app_args,
)

ROOT = Path(__file__).resolve().parents[1]
DIALPLAN = ROOT / "dialplan"
FLOWS = ROOT / "flows"
FASTAGI_DEFAULT_PORT = 4573   # Asterisk's default port for agi:// URLs (res_agi.c)


# ---------------------------------------------------------------- the parser

def test_sections_items_and_both_assignment_operators():
    """`name = value` and `name => value` are items of the section above them."""
    conf = parse_conf("[a]\nx = 1\nexten => s,1,Answer()\n[b]\ny=2\n", "t.conf")
    assert [(i.name, i.value, i.operator) for i in conf.section("a").items] == [
        ("x", "1", "="), ("exten", "s,1,Answer()", "=>")]
    assert conf.section("b").get("y") == "2"


def test_template_items_come_first_and_templates_are_not_sections():
    """`[q](tpl)` inherits the template's lines; `[tpl](!)` itself is only a template."""
    conf = parse_conf("[tpl](!)\nweight = 1\nstrategy = ringall\n[q](tpl)\nweight = 9\n")
    assert conf.section_names() == ["q"]
    q = conf.section("q")
    assert q.get("weight") == "9" and q.get("strategy") == "ringall"
    assert q.getall("weight") == ["1", "9"]


def test_comments_escaped_semicolons_and_block_comments():
    """`;` ends a line, `\\;` is a literal semicolon, `;-- ... --;` spans lines."""
    conf = parse_conf("[a]\nx = a\\;b ; comment\n;-- block\ny = hidden\n--;\nz = 3 ;-- inline --; \n")
    section = conf.section("a")
    assert section.get("x") == "a;b"
    assert section.get("y") is None
    assert section.get("z") == "3"


def test_include_is_followed_and_a_missing_include_names_the_line(tmp_path):
    """`#include` pulls in another file relative to this one; a missing one is an error at its line."""
    (tmp_path / "extra.conf").write_text("[extra]\nk = v\n")
    (tmp_path / "main.conf").write_text("[main]\na = 1\n#include \"extra.conf\"\n")
    conf = load_conf(tmp_path / "main.conf")
    assert conf.section("extra").get("k") == "v"
    (tmp_path / "broken.conf").write_text("[main]\n\n#include nothing.conf\n")
    with pytest.raises(ConfError, match=r"broken\.conf:3: #include nothing\.conf"):
        load_conf(tmp_path / "broken.conf")


@pytest.mark.parametrize("text, message", [
    ("x = 1\n", "outside any"),
    ("[a]\njust words\n", "expected 'name = value'"),
    ("[a](missing)\n", "unknown template"),
    ("[a]\n;-- never closed\n", "never closed"),
    ("[a]\n#exec /bin/true\n", "#exec"),
])
def test_malformed_lines_are_errors_with_file_and_line(text, message):
    """A line Asterisk would refuse is a ConfError naming file and line."""
    with pytest.raises(ConfError, match=message) as info:
        parse_conf(text, "bad.conf")
    assert str(info.value).startswith("bad.conf:")


def test_dialplan_numbers_n_and_same_like_asterisk():
    """`n` is the previous priority + 1 and `same` continues the last extension."""
    plan = parse_dialplan(parse_conf(
        "[c]\nexten => s,1,Answer()\n same => n(go),Wait(1)\nexten => 5,1,Goto(s,go)\n same => n,Hangup\n"))
    s = plan.contexts["c"].find("s")
    assert s.numbers() == [1, 2] and s.priorities[1].label == "go"
    assert [p.app for p in plan.contexts["c"].find("5").priorities] == ["Goto", "Hangup"]


def test_application_arguments_split_outside_brackets():
    """Commas inside ${...}, $[...] and (...) do not split application arguments."""
    assert split_app_args("${IF($[${A}=1]?a:b)},t,,,300") == ("${IF($[${A}=1]?a:b)}", "t", "", "", "300")
    assert parse_application("Queue(operator,t)") == ("Queue", "operator,t")
    assert parse_application("Hangup") == ("Hangup", "")


def test_a_priority_defined_twice_is_an_error():
    """Two lines for priority 1 of one extension is a mistake Asterisk only warns about."""
    with pytest.raises(ConfError, match="defined twice"):
        parse_dialplan(parse_conf("[c]\nexten => s,1,Answer()\nexten => s,1,Hangup()\n", "e.conf"))


# ---------------------------------------------------------------- helpers over our files

@pytest.fixture(scope="module")
def dialplan():
    return parse_dialplan(load_conf(DIALPLAN / "extensions.conf"))


@pytest.fixture(scope="module")
def queues():
    return load_conf(DIALPLAN / "queues.conf")


@pytest.fixture(scope="module")
def manager():
    return load_conf(DIALPLAN / "manager.conf")


def _flow_documents():
    yaml = YAML(typ="safe")
    files = sorted(FLOWS.glob("*.yaml"))
    assert files, "no flows/*.yaml to check against"
    return [(path, yaml.load(path.read_text(encoding="utf-8"))) for path in files]


def _goto_contexts(app: str, args: tuple[str, ...], current: str) -> list[str]:
    """Contexts a Goto/GotoIf/Gosub/GosubIf/Dial(Local/...) sends the call to."""
    if app in ("GotoIf", "GosubIf", "ExecIf"):
        _cond, _, branches = ",".join(args).partition("?")
        found = []
        for branch in (b for b in branches.split(":") if b.strip()):
            if app == "ExecIf":   # each branch is an application call
                inner_app, inner_data = parse_application(branch)
                found += _goto_contexts(inner_app, split_app_args(inner_data), current)
            else:                 # each branch is [[context,]exten,]priority[(gosub args)]
                found += _goto_contexts("Goto", split_app_args(branch.split("(")[0]), current)
        return found
    if app in ("Goto", "Gosub") and len(args) == 3:
        return [args[0]]
    if app in ("Dial", "Queue") or app == "Originate":
        return re.findall(r"Local/[^@,&]+@([A-Za-z0-9_-]+)", ",".join(args))
    return []


def _apps(dialplan, name):
    return [(c, e, p) for c, e, p in dialplan.priorities() if p.app.lower() == name.lower()]


# ---------------------------------------------------------------- extensions.conf

def test_every_dialplan_file_parses():
    """extensions.conf, queues.conf and manager.conf parse without errors."""
    for name in ("extensions.conf", "queues.conf", "manager.conf"):
        assert load_conf(DIALPLAN / name).sections, name


def test_every_referenced_context_exists(dialplan):
    """Every context named by Goto, GotoIf, Gosub, ExecIf, Dial(Local/...) or include exists."""
    missing = []
    for context, exten, prio in dialplan.priorities():
        for target in _goto_contexts(prio.app, prio.args, context.name):
            if "${" not in target and target not in dialplan.contexts:
                missing.append(f"{prio.file}:{prio.line}: {prio.app} -> [{target}]")
    for context in dialplan.contexts.values():
        missing += [f"[{context.name}] include => {inc}" for inc in context.includes
                    if inc not in dialplan.contexts]
    assert not missing


def test_every_extension_has_priorities_one_to_n(dialplan):
    """Each extension starts at priority 1 and has no gaps (a gap silently ends the call)."""
    for context in dialplan.contexts.values():
        for exten in context.extensions.values():
            numbers = sorted(exten.numbers())
            assert numbers == list(range(1, len(numbers) + 1)), (context.name, exten.name, numbers)


def test_agi_urls_name_existing_flows_on_the_fastagi_port(dialplan):
    """Each AGI(agi://host:4573/<flow>) names a flows/<flow>.yaml, on the default FastAGI port."""
    agis = _apps(dialplan, "AGI")
    assert agis, "the dialplan runs no AGI"
    for context, exten, prio in agis:
        url = urlsplit(prio.args[0])
        assert url.scheme == "agi", prio
        assert url.port == FASTAGI_DEFAULT_PORT, prio
        assert url.hostname == "${hotline_agi_host}", prio   # urlsplit lower-cases the host
        flow = url.path.lstrip("/")
        assert (FLOWS / f"{flow}.yaml").is_file(), f"{prio.file}:{prio.line}: no flows/{flow}.yaml"


def test_agi_host_is_a_global_defaulting_to_localhost(dialplan):
    """HOTLINE_AGI_HOST is set once in [globals], to where `hotline serve` listens by default."""
    assert dialplan.globals["HOTLINE_AGI_HOST"] == "127.0.0.1"


def test_entry_contexts_answer_first_and_route_on_agistatus(dialplan):
    """Every AGI runs after Answer() and is followed by a Goto on ${AGISTATUS}."""
    for context, exten, prio in _apps(dialplan, "AGI"):
        apps = [p.app for p in exten.priorities]
        at = apps.index("AGI")
        assert "Answer" in apps[:at], context.name
        follow = exten.priorities[at + 1]
        assert follow.app == "Goto" and "${AGISTATUS}" in follow.data, context.name
        assert follow.args[0] in dialplan.contexts


def test_agi_failure_reaches_an_operator_never_dead_air(dialplan):
    """FAILURE (Hotline unreachable) plays an apology and queues for an operator before hanging up."""
    after = dialplan.contexts["hotline-after-agi"]
    assert [p.app for p in after.find("HANGUP").priorities] == ["Hangup"]
    for status in ("FAILURE", "NOTFOUND", "i"):
        assert after.find(status).priorities[0].data == "agi_fail,1"
    apps = [p.app for p in after.find("agi_fail").priorities]
    assert apps.index("Playback") < apps.index("Queue") < apps.index("Hangup")
    queue = after.find("agi_fail").priorities[apps.index("Queue")]
    assert queue.args[0] == "operator"


def test_agi_closed_without_an_outcome_reaches_an_operator(dialplan):
    """SUCCESS with neither HOTLINE_OUTCOME nor HOTLINE_ERROR (Hotline stopped mid-call) goes
    to agi_fail; a flow that ended, or already queued the caller for an operator, hangs up."""
    success = dialplan.contexts["hotline-after-agi"].find("SUCCESS").priorities
    assert [p.app for p in success] == ["GotoIf", "Hangup"]
    assert success[0].data == '$["${HOTLINE_OUTCOME}${HOTLINE_ERROR}" = ""]?agi_fail,1'


def test_agi_fail_prompt_is_one_hotline_renders():
    """The apology the dialplan plays is a system prompt `hotline prompts build` renders, per language."""
    from ivr.prompts import SYSTEM_PROMPTS
    text = (DIALPLAN / "extensions.conf").read_text(encoding="utf-8")
    played = re.search(r"Playback\((hotline/system/agi-fail-)\$\{CHANNEL\(language\)\}\)", text)
    assert played
    for language in ("en", "zh"):
        assert f"{played.group(1)}{language}" in SYSTEM_PROMPTS


def test_every_call_context_has_a_hangup_extension(dialplan):
    """Contexts a call can end in reach an `h` extension (directly or by include)."""
    for name in ("hotline-inbound", "hotline-inbound-zh", "hotline-after-agi"):
        context = dialplan.contexts[name]
        reachable = [context] + [dialplan.contexts[i] for i in context.includes]
        assert any(c.find("h") for c in reachable), name


# ---------------------------------------------------------------- queues.conf

def test_every_queue_in_the_dialplan_is_defined(dialplan, queues):
    """Each Queue(name,...) in extensions.conf has a [name] in queues.conf."""
    defined = set(queues.section_names()) - {"general"}
    used = {p.args[0] for _, _, p in _apps(dialplan, "Queue")}
    assert used and used <= defined, used - defined


def test_every_queue_a_flow_uses_is_defined(queues):
    """Queue steps, callback queues and each flow's operator_queue (default operator) exist."""
    defined = set(queues.section_names()) - {"general"}
    used: dict[str, str] = {}
    for path, doc in _flow_documents():
        used.setdefault(doc.get("operator_queue") or "operator", f"{path.name}: operator_queue")
        for name, step in (doc.get("steps") or {}).items():
            if isinstance(step, dict) and step.get("type") in ("queue", "callback") and step.get("queue"):
                used.setdefault(str(step["queue"]), f"{path.name}: step {name}")
    missing = {q: where for q, where in used.items() if q not in defined}
    assert not missing
    assert {"vip", "key", "regular", "operator", "support"} <= defined


def test_vip_queue_weighs_most(queues):
    """When an agent serves several queues, VIP callers get them first."""
    weights = {name: int(queues.section(name).get("weight", "0"))
               for name in queues.section_names() if name != "general"}
    assert max(weights, key=weights.get) == "vip"
    assert weights["vip"] > weights["key"] > weights["regular"]


def test_queues_refuse_callers_nobody_can_answer(queues):
    """joinempty / leavewhenempty are set, so the flow's timeout path offers a callback."""
    for name in queues.section_names():
        if name == "general":
            continue
        section = queues.section(name)
        assert "unavailable" in section.get("joinempty", ""), name
        assert "unavailable" in section.get("leavewhenempty", ""), name
        assert section.get("strategy") and int(section.get("timeout")) > 0, name


# ---------------------------------------------------------------- manager.conf

def _classes(value: str | None) -> set[str]:
    return {c.strip().lower() for c in (value or "").split(",") if c.strip()}


def test_ami_listens_on_localhost_only(manager):
    """The AMI is enabled on 127.0.0.1:5038, the address and port hotline.toml defaults to."""
    from hotline.config import SCHEMA
    general = manager.section("general")
    assert general.get("enabled") == "yes"
    assert general.get("bindaddr") == "127.0.0.1"
    assert int(general.get("port")) == SCHEMA["ami"]["port"].default


def test_hotline_user_has_the_classes_hotline_needs(manager):
    """The user Hotline logs in as (hotline.toml default) reads and writes what the CTI uses."""
    from hotline.config import SCHEMA
    user = manager.section(SCHEMA["ami"]["username"].default)
    assert user is not None
    assert {"call", "agent", "dialplan", "system"} <= _classes(user.get("read"))
    assert {"call", "originate", "agent", "reporting"} <= _classes(user.get("write"))


def test_hotline_user_cannot_run_dangerous_actions(manager):
    """No system, command, config or all write access: a leaked secret cannot stop Asterisk."""
    user = manager.section("hotline")
    assert not _classes(user.get("write")) & {"system", "command", "config", "all", "user"}
    assert "all" not in _classes(user.get("read")) and "config" not in _classes(user.get("read"))


def test_hotline_user_is_limited_to_localhost(manager):
    """deny everything first, then permit 127.0.0.1 only."""
    user = manager.section("hotline")
    assert user.getall("deny") == ["0.0.0.0/0.0.0.0"]
    assert user.getall("permit") == ["127.0.0.1/255.255.255.255"]


def test_secret_is_a_placeholder_not_a_real_secret(manager):
    """The shipped secret is the obvious placeholder: the real one lives in HOTLINE_AMI_SECRET."""
    assert manager.section("hotline").get("secret") == "CHANGE_ME"
    assert "HOTLINE_AMI_SECRET" in (DIALPLAN / "manager.conf").read_text()


def test_event_filters_use_the_advanced_syntax(manager):
    """eventfilter lines use Asterisk 22's `eventfilter(criteria) =` form, excluding by exact name."""
    filters = [i for i in manager.section("hotline").items if i.name.startswith("eventfilter")]
    for item in filters:
        assert re.fullmatch(r"eventfilter\(action\(exclude\),name\([A-Za-z]+\)\)", item.name), item
    excluded = {re.search(r"name\((\w+)\)", i.name).group(1) for i in filters}
    # Events the tracker and screen pops are built on must never be filtered out.
    assert not excluded & {"VarSet", "Hangup", "Newchannel", "QueueCallerJoin", "AgentCalled",
                           "AgentConnect", "AgentComplete", "QueueMemberStatus", "FullyBooted"}
