"""AmiProtocol: actions matched by ActionID, EventLists collected, timeouts, login, keep-alive,
Shutdown and lost connections -- driven with StringTransport, a fake Clock and recorded replies."""
import hashlib

import pytest
from twisted.python.failure import Failure

from ami_helpers import TRACES, ProtocolHarness, interleaved, raw, recorded_reply, rename_action_id, results
from cti.ami.errors import (
    AmiActionError, AmiActionTimeout, AmiAuthError, AmiConnectionLost, LocalProtocolError,
)
from cti.ami.parser import AmiParser
from cti.ami.protocol import ActionResult


def sent(stem):
    return (TRACES / "ami_actions" / f"{stem}.sent").read_bytes()


def only(outcome):
    assert len(outcome) == 1, outcome
    value = outcome[0]
    if isinstance(value, Failure):
        return value.value
    return value


def test_response_is_matched_by_action_id_among_events():
    """Events before and after the reply go to on_event; the reply fires the action."""
    h = ProtocolHarness()
    got = results(h.protocol.send_action("Ping"))
    action = h.sent()[0]
    assert (action.name, action.action_id) == ("Ping", "hl-1")
    h.receive({"Event": "Newchannel", "Uniqueid": "1.1"})
    h.receive([("Response", "Success"), ("ActionID", "hl-1"), ("Ping", "Pong")])
    h.receive({"Event": "Hangup", "Uniqueid": "1.1"})
    assert only(got).get("Ping") == "Pong"
    assert [e.name for e in h.events] == ["Newchannel", "Hangup"]


def test_replies_out_of_order_reach_the_right_action():
    """Two pending actions answered in reverse order each get their own reply."""
    h = ProtocolHarness()
    first = results(h.protocol.send_action("Getvar", {"Variable": "A"}))
    second = results(h.protocol.send_action("Getvar", {"Variable": "B"}))
    h.receive({"Response": "Success", "ActionID": "hl-2", "Value": "b"})
    h.receive({"Response": "Success", "ActionID": "hl-1", "Value": "a"})
    assert only(first).get("Value") == "a" and only(second).get("Value") == "b"


def test_error_response_fails_with_its_message():
    """Response: Error -> AmiActionError naming the action and carrying Asterisk's message."""
    h = ProtocolHarness()
    got = results(h.protocol.send_action("Hangup", action_id="h-39"))
    h.receive(recorded_reply("h-39"))
    error = only(got)
    assert isinstance(error, AmiActionError)
    assert (error.action, error.message) == ("Hangup", "No channel specified")


@pytest.mark.parametrize("action_id,action", [
    ("h-5", "CoreShowChannels"), ("h-6", "QueueStatus"), ("h-8", "QueueStatus"),
    ("h-9", "QueueSummary"), ("h-10", "Status"), ("h-11", "Status"), ("h-43", "QueueStatus"),
])
def test_event_list_is_collected_from_the_recorded_session(action_id, action):
    """Replaying the whole recorded session, the list action fires with exactly ListItems items,
    and its items never reach on_event while unrelated events do."""
    h = ProtocolHarness()
    got = results(h.protocol.send_action(action, action_id=action_id))
    h.receive(interleaved("ami_actions"))
    result = only(got)
    assert isinstance(result, ActionResult)
    assert result.response.is_list_start
    complete = result.complete_event
    assert complete is not None and complete.name.endswith("Complete")
    assert len(result.items) == int(complete["ListItems"])
    assert all(item.action_id == action_id for item in result.events)
    assert not any(e.action_id == action_id for e in h.events)
    assert len(h.events) + len(result.events) == 387


def test_list_items_are_routed_even_when_unrelated_events_interleave():
    """QueueStatus items arrive mixed with Newexten events; each lands where it belongs."""
    h = ProtocolHarness()
    got = results(h.protocol.send_action("QueueStatus", action_id="q-1"))
    h.receive({"Response": "Success", "ActionID": "q-1", "EventList": "start",
               "Message": "Queue status will follow"})
    h.receive([("Event", "QueueParams"), ("Queue", "support"), ("ActionID", "q-1")])
    h.receive({"Event": "Newexten", "Uniqueid": "7.7"})
    h.receive([("Event", "QueueMember"), ("Queue", "support"), ("ActionID", "q-1")])
    assert got == []
    h.receive([("Event", "QueueStatusComplete"), ("ActionID", "q-1"),
               ("EventList", "Complete"), ("ListItems", "2")])
    assert [e.name for e in only(got).items] == ["QueueParams", "QueueMember"]
    assert [e.name for e in h.events] == ["Newexten"]


