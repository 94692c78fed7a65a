"""Call tracker rules not tied to one recording: unknown input, agents, direct calls,
IVR variables, bounded memory, and the event bus / pop publisher seams."""
from __future__ import annotations

import logging

import pytest

from cti.events import CallEnded, EventBus, InProcessPopPublisher, IvrJoined
from cti.tracker import CallTracker
from tracker_helpers import ReplayClock, ended_records, make_tracker, replay


def chan(event: str, uid: str, linkedid: str, name: str, **extra: str) -> dict:
    """A channel event as Asterisk 22 sends it (only the headers the tracker reads)."""
    return {"Event": event, "Uniqueid": uid, "Linkedid": linkedid, "Channel": name,
            "CallerIDNum": extra.pop("num", "5550000"), "CallerIDName": extra.pop("cname", "Caller"),
            "Context": "from-trunk", "Exten": "4000", **extra}


def test_unknown_events_are_ignored():
    """Events the tracker has no handler for produce nothing and change nothing."""
    tracker, _, published = make_tracker()
    assert tracker.handle({"Event": "PeerStatus", "Peer": "PJSIP/1001"}) == []
    assert tracker.handle({"Response": "Success"}) == []
    assert tracker.handle({}) == []
    assert published == [] and tracker.live_calls() == [] and tracker.agents() == []


def test_events_for_channels_never_seen_are_ignored():
    """A Hangup, VarSet or AgentConnect for an unknown channel does not invent a call."""
    tracker, _, _ = make_tracker()
    for event in (chan("Hangup", "9.1", "9.1", "PJSIP/x-1", Cause="16"),
                  chan("VarSet", "9.1", "9.1", "PJSIP/x-1", Variable="HOTLINE_SESSION", Value="s"),
                  chan("AgentConnect", "9.1", "9.1", "PJSIP/x-1", Queue="q", Interface="PJSIP/1")):
        assert tracker.handle(event) == []
    assert tracker.live_calls() == []


def test_late_events_after_the_end_do_not_resurrect_a_call():
    """A Newchannel repeated after its call ended is not a new call."""
    tracker, _, _ = make_tracker()
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/trunk-1"))
    assert [e.kind for e in tracker.handle(chan("Hangup", "1.1", "1.1", "PJSIP/trunk-1", Cause="16"))] == ["call_ended"]
    assert tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/trunk-1")) == []
    assert tracker.live_calls() == []


def test_ended_calls_leave_no_state_behind():
    """After the 50-call burst the tracker holds no call and no channel (bounded memory)."""
    tracker, clock, _ = make_tracker()
    replay(tracker, clock, "load_burst")
    assert tracker._calls == {} and tracker._channels == {}
    assert all(not q["callers"] for q in tracker.queues().values())


def test_caller_id_comes_from_the_first_channel():
    """The caller is the first channel's caller ID; later legs' IDs do not replace it."""
    tracker, _, _ = make_tracker()
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/trunk-1", num="13800138000", cname="Li"))
    tracker.handle(chan("Newchannel", "1.2", "1.1", "PJSIP/1001-2", num="1001", cname="Agent"))
    tracker.handle(chan("NewCallerid", "1.2", "1.1", "PJSIP/1001-2", num="1001", cname="Agent"))
    (call,) = tracker.live_calls()
    assert (call["caller_num"], call["caller_name"], call["dnid"]) == ("13800138000", "Li", "4000")


