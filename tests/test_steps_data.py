"""The authenticate, lookup, branch and set steps."""
from __future__ import annotations

import pytest

from engine_helpers import ENV, HANGUP, TIMEOUT, Phone, drive, make_flow, make_step, ok
from ivr.commands import AgiResult, Exec, Exit, Outcome, ServiceCall, ServiceResult
from ivr.engine import MASK, FlowSession
from ivr.flow import STEP_TYPES
from ivr.memory_services import InMemoryServices
from ivr.pins import hash_pin

PIN_HASH = hash_pin("1234")   # hashed once for the module: scrypt is slow on purpose


def services():
    return InMemoryServices([
        {"account": "100001", "pin_hash": PIN_HASH, "name": "Wang Fang", "tier": "vip",
         "phone": "13800000001", "balance_cents": 1234567, "customer_id": 42,
         "tickets": [{"reference": "T-1", "status": "open"}]},
        {"account": "100002", "pin_hash": PIN_HASH, "name": "Li Qiang", "tier": "platinum"},
    ])


ENDS = {
    "welcome": {"type": "hangup", "prompt": {"sound": "welcome"}},
    "denied": {"type": "hangup", "prompt": {"sound": "denied"}},
    "nobody": {"type": "hangup", "prompt": {"sound": "nobody"}},
}


def auth(**params):
    base = {"type": "authenticate", "account_prompt": {"sound": "account"}, "pin_prompt": {"sound": "pin"},
            "failure_prompt": {"sound": "no-match"}, "next": "welcome", "on_failure": "denied"}
    return make_flow({"a": {**base, **params}, **ENDS}, start="a")


# ---------------------------------------------------------------- authenticate

def test_authenticate_success_writes_the_customer_variables():
    """A matching account and PIN: account, customer_id, customer_name, tier, authenticated."""
    phone = Phone(auth(), inputs=["100001#", "1234#"], services=services())
    assert phone.run().step == "welcome"
    v = phone.session.variables
    assert (v["account"], v["customer_id"], v["customer_name"], v["tier"], v["authenticated"]) == \
        ("100001", 42, "Wang Fang", "vip", True)
    assert phone.session.customer_id == 42


def test_authenticate_pin_is_always_masked_and_never_kept():
    """The PIN shows as •••• in inputs and is not stored in any variable."""
    phone = Phone(auth(), inputs=["100001#", "1234#"], services=services())
    phone.run()
    assert {"step": "a", "var": "pin", "value": MASK} in phone.session.inputs
    assert "1234" not in phone.session.variables.values()
    assert "1234" not in [entry["value"] for entry in phone.session.inputs]


def test_authenticate_asks_via_the_authenticate_service():
    """The check is ServiceCall('authenticate', account=..., pin=...)."""
    phone = Phone(auth(), inputs=["100001#", "1234#"], services=services())
    phone.run()
    assert ServiceCall("authenticate", {"account": "100001", "pin": "1234"}) in phone.commands


def test_authenticate_wrong_pin_plays_the_failure_prompt_and_tries_again():
    """A wrong PIN costs one attempt; the failure prompt is played; the next attempt can succeed."""
    phone = Phone(auth(), inputs=["100001#", "9999#", "100001#", "1234#"], services=services())
    assert phone.run().step == "welcome"
    assert "no-match" in [c.filename for c in phone.commands if hasattr(c, "filename")]


def test_authenticate_attempts_exhausted_goes_to_on_failure():
    """After max_attempts failures: on_failure, authenticated stays false."""
    phone = Phone(auth(max_attempts=2), inputs=["100001#", "0000#", "100009#", "1234#"], services=services())
    assert phone.run().step == "denied"
    assert phone.session.variables["authenticated"] is False


def test_authenticate_exhausted_without_on_failure_is_the_error_fallback():
    """No on_failure: the operator fallback."""
    flow = make_flow({"a": {"type": "authenticate", "account_prompt": "a", "pin_prompt": "p",
                            "max_attempts": 1, "next": "welcome"}, **ENDS}, start="a")
    assert Phone(flow, inputs=[TIMEOUT], services=services()).run().kind == "error"


