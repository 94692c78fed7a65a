"""Robustness of the AMI parser, the call tracker and resync (cti/) against events
Asterisk (or a broken link) may send: missing headers, wrong order, duplicates, storms,
garbage bytes, garbled list items after a reconnect.

The rule checked: nothing raises, memory stays bounded (ended calls are forgotten), and
every call that ends, however it ends, leaves a complete record (``CallEnded``).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cti.ami.parser import AmiMessage, AmiParser
from cti.events import CallEnded
from cti.resync import resync
from cti.tracker import CallTracker

HANDLED = ["Newchannel", "NewCallerid", "Newexten", "VarSet", "Rename", "HangupRequest",
           "SoftHangupRequest", "Hangup", "QueueCallerJoin", "QueueCallerLeave",
           "QueueCallerAbandon", "AgentCalled", "AgentRingNoAnswer", "AgentConnect",
           "AgentComplete", "DialEnd", "BridgeEnter", "BridgeLeave", "Hold", "Unhold",
           "BlindTransfer", "AttendedTransfer", "QueueMemberAdded", "QueueMemberRemoved",
           "QueueMemberPause", "QueueMemberPaused", "QueueMemberStatus", "Shutdown"]
HEADERS = ["Uniqueid", "Linkedid", "Channel", "DestUniqueid", "DestChannel", "Interface", "Queue",
           "MemberName", "Variable", "Value", "Cause", "Cause-txt", "Position", "Count",
           "BridgeUniqueid", "Context", "Exten", "Application", "Paused", "PausedReason",
           "Wrapuptime", "RingTime", "Result", "TransfereeLinkedid", "TransfereeUniqueid",
           "TransfererUniqueid", "OrigBridgeUniqueid", "SecondBridgeUniqueid", "Newname",
           "CallerIDNum", "CallerIDName", "StateInterface", "Location", "DialStatus"]
VALUES = ["1.1", "1.2", "2.1", "", "0", "-1", "x", "PJSIP/100-1", "Local/1@a-0001;1", "support",
          "HOTLINE_SESSION", "HOTLINE_OUTCOME", "HOTLINE_TIER", "QUEUESTATUS", "BLINDTRANSFER",
          "TIMEOUT", "vip", "voicemail", "ANSWER", "CANCEL", "Success", "4", "nan", "1e400",
          "99999999999999999999999", "é\x00", "<unknown>"]


class Clock:
    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _tracker():
    clock = Clock()
    tracker = CallTracker(clock=clock)
    ended: list[CallEnded] = []
    tracker.bus.subscribe(ended.append, kinds=["call_ended"])
    return tracker, clock, ended


def _start(tracker, uid, linkedid=None, channel="PJSIP/cust-1"):
    tracker.handle({"Event": "Newchannel", "Uniqueid": uid, "Linkedid": linkedid or uid,
                    "Channel": channel, "CallerIDNum": "13800000001", "Exten": "4000"})


def _hangup(tracker, uid, linkedid=None):
    tracker.handle({"Event": "Hangup", "Uniqueid": uid, "Linkedid": linkedid or uid, "Cause": "16"})


# ---------------------------------------------------------------- tracker: hostile events

EVENTS = st.builds(
    lambda name, headers: {"Event": name, **headers},
    st.sampled_from(HANDLED + ["UnknownThing", ""]),
    st.dictionaries(st.sampled_from(HEADERS), st.sampled_from(VALUES), max_size=8),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENTS, max_size=80))
def test_any_sequence_of_half_formed_events_never_raises(events):
    """Handled event names with random (missing, empty, garbled) headers in any order:
    handle(), tick() and the snapshots never raise."""
    tracker, clock, _ = _tracker()
    for event in events:
        tracker.handle(event)
        clock.now += 0.5
    tracker.tick(clock.now + 10 ** 6)
    tracker.live_calls()
    tracker.agents()
    tracker.queues()


@pytest.mark.parametrize("event", [
    {"Event": "Hangup"},
    {"Event": "Hangup", "Uniqueid": "1.1"},                       # no Linkedid
    {"Event": "AgentConnect", "Uniqueid": "1.1", "Linkedid": "1.1", "Interface": "PJSIP/agent"},
    {"Event": "AgentConnect", "Uniqueid": "1.1", "Linkedid": "1.1"},   # no Queue, no Interface
    {"Event": "BridgeEnter", "Uniqueid": "9.9", "Linkedid": "9.9", "BridgeUniqueid": "b"},
    {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "HOTLINE_SESSION", "Value": ""},
    {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "HOTLINE_OUTCOME"},
    {"Event": "VarSet", "Uniqueid": "1.1"},
    {"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Linkedid": "1.1"},  # no Queue
    {"Event": "AgentCalled", "Linkedid": "1.1"},
    {"Event": "AgentComplete", "Interface": "PJSIP/never-seen"},
    {"Event": "QueueMemberPause", "Interface": "PJSIP/a", "Queue": "q", "Paused": "maybe"},
    {"Event": "BlindTransfer"},
    {"Event": "AttendedTransfer", "Result": "Success"},
    {"Event": "Shutdown"},
    {},
    {"Event": None},
])
def test_one_half_formed_event_on_a_live_call_never_raises(event):
    """Each event with headers missing, on a tracker holding one live call: no exception,
    and the live call is still there (or properly ended with a record)."""
    tracker, _, ended = _tracker()
    _start(tracker, "1.1")
    tracker.handle(event)
    assert len(tracker.live_calls()) + len(ended) == 1


def test_hangup_before_newchannel_is_ignored():
    """A Hangup for a channel never seen does nothing; the call seen afterwards is tracked."""
    tracker, _, ended = _tracker()
    _hangup(tracker, "1.1")
    assert tracker.live_calls() == [] and ended == []
    _start(tracker, "2.1")
    _hangup(tracker, "2.1")
    assert [e.linkedid for e in ended] == ["2.1"]


def test_a_duplicated_newchannel_does_not_make_a_second_call():
    """The same Newchannel twice: one call, ended once."""
    tracker, _, ended = _tracker()
    _start(tracker, "1.1")
    _start(tracker, "1.1")
    _hangup(tracker, "1.1")
    _hangup(tracker, "1.1")
    assert [e.linkedid for e in ended] == ["1.1"]


def test_a_late_newchannel_for_an_ended_call_does_not_resurrect_it():
    """A channel of a Linkedid already closed is ignored (no call that never ends)."""
    tracker, _, ended = _tracker()
    _start(tracker, "1.1")
    _hangup(tracker, "1.1")
    _start(tracker, "1.2", linkedid="1.1", channel="Local/x-1;2")
    assert tracker.live_calls() == []
    assert len(ended) == 1


def test_a_storm_of_unknown_events_leaves_no_state():
    """100 000 events nobody handles: no call, agent or queue is created."""
    tracker, _, _ = _tracker()
    for n in range(100_000):
        tracker.handle({"Event": f"RTCPSent{n % 7}", "Uniqueid": f"{n}.1", "Linkedid": f"{n}.1"})
    assert tracker.live_calls() == [] and tracker.agents() == [] and tracker.queues() == {}


def test_ended_calls_are_forgotten_and_memory_stays_bounded():
    """20 000 calls that start and end: none stays live, each gives one record, and the
    duplicate guard keeps at most its fixed number of ids."""
    tracker, _, ended = _tracker()
    for n in range(20_000):
        uid = f"{n}.1"
        _start(tracker, uid)
        tracker.handle({"Event": "Newchannel", "Uniqueid": f"{n}.2", "Linkedid": uid,
                        "Channel": "Local/agent-1;1"})
        _hangup(tracker, f"{n}.2", uid)
        _hangup(tracker, uid)
    assert tracker.live_calls() == []
    assert len(ended) == 20_000
    assert len(tracker._channels) == 0 and len(tracker._calls) == 0
    assert len(tracker._recently_ended) <= 10_000


def test_the_same_linkedid_reused_after_the_duplicate_window_starts_a_new_call():
    """Linkedids are unique in practice; if one comes back much later, it is a new call."""
    tracker, _, ended = _tracker()
    _start(tracker, "0.1")
    _hangup(tracker, "0.1")
    for n in range(1, 10_002):          # push 0.1 out of the recently-ended window
        _start(tracker, f"{n}.1")
        _hangup(tracker, f"{n}.1")
    _start(tracker, "0.1")
    assert [c["linkedid"] for c in tracker.live_calls()] == ["0.1"]


def test_an_absurd_wrapup_time_does_not_lock_an_agent_in_wrap_up():
    """A non-finite Wrapuptime is ignored (treated as unknown), so wrap-up ends."""
    tracker, clock, _ = _tracker()
    tracker.handle({"Event": "QueueMemberAdded", "Queue": "q", "Interface": "PJSIP/agent1",
                    "MemberName": "A", "Wrapuptime": "1e999", "Paused": "0"})
    _start(tracker, "2.1")
    tracker.handle({"Event": "QueueCallerJoin", "Uniqueid": "2.1", "Linkedid": "2.1", "Queue": "q"})
    tracker.handle({"Event": "AgentConnect", "Uniqueid": "2.1", "Linkedid": "2.1", "Queue": "q",
                    "Interface": "PJSIP/agent1", "DestUniqueid": "2.2"})
    _hangup(tracker, "2.1")
    tracker.tick(clock.now + 10 ** 9)
    assert [a["state"] for a in tracker.agents()] == ["available"]


# ---------------------------------------------------------------- resync

def test_resync_closes_a_call_that_ended_while_disconnected():
    """A call whose channels are gone after a reconnect ends with a complete record,
    at the moment the link was lost."""
    tracker, _, ended = _tracker()
    _start(tracker, "1.1")
    tracker.on_disconnect(at=1_010.0)
    resync(tracker, [], [], now=1_100.0)
    assert [(e.linkedid, e.record.close_reason, e.record.ended_at) for e in ended] == [
        ("1.1", "resync_missing", 1_010.0)]
    assert tracker.live_calls() == [] and tracker.disconnected_at is None


@pytest.mark.parametrize("items", [
    [{"Event": "CoreShowChannel"}],                                   # no Uniqueid
    [{"Event": "CoreShowChannel", "Uniqueid": "5.1", "Duration": "garbage"}],
    [{"Event": "CoreShowChannel", "Uniqueid": "5.1", "Linkedid": "", "Duration": "-1:-1:-1"}],
    [{"Event": "SomethingElse", "Uniqueid": "5.1"}],
])
def test_resync_tolerates_odd_channel_items(items):
    """CoreShowChannel items with missing or garbled fields never stop a resync."""
    tracker, _, _ = _tracker()
    resync(tracker, items, [], now=1_100.0)
    assert tracker.disconnected_at is None


@pytest.mark.parametrize("entry", [
    {"Event": "QueueEntry", "Queue": "support", "Uniqueid": "9.9", "Position": "x"},
    {"Event": "QueueEntry", "Queue": "support", "Uniqueid": "2.1", "Wait": "abc"},
])
def test_a_garbled_queue_entry_does_not_lose_the_calls_resync_closed(entry):
    """After a reconnect, a call that ended meanwhile still gets its record even if a
    QueueStatus item is garbled; resync completes."""
    tracker, _, ended = _tracker()
    _start(tracker, "1.1")                      # ends while the link is down
    _start(tracker, "2.1")                      # still up, waiting in the queue
    still_up = [{"Event": "CoreShowChannel", "Uniqueid": "2.1", "Linkedid": "2.1",
                 "Channel": "PJSIP/cust-1", "Duration": "00:01:00"}]
    tracker.on_disconnect(at=1_010.0)
    try:
        resync(tracker, still_up, [{"Event": "QueueParams", "Queue": "support"}, entry], now=1_100.0)
    finally:
        assert [e.linkedid for e in ended] == ["1.1"]
    assert tracker.disconnected_at is None


def test_a_resync_step_failing_still_publishes_the_calls_it_closed(monkeypatch):
    """Even if a later part of resync fails (a bug, an item nobody foresaw), the calls it
    already closed get their CallEnded and the tracker no longer counts itself disconnected."""
    import cti.resync as resync_module

    def broken(*_args):
        raise RuntimeError("unexpected item")

    monkeypatch.setattr(resync_module, "_rebuild_entries", broken)
    tracker, _, ended = _tracker()
    _start(tracker, "1.1")
    tracker.on_disconnect(at=1_010.0)
    with pytest.raises(RuntimeError):
        resync(tracker, [], [], now=1_100.0)
    assert [e.linkedid for e in ended] == ["1.1"]
    assert tracker.disconnected_at is None


@pytest.mark.parametrize("position, wait", [("-3", "1e999"), ("0", "-50"), ("x", "nan")])
def test_an_odd_queue_entry_position_or_wait_is_replaced_by_a_sane_one(position, wait):
    """A QueueEntry with a non-positive Position or a non-finite/negative Wait still
    lists the caller, at the end of the queue, joined no later than now."""
    tracker, _, _ = _tracker()
    _start(tracker, "2.1")
    items = [{"Event": "CoreShowChannel", "Uniqueid": "2.1", "Linkedid": "2.1",
              "Channel": "PJSIP/cust-1", "Duration": "00:01:00"}]
    entries = [{"Event": "QueueParams", "Queue": "support"},
               {"Event": "QueueEntry", "Queue": "support", "Uniqueid": "2.1",
                "Position": position, "Wait": wait}]
    resync(tracker, items, entries, now=1_100.0)
    caller = tracker._queue("support").callers["2.1"]
    assert caller.position >= 1 and caller.joined_at <= 1_100.0


# ---------------------------------------------------------------- parser

JUNK = st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b": ", b":", b"Event: ", b"Response: ",
                                 b"ActionID: ", b"\r\n\r\n", b"\n\n", b"\xff\xfe", b"\x00",
                                 b"x" * 50, "é".encode(), b"Output: ", b" "]), max_size=30).map(b"".join)
GOOD_EVENT = b"Event: Hangup\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\nCause: 16\r\n\r\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=JUNK, cuts=st.lists(st.integers(1, 40), max_size=20), limit=st.sampled_from([64, 4096]))
def test_garbage_never_raises_and_never_swallows_the_next_message(junk, cuts, limit):
    """Junk bytes (then a blank line) before a good event, fed in any chunks: feed() never
    raises, every message reads without error, and the good event comes out intact."""
    parser = AmiParser(max_message_size=limit)
    data = b"Asterisk Call Manager/11.0.0\r\n" + junk + b"\r\n\r\n" + GOOD_EVENT
    items, at = [], 0
    for cut in cuts + [len(data)]:
        items += parser.feed(data[at:at + cut])
        at += cut
    items += parser.feed_eof()
    messages = [i for i in items if isinstance(i, AmiMessage)]
    for message in messages:
        message.pairs()
        message.get("Uniqueid")
    assert any(m.name == "Hangup" and m.get("Linkedid") == "1.1" and m.get("Cause") == "16"
               for m in messages)


def test_parsed_garbage_events_go_through_the_tracker():
    """Whatever the parser makes of junk, the tracker takes it without raising."""
    parser = AmiParser(expect_banner=False)
    tracker, _, _ = _tracker()
    raw = (b"Event: Hangup\r\nno colon here\r\n\r\nEvent: Newchannel\r\nUniqueid\r\n\r\n"
           b"Event: VarSet\nVariable: HOTLINE_OUTCOME\n\n:\r\n\r\nEvent: \r\n\r\n")
    for item in parser.feed(raw):
        if isinstance(item, AmiMessage):
            tracker.handle(item)
    assert tracker.live_calls() == []
