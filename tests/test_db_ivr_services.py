"""DatabaseServices: what an IVR flow gets from the database, as plain values only;
and the demo seed data it is usually tried with."""
import inspect
import json
from datetime import datetime

import pytest
from sqlalchemy import func, select

from db import repository as repo
from db.ivr_services import LOOKUP_FIELDS, DatabaseServices
from db.models import Callback, Customer, SurveyAnswer, Ticket, Voicemail
from db.seed import DEMO_CUSTOMERS, DEMO_TICKETS, seed_demo
from db_helpers import (  # noqa: F401
    cached_pin_hashes, database, pg_databases, pg_migrated_url,
)
from ivr.services import Services


@pytest.fixture
def services(database, cached_pin_hashes):
    database.run_sync(seed_demo)
    return DatabaseServices(database)


def customer_id_of(database, account):
    return database.run_sync(lambda s: repo.customer_by_account(s, account).id)


def test_database_services_implements_every_service_method():
    """Every Services method exists on DatabaseServices with the same parameters."""
    for name, member in inspect.getmembers(Services, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = getattr(DatabaseServices, name)
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(member).parameters), name


def test_authenticate_returns_a_plain_customer_record(services, database):
    """The right PIN gives a JSON-able dict of the customer: no ORM object crosses threads."""
    record = services.authenticate("100001", "1234")
    assert record == {
        "customer_id": customer_id_of(database, "100001"), "name": "张伟", "tier": "vip",
        "account": "100001", "phone": "13800138001", "language": "zh",
        "balance_cents": 1256800, "currency": "CNY", "last_payment_cents": 50000,
        "last_payment_at": "2026-11-02T03:15:00+00:00",
    }
    json.dumps(record)
    assert datetime.fromisoformat(record["last_payment_at"]).tzinfo is not None


def test_authenticate_with_a_wrong_pin_is_none(services):
    """A wrong PIN gives None."""
    assert services.authenticate("100001", "4321") is None


def test_authenticate_an_unknown_account_is_none(services):
    """An account that does not exist gives None, as a wrong PIN does."""
    assert services.authenticate("999999", "1234") is None


def test_lookup_returns_exactly_the_requested_fields(services, database):
    """lookup by customer_id (as text, as flows pass it) returns just the fields asked for."""
    cid = str(customer_id_of(database, "100003"))
    assert services.lookup("customer_id", cid, ["balance_cents", "last_payment_cents", "tier"]) == {
        "balance_cents": -8650, "last_payment_cents": 5000, "tier": "regular"}


def test_lookup_by_phone_and_account(services):
    """Customers are found by caller ID number and by account."""
    assert services.lookup("phone", "139-0013-9002", ["account"]) == {"account": "100002"}
    assert services.lookup("account", "100012", ["name", "language"]) == {"name": "Sarah Wu", "language": "en"}


def test_lookup_of_a_missing_customer_is_none(services):
    """No such customer (or no id at all) gives None, the flow's on_not_found."""
    assert services.lookup("account", "000000", ["name"]) is None
    assert services.lookup("customer_id", "None", ["name"]) is None
    assert services.lookup("customer_id", "abc", ["name"]) is None


def test_lookup_of_an_unknown_field_names_the_valid_ones(services):
    """Asking for a field that does not exist is an error listing every valid field."""
    with pytest.raises(ValueError) as caught:
        services.lookup("account", "100001", ["balance", "name"])
    message = str(caught.value)
    assert "'balance'" in message and all(field in message for field in LOOKUP_FIELDS)


def test_lookup_never_exposes_the_pin_hash(services):
    """pin_hash is not a lookup field."""
    with pytest.raises(ValueError, match="pin_hash"):
        services.lookup("account", "100001", ["pin_hash"])


def test_lookup_by_an_unknown_key_is_refused(services):
    """``by`` must be account, phone or customer_id."""
    with pytest.raises(ValueError, match="account, phone, customer_id"):
        services.lookup("email", "x@example.com", ["name"])