def test_authenticate_short_account_or_pin_is_not_sent_to_the_database():
    """An account under account_min_digits, or a PIN under 4 digits, fails without a service call."""
    phone = Phone(auth(max_attempts=2), inputs=["12#", "100001#", "12#"], services=services())
    assert phone.run().step == "denied"
    assert not phone.of_type(ServiceCall)


def test_authenticate_unknown_tier_is_regular():
    """A tier outside vip/key/regular from the database is treated as regular."""
    phone = Phone(auth(), inputs=["100002#", "1234#"], services=services())
    phone.run()
    assert phone.session.variables["tier"] == "regular"


def test_authenticate_caller_hangup_while_typing():
    """A hangup during the PIN ends the call at the authenticate step."""
    phone = Phone(auth(), inputs=["100001#", HANGUP], services=services())
    assert phone.run() == Outcome("caller_hangup", step="a")


def test_authenticate_service_error_is_a_flow_error():
    """The database failing is the error path, not 'wrong PIN'."""
    session = FlowSession(auth(), ENV)
    replies = {"GetData": ok("100001"), "ServiceCall": ServiceResult(error="OperationalError: down")}
    commands = drive(session, lambda c: replies.get(type(c).__name__, ok("1")))
    assert commands[-1].outcome.kind == "error" and "down" in commands[-1].outcome.detail


# ---------------------------------------------------------------- lookup

def lookup(**params):
    base = {"type": "lookup", "fields": ["name", "balance_cents", "ticket_reference"],
            "next": "welcome", "on_not_found": "nobody"}
    return make_flow({"l": {**base, **params}, **ENDS}, start="l")


def test_lookup_by_phone_writes_fields_found_and_the_customer():
    """by: phone, value: ${caller_id}: each field becomes a variable; found is true."""
    phone = Phone(lookup(by="phone", value="${caller_id}", fields=["customer_id", "name", "tier"]),
                  services=services())
    assert phone.run().step == "welcome"
    v = phone.session.variables
    assert (v["found"], v["name"], v["tier"], phone.session.customer_id) == (True, "Wang Fang", "vip", 42)


def test_lookup_prefix_names_the_variables():
    """prefix: acct_ writes acct_<field>."""
    flow = lookup(by="account", value="100001", prefix="acct_")
    phone = Phone(flow, services=services())
    phone.run()
    v = phone.session.variables
    assert (v["acct_name"], v["acct_balance_cents"], v["acct_ticket_reference"]) == ("Wang Fang", 1234567, "T-1")
    assert v["customer_id"] is None   # a prefixed lookup does not identify the caller


def test_lookup_not_found_goes_to_on_not_found_with_empty_fields():
    """No such customer: found false, the fields none, on_not_found."""
    phone = Phone(lookup(), services=services())          # default value ${customer_id}: none yet
    assert phone.run().step == "nobody"
    assert (phone.session.variables["found"], phone.session.variables["name"]) == (False, None)


def test_lookup_not_found_without_on_not_found_goes_to_next():
    """on_not_found defaults to next."""
    flow = make_flow({"l": {"type": "lookup", "fields": ["name"], "next": "welcome"}, **ENDS}, start="l")
    assert Phone(flow, services=services()).run().step == "welcome"


def test_lookup_service_error_is_a_flow_error():
    """An unknown field (the service refuses it) takes the error path."""
    phone = Phone(lookup(by="account", value="100001", fields=["pin_hash"]), services=services())
    outcome = phone.run()
    assert outcome.kind == "error" and "pin_hash" in outcome.detail


def test_lookup_caller_hangup_during_the_service_call():
    """A hangup reported while the database works ends the call at the lookup step."""
    from ivr.commands import CallerHangup
    session = FlowSession(lookup(), ENV)
    commands = drive(session, lambda c: CallerHangup() if isinstance(c, ServiceCall) else ok("1"))
    assert commands[-1].outcome == Outcome("caller_hangup", step="l")


# ---------------------------------------------------------------- branch and set