def test_direct_call_to_a_known_agent_is_answered_when_bridged():
    """A call that never queues is answered when a queue member's phone joins its bridge."""
    tracker, clock, _ = make_tracker()
    clock.now = 100.0
    tracker.handle({"Event": "QueueMemberAdded", "Queue": "support", "Interface": "PJSIP/1001",
                    "MemberName": "Ann", "StateInterface": "PJSIP/1001", "Paused": "0"})
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/trunk-00000001"))
    tracker.handle(chan("Newchannel", "1.2", "1.1", "PJSIP/1001-00000002"))
    clock.now = 104.0
    tracker.handle(chan("BridgeEnter", "1.2", "1.1", "PJSIP/1001-00000002", BridgeUniqueid="b1"))
    answered = tracker.handle(chan("BridgeEnter", "1.1", "1.1", "PJSIP/trunk-00000001",
                                   BridgeUniqueid="b1"))
    assert [e.kind for e in answered] == ["call_answered", "agent_state_changed"]
    assert (answered[0].agent, answered[0].queue, answered[0].uniqueid) == ("PJSIP/1001", None, "1.1")
    clock.now = 134.0
    tracker.handle(chan("Hangup", "1.2", "1.1", "PJSIP/1001-00000002", Cause="16"))
    (ended,) = [e for e in tracker.handle(chan("Hangup", "1.1", "1.1", "PJSIP/trunk-00000001",
                                               Cause="16", **{"Cause-txt": "Normal Clearing"}))
                if isinstance(e, CallEnded)]
    record = ended.record
    assert (record.disposition, record.agent, record.answered_at, record.talk_seconds,
            record.wait_seconds) == ("answered", "PJSIP/1001", 104.0, 30.0, None)
    assert tracker.agents()[0]["state"] == "available"


def test_ivr_variables_set_session_tier_and_voicemail_outcome():
    """HOTLINE_SESSION joins the IVR session, HOTLINE_TIER the tier, HOTLINE_OUTCOME the end."""
    tracker, _, _ = make_tracker()
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/trunk-1"))
    joined = tracker.handle(chan("VarSet", "1.1", "1.1", "PJSIP/trunk-1",
                                 Variable="HOTLINE_SESSION", Value="a" * 32))
    assert isinstance(joined[0], IvrJoined) and joined[0].ivr_session_id == "a" * 32
    assert tracker.handle(chan("VarSet", "1.1", "1.1", "PJSIP/trunk-1",
                               Variable="HOTLINE_SESSION", Value="a" * 32)) == []
    tracker.handle(chan("VarSet", "1.1", "1.1", "PJSIP/trunk-1", Variable="HOTLINE_TIER", Value="VIP"))
    tracker.handle(chan("VarSet", "1.1", "1.1", "PJSIP/trunk-1",
                        Variable="HOTLINE_OUTCOME", Value="voicemail"))
    (ended,) = tracker.handle(chan("Hangup", "1.1", "1.1", "PJSIP/trunk-1", Cause="16"))
    assert (ended.record.ivr_session_id, ended.record.tier, ended.record.disposition) == (
        "a" * 32, "vip", "voicemail")


def test_an_unlisted_tier_is_not_recorded():
    """A HOTLINE_TIER outside vip/key/regular is untrusted input and is dropped."""
    tracker, _, _ = make_tracker()
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/trunk-1"))
    tracker.handle(chan("VarSet", "1.1", "1.1", "PJSIP/trunk-1", Variable="HOTLINE_TIER",
                        Value="platinum'; DROP"))
    assert tracker.live_calls()[0]["tier"] is None


def test_agent_ringing_includes_the_ivr_session():
    """The pop for a call that went through the IVR carries its session id and tier."""
    tracker, _, _ = make_tracker()
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/trunk-1"))
    tracker.handle(chan("VarSet", "1.1", "1.1", "PJSIP/trunk-1", Variable="HOTLINE_SESSION", Value="s1"))
    tracker.handle(chan("VarSet", "1.1", "1.1", "PJSIP/trunk-1", Variable="HOTLINE_TIER", Value="key"))
    tracker.handle(chan("QueueCallerJoin", "1.1", "1.1", "PJSIP/trunk-1", Queue="support",
                        Position="1", Count="1"))
    ring = tracker.handle(chan("AgentCalled", "1.1", "1.1", "PJSIP/trunk-1", Queue="support",
                               Interface="PJSIP/1001", MemberName="Ann",
                               DestChannel="PJSIP/1001-2", DestUniqueid="1.2"))[0]
    assert (ring.kind, ring.ivr_session_id, ring.tier, ring.agent) == (
        "agent_ringing", "s1", "key", "PJSIP/1001")


