"""The engine on flows read from YAML by ivr.loader, and on the example flows in flows/."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine_helpers import ENV, TIMEOUT, Phone
from ivr.commands import Exec, SetVariable
from ivr.loader import parse_flow_text
from ivr.memory_services import InMemoryServices
from ivr.pins import hash_pin

FLOWS_DIR = Path(__file__).parent.parent / "flows"

MENU_YAML = """\
flow: tiny
language: en
steps:
  menu:
    type: menu
    prompt: {sound: menu}
    choices:
      1: balance
      "*": menu
    retries: 2
    on_exhausted: operator
  balance:
    type: say
    money: ${balance}
  operator:
    type: queue
    queue: operator
variables: {balance: 250}
"""


def test_yaml_flow_runs_with_loader_defaults():
    """Keys written as 1: become "1"; defaults (timeout 5 s) come from the step type."""
    flow = parse_flow_text(MENU_YAML, "tiny.yaml", known_flows=[])
    phone = Phone(flow, inputs=["1"])
    assert phone.run().step == "balance"
    phone = Phone(flow, inputs=[TIMEOUT, TIMEOUT])
    assert phone.run().kind == "queued"
    assert phone.commands.count(SetVariable("QUEUE_PRIO", "0")) == 1


def test_yaml_star_key_reaches_its_step():
    """A quoted '*' choice is an escape digit and leads to its step."""
    flow = parse_flow_text(MENU_YAML, "tiny.yaml", known_flows=[])
    phone = Phone(flow, inputs=["*", "1"])
    assert phone.run().step == "balance"
    assert phone.visited() == ["menu", "menu", "balance"]


@pytest.fixture(scope="module")
def library():
    from ivr.library import FlowLibrary
    lib = FlowLibrary(FLOWS_DIR)
    needed = {"main", "office_hours", "selfservice", "survey"}
    if not needed <= set(lib.names()):
        pytest.skip(f"example flows not loadable: {[str(p) for p in lib.problems][:3]}")
    return lib


@pytest.fixture(scope="module")
def customers():
    return [{"account": "100001", "pin_hash": hash_pin("1234"), "name": "Wang Fang", "tier": "vip",
             "phone": "13800000001", "balance_cents": 1234567}]


def test_example_main_vip_balance_then_agent(library, customers):
    """main.yaml in office hours: English, authenticate, balance, then 0: the vip queue at priority 10."""
    env = {**ENV, "now": "2026-11-24T10:00:00+08:00"}
    phone = Phone(library.get("main"), inputs=["1", "100001#", "1234#", "1", "0"], env=env,
                  services=InMemoryServices(customers), flows=library)
    outcome = phone.run()
    assert (outcome.kind, outcome.target) == ("queued", "vip")
    assert SetVariable("QUEUE_PRIO", "10") in phone.commands
    assert {"auth", "say_balance", "vip_queue"} <= set(phone.visited())


def test_example_main_out_of_hours_leaves_a_voicemail(library, customers):
    """main.yaml on a Sunday: the closed menu, 1 = voicemail in 1000@default."""
    env = {**ENV, "now": "2026-11-29T11:00:00+08:00"}
    services = InMemoryServices(customers)
    phone = Phone(library.get("main"), inputs=["1", "1"], env=env, services=services, flows=library)
    outcome = phone.run()
    assert (outcome.kind, outcome.target) == ("voicemail", "1000@default")
    assert Exec("VoiceMail", "1000@default,u") in phone.commands
    assert services.voicemails and services.voicemails[0]["session_id"] == phone.session.session_id