def test_branch_takes_the_first_true_condition():
    """Conditions are tried in order; the first true one wins; else otherwise."""
    flow = make_flow({
        "b": {"type": "branch", "conditions": [{"if": "tier == 'vip'", "goto": "welcome"},
                                               {"if": "true", "goto": "denied"}], "else": "nobody"},
        **ENDS}, start="b", variables={"tier": "vip"})
    phone = Phone(flow)
    phone.session.variables["tier"] = "vip"
    assert phone.run().step == "welcome"
    phone = Phone(flow)
    assert phone.run().step == "denied"


def test_branch_else_when_nothing_matches():
    """No true condition: else."""
    flow = make_flow({"b": {"type": "branch", "conditions": [{"if": "authenticated", "goto": "welcome"}],
                            "else": "nobody"}, **ENDS}, start="b")
    assert Phone(flow).run().step == "nobody"


def test_branch_runtime_error_is_a_flow_error():
    """A condition that cannot be evaluated (here: text > number) goes to the error path."""
    flow = make_flow({"b": {"type": "branch", "conditions": [{"if": "caller_id > 5", "goto": "welcome"}],
                            "else": "nobody"}, **ENDS}, start="b")
    assert Phone(flow).run().kind == "error"


def test_set_evaluates_in_order():
    """vars are set in the order written, each seeing the ones before."""
    flow = make_flow({"s": {"type": "set", "vars": {"a": 2, "b": "a * 10 + 1", "c": "'x' + str(b)"},
                            "next": "welcome"}, **ENDS}, start="s")
    phone = Phone(flow)
    phone.run()
    assert (phone.session.variables["a"], phone.session.variables["b"], phone.session.variables["c"]) == \
        (2, 21, "x21")


def test_set_without_next_ends_the_call():
    """A set step with no next is the end of the flow."""
    flow = make_flow({"s": {"type": "set", "vars": {"done": "true"}}})
    assert Phone(flow).run() == Outcome("completed", step="s")


@pytest.mark.parametrize("params", [
    {"type": "branch", "conditions": [{"if": "true"}], "else": "x"},
    {"type": "branch", "conditions": [], "else": "x"},
    {"type": "lookup", "fields": ["bad name"]},
    {"type": "set", "vars": {}},
    {"type": "authenticate", "account_prompt": "a", "pin_prompt": "p", "next": "x", "pin_max_digits": 3},
])
def test_data_step_checks_report_malformed_steps(params):
    """Each data step type's check() reports a malformed step."""
    step = make_step("s", params)
    assert STEP_TYPES[params["type"]].check(step)


def test_ticket_opens_a_ticket_and_keeps_its_reference():
    """A ticket step asks create_ticket with the customer, kind, summary and session, then
    stores the reference in its variable."""
    flow = make_flow({
        "open": {"type": "ticket", "kind": "complaint", "summary": "rude agent ${caller_id}",
                 "var": "ref", "next": "bye"},
        "bye": {"type": "hangup"},
    })
    session = FlowSession(flow, {"agi_callerid": "5551234"}, None, session_id="s1")
    command = session.start()
    while not isinstance(command, ServiceCall):
        command = session.feed(AgiResult(200, "1"))
    assert command.method == "create_ticket"
    assert command.kwargs == {"customer_id": None, "kind": "complaint",
                              "summary": "rude agent 5551234", "session_id": "s1"}
    session.feed(ServiceResult("T-000042"))
    assert session.variables["ref"] == "T-000042"


def test_ticket_service_failure_is_a_flow_error():
    """A database failure while opening the ticket goes to the error path, never dead air."""
    flow = make_flow({"open": {"type": "ticket", "summary": "x", "next": "bye"},
                      "bye": {"type": "hangup"}})
    session = FlowSession(flow, {}, None)
    command = session.start()
    while not isinstance(command, ServiceCall):
        command = session.feed(AgiResult(200, "1"))
    command = session.feed(ServiceResult(error="database down"))
    seen = []
    while not isinstance(command, Exit):
        seen.append(command)
        command = session.feed(AgiResult(200, "0"))
    assert command.outcome.kind == "error"
    assert Exec("Queue", "operator,t") in seen
