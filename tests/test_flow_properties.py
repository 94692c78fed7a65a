"""Whatever a caller does, the example flows end: no loop, no crash, no dead air.

Hypothesis plays callers pressing any keys, letting inputs time out, hanging up at
any point, and queues ending either way, at open, closed and holiday times.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import ivr.steps  # noqa: F401  - registers the step types
from ivr import pins
from ivr.library import FlowLibrary
from ivr.memory_services import DEMO_CUSTOMERS, InMemoryServices
from ivr.simulator import HANGUP, PromptCatalogue, SimulatedCall, parse_now

FLOWS = Path(__file__).resolve().parent.parent / "flows"
MAX_COMMANDS = 2000     # far above any real call through these flows (a few hundred at most)
OUTCOMES = {"queued", "transferred", "voicemail", "callback", "completed", "caller_hangup",
            "error", "step_limit"}
TIMES = [parse_now(t) for t in ("2026-11-24T10:00+08:00", "2026-11-28T17:00+08:00",
                                "2026-10-01T10:00+08:00", "2026-11-29T03:00+08:00")]


class QuickPinServices(InMemoryServices):
    """The demo customers with cheap PIN hashes: this property is about the flow, not scrypt."""

    def __init__(self) -> None:
        customers = []
        for customer in DEMO_CUSTOMERS:
            record = {k: v for k, v in customer.items() if k != "pin"}
            record["pin_hash"] = pins.pbkdf2_hash_pin(customer["pin"], iterations=1)
            customers.append(record)
        super().__init__(customers)

    def authenticate(self, account, pin):
        if not any(c["account"] == str(account) for c in self.customers):
            return None   # skip the deliberately slow dummy hash of unknown accounts
        return super().authenticate(account, pin)


LIBRARY = FlowLibrary(FLOWS)
CATALOGUE = PromptCatalogue(LIBRARY.get(n) for n in LIBRARY.names())

KNOWN_GROUPS = ["1", "2", "3", "4", "0", "9", "*", "#", "", HANGUP,
                "100001#", "1234#", "100002#", "2345#", "100003#", "3456#", "9999#"]
groups = st.lists(
    st.one_of(st.sampled_from(KNOWN_GROUPS),
              st.text(alphabet="0123456789*#", min_size=0, max_size=12)),
    max_size=40)
queue_results = st.lists(st.sampled_from(["answered", "timeout", "joinempty", "hangup"]), max_size=4)


def run_call(flow: str, now: float, keys: list[str], queues: list[str]) -> SimulatedCall:
    sim = SimulatedCall(LIBRARY.get(flow), services=QuickPinServices(), flows=LIBRARY,
                        catalogue=CATALOGUE, now=now)
    keys, queues = list(keys), list(queues)
    timeouts = 0
    while not sim.ended:
        assert sim.commands < MAX_COMMANDS, f"no end after {sim.commands} commands: {sim.trace[-10:]}"
        kind = sim.pending_kind
        if kind == "input":
            if keys:
                group = keys.pop(0)
            else:
                timeouts += 1
                group = HANGUP if timeouts > 3 else ""
            sim.hangup() if group == HANGUP else sim.press(group)
        elif kind == "queue":
            result = queues.pop(0) if queues else "answered"
            sim.hangup() if result == "hangup" else sim.end_queue(result)
        else:
            sim.end_dial("ANSWER")
    return sim


@pytest.mark.parametrize("flow", ["main", "main_zh"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(now=st.sampled_from(TIMES), keys=groups, queues=queue_results)
def test_any_caller_behaviour_ends_the_call(flow, now, keys, queues):
    """Any keys, timeouts, hangups and queue endings: the call ends with a known outcome."""
    sim = run_call(flow, now, keys, queues)
    event(f"outcome {sim.outcome.kind}")
    assert sim.outcome.kind in OUTCOMES
    assert sim.outcome.kind not in ("error", "step_limit"), sim.session.errors
    assert all(item["value"] == "••••" for item in sim.session.inputs if item["var"] == "pin")