def test_lookup_ticket_fields_give_the_newest_open_ticket(services, database):
    """ticket_reference/ticket_status are the customer's newest open ticket."""
    cid = customer_id_of(database, "100001")
    assert services.lookup("customer_id", str(cid), ["ticket_reference", "ticket_status", "open_tickets"]) == {
        "ticket_reference": "T-000001", "ticket_status": "in_progress", "open_tickets": 1}


def test_lookup_ticket_fields_fall_back_to_a_closed_ticket(services, database):
    """With no open ticket, the newest closed one is reported (the flow says it is closed)."""
    cid = customer_id_of(database, "100005")
    assert services.lookup("customer_id", cid, ["ticket_status", "open_tickets"]) == {
        "ticket_status": "closed", "open_tickets": 0}


def test_lookup_ticket_fields_are_none_without_tickets(services, database):
    """A customer without tickets gets None references (the flow's "no ticket")."""
    assert services.lookup("account", "100002", ["ticket_reference", "ticket_status"]) == {
        "ticket_reference": None, "ticket_status": None}


def test_create_ticket_returns_a_reference_and_links_the_session(services, database):
    """A new ticket gets the next T-nnnnnn reference and remembers the IVR session."""
    cid = customer_id_of(database, "100002")
    reference = services.create_ticket(str(cid), "fault", "no internet", "c" * 32)
    assert reference == f"T-{len(DEMO_TICKETS) + 1:06d}"
    ticket = database.run_sync(lambda s: repo.as_dict(repo.get_ticket(s, reference)))
    assert (ticket["customer_id"], ticket["ivr_session_id"], ticket["status"]) == (cid, "c" * 32, "open")


def test_ticket_status_by_reference(services, database):
    """A ticket is found by its reference."""
    status = services.ticket_status(None, "T-000002")
    assert (status["reference"], status["status"], status["kind"]) == ("T-000002", "open", "complaint")


def test_ticket_status_of_someone_elses_ticket_is_none(services, database):
    """An authenticated caller never hears about another customer's ticket."""
    other = customer_id_of(database, "100012")
    assert services.ticket_status(other, "T-000002") is None


def test_ticket_status_without_reference_is_the_latest_open_ticket(services, database):
    """Without a reference, the customer's newest open ticket is reported."""
    assert services.ticket_status(customer_id_of(database, "100007"), None)["kind"] == "request"
    assert services.ticket_status(customer_id_of(database, "100005"), None) is None
    assert services.ticket_status(None, None) is None


def test_request_callback_returns_its_id(services, database):
    """A callback request is stored pending and its id returned as text."""
    callback_id = services.request_callback("13800138001", None, "regular", "c" * 32, "busy")
    row = database.run_sync(lambda s: repo.as_dict(s.get(Callback, int(callback_id))))
    assert (row["number"], row["queue"], row["status"], row["note"]) == ("13800138001", "regular", "pending", "busy")


def test_store_survey_and_voicemail(services, database):
    """Survey answers and voicemail records are stored against the session."""
    services.store_survey("c" * 32, "q1", 4)
    services.store_survey("c" * 32, "q2", None)
    services.store_voicemail("c" * 32, "1000@default", None)
    assert database.run_sync(lambda s: sorted(s.scalars(select(SurveyAnswer.question)))) == ["q1", "q2"]
    assert database.run_sync(lambda s: s.scalar(select(Voicemail.mailbox))) == "1000@default"


def test_seed_adds_the_demo_customers_once(database, cached_pin_hashes):
    """Seeding twice adds the demo customers and tickets only once."""
    first = database.run_sync(seed_demo)
    second = database.run_sync(seed_demo)
    assert first == {"customers": len(DEMO_CUSTOMERS), "tickets": len(DEMO_TICKETS)}
    assert second == {"customers": 0, "tickets": 0}
    counts = database.run_sync(lambda s: (s.scalar(select(func.count(Customer.id))),
                                          s.scalar(select(func.count(Ticket.id)))))
    assert counts == (len(DEMO_CUSTOMERS), len(DEMO_TICKETS))


def test_every_documented_demo_pin_works(services):
    """Each demo account authenticates with the PIN its table documents."""
    for demo in DEMO_CUSTOMERS:
        assert services.authenticate(demo.account, demo.pin)["tier"] == demo.tier