def test_action_timeout_names_the_action_and_a_late_reply_is_ignored():
    """No reply within the timeout -> AmiActionTimeout; the late reply is dropped quietly."""
    h = ProtocolHarness(action_timeout=10)
    got = results(h.protocol.send_action("CoreShowChannels"))
    h.clock.advance(9.9)
    assert got == []
    h.clock.advance(0.2)
    error = only(got)
    assert isinstance(error, AmiActionTimeout)
    assert "CoreShowChannels" in str(error) and "hl-1" in str(error)
    h.receive({"Response": "Success", "ActionID": "hl-1"})
    assert h.protocol.pending_actions == 0


def test_per_action_timeout_overrides_the_default():
    """``timeout=`` on one action wins over the protocol default."""
    h = ProtocolHarness(action_timeout=10)
    got = results(h.protocol.send_action("Ping", timeout=1))
    h.clock.advance(1)
    assert isinstance(only(got), AmiActionTimeout)


def test_connection_lost_fails_every_pending_action():
    """Pending actions errback with AmiConnectionLost and their timers are cancelled."""
    h = ProtocolHarness()
    a = results(h.protocol.send_action("Ping"))
    b = results(h.protocol.send_action("QueueStatus"))
    h.lose()
    assert isinstance(only(a), AmiConnectionLost) and isinstance(only(b), AmiConnectionLost)
    assert h.clock.getDelayedCalls() == []
    assert isinstance(only(results(h.protocol.send_action("Ping"))), AmiConnectionLost)


def test_cancelling_an_action_forgets_it():
    """A cancelled Deferred stops waiting; the reply that comes later is ignored."""
    h = ProtocolHarness()
    d = h.protocol.send_action("Ping")
    d.addErrback(lambda f: None)
    d.cancel()
    assert h.protocol.pending_actions == 0 and h.clock.getDelayedCalls() == []


def test_header_injection_raises_before_anything_is_written():
    """A CR/LF in a value is our bug: LocalProtocolError, nothing on the wire."""
    h = ProtocolHarness()
    with pytest.raises(LocalProtocolError):
        h.protocol.send_action("Setvar", {"Variable": "X", "Value": "1\r\nAction: Hangup"})
    assert h.transport.value() == b""


# -- login ------------------------------------------------------------------------------------

def test_plain_login_sends_the_secret_and_asks_for_events():
    """Login carries Username/Secret/Events; the accepted reply marks the protocol logged in."""
    h = ProtocolHarness()
    got = results(h.protocol.login("hotline", "secret", events="call,agent"))
    login = h.sent()[0]
    assert [(k, v) for k, v in login.pairs() if k != "ActionID"] == [
        ("Action", "Login"), ("Username", "hotline"), ("Secret", "secret"), ("Events", "call,agent")]
    h.receive(rename_action_id(recorded_reply("h-1"), "h-1", login.action_id))
    assert only(got).message == "Authentication accepted"
    assert h.protocol.logged_in


def test_bad_login_fails_with_auth_error():
    """The recorded 'Authentication failed' reply becomes AmiAuthError."""
    h = ProtocolHarness(banner=False)
    got = results(h.protocol.login("hotline", "wrong"))
    reply = raw("ami_actions", "ami_badlogin")
    h.receive(rename_action_id(reply, "h-1", h.last_action_id()))
    error = only(got)
    assert isinstance(error, AmiAuthError) and error.message == "Authentication failed"
    assert not h.protocol.logged_in


def test_md5_login_answers_the_recorded_challenge_with_the_recorded_key():
    """Challenge 653526400 + secret gives the Key Asterisk accepted in the ami_md5 recording."""
    h = ProtocolHarness(banner=False)
    got = results(h.protocol.login("hotline", "secret", auth_type="md5"))
    challenge = h.sent()[0]
    assert (challenge.name, challenge["AuthType"]) == ("Challenge", "MD5")
    recorded = raw("ami_actions", "ami_md5").split(b"Response: Success\r\nActionID: h-2")[0]
    h.receive(rename_action_id(recorded, "h-1", challenge.action_id))
    login = h.sent()[0]
    recorded_login = AmiParser(expect_banner=False).feed(sent("ami_md5"))[1]
    assert login["Key"] == recorded_login["Key"] == hashlib.md5(b"653526400secret").hexdigest()
    assert "Secret" not in login
    h.receive({"Response": "Success", "ActionID": login.action_id,
               "Message": "Authentication accepted"})
    assert only(got).message == "Authentication accepted"


