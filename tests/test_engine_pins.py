"""PIN hashing (ivr.pins) and the in-memory services (ivr.memory_services)."""
from __future__ import annotations

import pytest

from ivr.memory_services import DEMO_CUSTOMERS, InMemoryServices
from ivr.pins import hash_pin, pbkdf2_hash_pin, verify_pin

HASH = hash_pin("1234")


def test_pin_hash_verifies_only_the_right_pin():
    """verify_pin accepts the PIN that was hashed and refuses any other."""
    assert verify_pin("1234", HASH)
    assert not verify_pin("1235", HASH)
    assert not verify_pin("", HASH)


def test_pin_hash_is_salted_and_never_contains_the_pin():
    """Two hashes of one PIN differ (random salt) and neither shows the PIN."""
    other = hash_pin("1234")
    assert other != HASH and "1234" not in HASH
    assert HASH.startswith("scrypt$") and len(HASH) <= 255


def test_pbkdf2_hashes_verify_too():
    """A PBKDF2 hash (systems without scrypt) verifies with the same function."""
    stored = pbkdf2_hash_pin("987654", iterations=1000)
    assert verify_pin("987654", stored) and not verify_pin("987655", stored)


@pytest.mark.parametrize("stored", [None, "", "plain1234", "scrypt$x$8$1$AA==$AA==", "md5$abc",
                                    "scrypt$1048577$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!$AA=="])
def test_malformed_hashes_are_refused_not_raised(stored):
    """A tampered or unknown hash is simply 'no match'."""
    assert verify_pin("1234", stored) is False


def services():
    return InMemoryServices([
        {"account": "100001", "pin_hash": HASH, "name": "Wang Fang", "tier": "vip", "phone": "138-0000-0001",
         "tickets": [{"reference": "T-9", "status": "closed"}, {"reference": "T-10", "status": "open"}]},
    ])


def test_memory_authenticate_returns_the_customer_record():
    """The right PIN gives the same record shape as the database services; a wrong one None."""
    record = services().authenticate("100001", "1234")
    assert record["customer_id"] == 1 and record["name"] == "Wang Fang" and record["tier"] == "vip"
    assert "pin_hash" not in record
    assert services().authenticate("100001", "4321") is None
    assert services().authenticate("999999", "1234") is None


def test_memory_lookup_fields_and_tickets():
    """lookup returns exactly the fields asked; ticket fields describe the newest open ticket."""
    record = services().lookup("phone", "13800000001", ["name", "ticket_reference", "open_tickets"])
    assert record == {"name": "Wang Fang", "ticket_reference": "T-10", "open_tickets": 1}
    assert services().lookup("customer_id", "None", ["name"]) is None


def test_memory_lookup_refuses_unknown_fields_like_the_database():
    """pin_hash (or any unknown field) is refused with ValueError."""
    with pytest.raises(ValueError, match="pin_hash"):
        services().lookup("account", "100001", ["pin_hash"])
    with pytest.raises(ValueError):
        services().lookup("email", "x", ["name"])


def test_memory_services_keep_what_was_stored():
    """Callbacks, survey answers, voicemails and tickets are kept for tests to check."""
    svc = services()
    assert svc.request_callback("13800000001", 1, "regular", "s1") == "1"
    svc.store_survey("s1", "agent", 5)
    svc.store_voicemail("s1", "1000@default", 1)
    reference = svc.create_ticket(1, "fault", "no dial tone", "s1")
    assert svc.callbacks[0]["queue"] == "regular"
    assert svc.survey_answers == [{"session_id": "s1", "question": "agent", "rating": 5}]
    assert svc.voicemails[0]["mailbox"] == "1000@default"
    assert svc.ticket_status(1, reference)["status"] == "open"
    with pytest.raises(ValueError):
        svc.store_survey("s1", "agent", 9)


def test_demo_customers_match_the_admin_guide():
    """The default customers are the ones docs/flows.md lists for `hotline simulate`."""
    assert [(c["account"], c["pin"], c["tier"]) for c in DEMO_CUSTOMERS] == [
        ("100001", "1234", "vip"), ("100002", "2345", "key"), ("100003", "3456", "regular")]