def test_queue_positions_move_up_when_a_caller_leaves():
    """Callers behind one who leaves move up one place, as app_queue does."""
    tracker, _, _ = make_tracker()
    for n in (1, 2, 3):
        tracker.handle(chan("Newchannel", f"{n}.1", f"{n}.1", f"PJSIP/t-{n}"))
        tracker.handle(chan("QueueCallerJoin", f"{n}.1", f"{n}.1", f"PJSIP/t-{n}", Queue="q",
                            Position=str(n), Count=str(n)))
    tracker.handle(chan("QueueCallerLeave", "1.1", "1.1", "PJSIP/t-1", Queue="q", Position="1"))
    assert [(c["linkedid"], c["position"]) for c in tracker.queues()["q"]["callers"]] == [
        ("2.1", 1), ("3.1", 2)]


def test_agent_pause_and_membership_states_from_ami_actions():
    """ami_actions: QueuePause with reasons, QueueAdd/QueueRemove give agent_events states."""
    tracker, clock, _ = make_tracker()
    events = replay(tracker, clock, "ami_actions")
    changes = [(e.agent_name, e.state, e.queue, e.reason) for e in events
               if e.kind == "agent_state_changed" and e.linkedid is None]
    # queue_log: PAUSE|lunch, UNPAUSE, PAUSEALL|break + PAUSE|break, UNPAUSE, ADDMEMBER, REMOVEMEMBER
    assert changes == [
        ("Agent One", "paused", "support", "lunch"), ("Agent One", "unpaused", "support", None),
        ("Agent Two", "paused", "support", "break"), ("Agent Two", "unpaused", "support", None),
        ("Agent Three", "logged_in", "sales", None), ("Agent Three", "logged_out", "sales", None)]
    # the Grace call carried HOTLINE_TIER=vip (Setvar in ami.sent)
    grace = ended_records(events)["1795389045.0"]
    assert (grace.tier, grace.disposition, grace.agent_name) == ("vip", "answered", "Agent Long")
    # Walter is still waiting in queue noanswer when the recording ends
    assert [c["linkedid"] for c in tracker.queues()["noanswer"]["callers"]] == ["1795389046.4"]


def test_paused_agent_returns_to_paused_after_a_call():
    """An agent paused during a call is paused, not available, once the call is over."""
    tracker, clock, _ = make_tracker()
    tracker.handle({"Event": "QueueMemberAdded", "Queue": "q", "Interface": "PJSIP/1", "MemberName": "A"})
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/t-1"))
    tracker.handle(chan("QueueCallerJoin", "1.1", "1.1", "PJSIP/t-1", Queue="q", Position="1"))
    tracker.handle(chan("AgentCalled", "1.1", "1.1", "PJSIP/t-1", Queue="q", Interface="PJSIP/1",
                        MemberName="A", DestChannel="PJSIP/1-2", DestUniqueid="1.2"))
    tracker.handle(chan("Newchannel", "1.2", "1.1", "PJSIP/1-2"))
    tracker.handle(chan("AgentConnect", "1.1", "1.1", "PJSIP/t-1", Queue="q", Interface="PJSIP/1",
                        MemberName="A", DestChannel="PJSIP/1-2", DestUniqueid="1.2"))
    paused = tracker.handle({"Event": "QueueMemberPause", "Queue": "q", "Interface": "PJSIP/1",
                             "MemberName": "A", "Paused": "1", "PausedReason": "after call"})
    assert [(e.state, e.reason) for e in paused] == [("paused", "after call")]
    assert tracker.agents()[0]["state"] == "talking"
    done = tracker.handle(chan("AgentComplete", "1.1", "1.1", "PJSIP/t-1", Queue="q",
                               Interface="PJSIP/1", MemberName="A", Reason="caller"))
    assert [(e.state, e.previous, e.reason) for e in done] == [("paused", "talking", "after call")]