def test_actions_before_login_get_permission_denied():
    """The recorded pre-login refusal is an AmiActionError, not an auth error."""
    h = ProtocolHarness(banner=False)
    got = results(h.protocol.send_action("Ping", action_id="h-1"))
    h.receive(raw("ami_actions", "ami_noauth").split(b"Response: Error\r\nActionID: h-2")[0])
    error = only(got)
    assert type(error) is AmiActionError and error.message == "Permission denied"


# -- keep-alive, shutdown, odd input ------------------------------------------------------------

def test_keepalive_pings_on_the_clock_and_an_answered_ping_keeps_the_link():
    """Every interval a Ping goes out; a Pong keeps the connection."""
    h = ProtocolHarness()
    h.protocol.start_keepalive(30)
    h.clock.advance(30)
    ping = h.sent()[0]
    assert ping.name == "Ping"
    h.receive({"Response": "Success", "ActionID": ping.action_id, "Ping": "Pong"})
    h.clock.advance(30)
    assert h.sent()[0].name == "Ping"
    assert not h.transport.disconnected


def test_missed_ping_drops_the_connection():
    """A Ping unanswered for the interval aborts the transport (the client then reconnects)."""
    h = ProtocolHarness()
    h.protocol.start_keepalive(30)
    h.clock.advance(30)
    h.clock.advance(30)
    assert h.transport.disconnected


def test_keepalive_stops_when_the_connection_is_lost():
    """No Ping timer survives connectionLost."""
    h = ProtocolHarness()
    h.protocol.start_keepalive(30)
    h.lose()
    assert h.clock.getDelayedCalls() == []


def test_shutdown_event_is_noted_and_passed_on():
    """The recorded restart stream: Shutdown is remembered (Restart: True) and reaches on_event."""
    h = ProtocolHarness(banner=False)
    h.receive(raw("shutdown", "ami_restart"))
    assert h.protocol.shutdown_event["Restart"] == "True"
    assert [e.name for e in h.events] == ["FullyBooted", "SuccessfulAuth", "Shutdown"]
    h.lose()   # the EOF that follows is an ordinary loss


def test_unknown_events_are_passed_on_unchanged():
    """An event name nobody knows still reaches on_event with its headers."""
    h = ProtocolHarness()
    h.receive([("Event", "FutureThing"), ("Foo", "bar")])
    assert [(e.name, e["Foo"]) for e in h.events] == [("FutureThing", "bar")]


def test_garbage_is_counted_and_the_stream_goes_on():
    """Remote garbage increments protocol_errors and later events are delivered."""
    h = ProtocolHarness()
    h.receive(b"this is not a header\r\n\r\nEvent: After\r\n\r\n")
    assert h.protocol.protocol_errors == 1
    assert [e.name for e in h.events] == ["After"]


def test_async_originate_completes_on_its_originate_response():
    """The queued reply does not fire; the OriginateResponse with our ActionID does, and the
    tracker still sees that event."""
    h = ProtocolHarness()
    got = results(h.protocol.send_action("Originate", {"Channel": "Local/nosuch@agents/n"},
                                         action_id="h-19", completion_event="OriginateResponse"))
    h.receive(interleaved("ami_actions"))
    result = only(got)
    assert result.message == "Originate successfully queued"
    (event,) = result.events
    assert (event["Response"], event["Uniqueid"]) == ("Failure", "<unknown>")
    assert any(e.name == "OriginateResponse" and e.action_id == "h-19" for e in h.events)


def test_goodbye_response_completes_logoff():
    """Logoff fires with Response: Goodbye."""
    h = ProtocolHarness()
    got = results(h.protocol.send_action("Logoff", action_id="h-52"))
    h.receive(recorded_reply("h-52"))
    assert only(got).response.name == "Goodbye"