def test_wrap_up_uses_the_queue_setting_and_ends_on_tick():
    """With a wrap-up time, AgentComplete leads to wrap_up, and tick() ends it when due."""
    tracker, clock, _ = make_tracker(wrapup_seconds={"support": 10})
    events = replay(tracker, clock, "queue_answered")
    agent_one = [e.state for e in events
                 if e.kind == "agent_state_changed" and e.agent == "Local/agent1@agents/n"]
    # call A's wrap-up is cut short by call B ringing (3 s later, queue_log ENTERQUEUE)
    assert agent_one == ["ringing", "talking", "wrap_up", "ringing", "talking", "wrap_up"]
    end = max(e.at for e in events)
    assert tracker.tick(end + 5) == []
    (back,) = tracker.tick(end + 10.5)
    assert (back.agent, back.state, back.previous) == ("Local/agent1@agents/n", "available", "wrap_up")


def test_member_wrapuptime_wins_over_the_queue_setting():
    """A member's own Wrapuptime (QueueMember* events) is used when non-zero."""
    tracker, clock, _ = make_tracker(wrapup_seconds={"q": 60})
    tracker.handle({"Event": "QueueMemberAdded", "Queue": "q", "Interface": "PJSIP/1",
                    "MemberName": "A", "Wrapuptime": "5"})
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/t-1"))
    tracker.handle(chan("AgentConnect", "1.1", "1.1", "PJSIP/t-1", Queue="q", Interface="PJSIP/1",
                        MemberName="A", DestChannel="PJSIP/1-2", DestUniqueid="1.2"))
    tracker.handle(chan("AgentComplete", "1.1", "1.1", "PJSIP/t-1", Queue="q", Interface="PJSIP/1"))
    assert tracker.tick(clock.now + 4.9) == []
    assert [e.state for e in tracker.tick(clock.now + 5)] == ["available"]


def test_event_bus_isolates_a_failing_subscriber(caplog):
    """One subscriber raising is logged; the others still get the event."""
    bus = EventBus()
    got = []
    bus.subscribe(lambda e: 1 / 0)
    bus.subscribe(got.append, kinds=["call_started"])
    tracker = CallTracker(ReplayClock(5.0), bus=bus)
    with caplog.at_level(logging.ERROR, logger="cti.events"):
        tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/t-1"))
    assert [e.kind for e in got] == ["call_started"]
    assert "subscriber_failed" in caplog.text


def test_event_bus_kind_filter_and_unsubscribe():
    """Subscribing to kinds filters; unsubscribing stops delivery; unknown kinds are refused."""
    bus = EventBus()
    got = []
    stop = bus.subscribe(got.append, kinds=["call_ended"])
    tracker = CallTracker(ReplayClock(5.0), bus=bus)
    tracker.handle(chan("Newchannel", "1.1", "1.1", "PJSIP/t-1"))
    tracker.handle(chan("Hangup", "1.1", "1.1", "PJSIP/t-1", Cause="16"))
    assert [e.kind for e in got] == ["call_ended"]
    stop()
    tracker.handle(chan("Newchannel", "2.1", "2.1", "PJSIP/t-2"))
    tracker.handle(chan("Hangup", "2.1", "2.1", "PJSIP/t-2", Cause="16"))
    assert len(got) == 1
    with pytest.raises(ValueError, match="call_startd"):
        bus.subscribe(got.append, kinds=["call_startd"])


def test_in_process_pop_publisher_reaches_only_that_agent():
    """A pop goes to the receivers of its agent, and stops after unsubscribe."""
    pops = InProcessPopPublisher()
    ann, bob = [], []
    stop_ann = pops.subscribe("PJSIP/1001", ann.append)
    pops.subscribe("PJSIP/1002", bob.append)
    assert pops.publish("PJSIP/1001", {"linkedid": "1.1"}) == 1
    assert (ann, bob) == ([{"linkedid": "1.1"}], [])
    stop_ann()
    assert pops.publish("PJSIP/1001", {"linkedid": "1.2"}) == 0
    assert pops.publish("PJSIP/9999", {}) == 0
