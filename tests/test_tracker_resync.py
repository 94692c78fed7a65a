"""Resync after a reconnect: calls that ended unseen are closed as complete records,
calls and queue state Asterisk still has are rebuilt from CoreShowChannels/QueueStatus."""
from __future__ import annotations

from cti.resync import parse_duration, resync
from tracker_helpers import ended_records, list_events, make_tracker, replay

CALL_A = "1795388618.6"   # queue_answered call A: Alice, answered by Agent One


def cut_queue_answered_mid_call_a():
    """queue_answered replayed until call A is talking; the stream is then lost."""
    tracker, clock, published = make_tracker()
    replay(tracker, clock, "queue_answered", stop=lambda e: e.get("Event") == "AgentComplete")
    tracker.on_disconnect(clock.now)
    return tracker, clock, published


def core_show_channels(tracker, linkedid):
    """The CoreShowChannel items Asterisk would list for a call the tracker has."""
    call = tracker.call(linkedid)
    return [{"Event": "CoreShowChannel", "Uniqueid": uid, "Linkedid": linkedid,
             "Channel": ch.name, "Duration": "00:00:05", "BridgeId": ch.bridge or ""}
            for uid, ch in call.channels.items()]


def test_hangup_missed_during_a_disconnect_is_closed_at_resync():
    """A call absent from CoreShowChannels after the reconnect ends as resync_missing."""
    tracker, clock, _ = cut_queue_answered_mid_call_a()
    lost_at = clock.now
    assert tracker.call(CALL_A).state() == "talking"
    events = resync(tracker, [], [], now=lost_at + 30)
    record = ended_records(events)[CALL_A]
    assert (record.close_reason, record.disposition, record.agent_name, record.queue) == (
        "resync_missing", "answered", "Agent One", "support")
    assert record.ended_at == lost_at            # the last moment we knew it was up
    assert round(record.wait_seconds) == 2       # queue_log: CONNECT|2|...
    assert 5 < record.talk_seconds < 6.5         # talking ~6 s until AgentComplete (cut)
    assert tracker.live_calls() == []
    states = {a["agent"]: a["state"] for a in tracker.agents()}
    assert states["Local/agent1@agents/n"] == "available"
    assert tracker.disconnected_at is None


def test_a_call_still_up_survives_resync():
    """A call Asterisk still lists is kept as it was; nothing is emitted for it."""
    tracker, clock, _ = cut_queue_answered_mid_call_a()
    listed = core_show_channels(tracker, CALL_A)
    assert resync(tracker, listed, [], now=clock.now + 1) == []
    assert tracker.call(CALL_A).state() == "talking"


def test_resync_is_idempotent():
    """A second resync with the same lists changes nothing."""
    tracker, clock, _ = make_tracker()
    channels = list_events("ami_actions", {"CoreShowChannel"})[:8]
    queue_items = [e for e in list_events("ami_actions", {"QueueParams", "QueueMember", "QueueEntry"})
                   if e.get("ActionID") == "h-6"]
    assert resync(tracker, channels, queue_items, now=1795389047.0) != []
    assert resync(tracker, channels, queue_items, now=1795389048.0) == []


def test_resync_from_scratch_rebuilds_calls_agents_and_queues():
    """ami_actions' CoreShowChannels + QueueStatus replies rebuild a fresh tracker."""
    tracker, _, published = make_tracker()
    channels = [e for e in list_events("ami_actions", {"CoreShowChannel"}) if e["ActionID"] == "h-5"]
    queue_items = [e for e in list_events("ami_actions", {"QueueParams", "QueueMember", "QueueEntry"})
                   if e.get("ActionID") == "h-6"]
    now = 1795389047.0
    events = resync(tracker, channels, queue_items, now=now)
    assert events == published
    calls = {c["linkedid"]: c for c in tracker.live_calls()}
    # README: Grace (5550200) talks to Agent Long; Walter (5550201) waits in noanswer
    assert set(calls) == {"1795389045.0", "1795389046.4"}
    grace, walter = calls["1795389045.0"], calls["1795389046.4"]
    assert (grace["caller_num"], grace["caller_name"], grace["state"], grace["agent"]) == (
        "5550200", "Grace Actions", "talking", "Local/agentL@agents/n")
    assert grace["started_at"] == now - 2        # CoreShowChannel Duration: 00:00:02
    assert (walter["caller_num"], walter["state"], walter["queue"]) == ("5550201", "queued", "noanswer")
    assert walter["queue_entered_at"] == now - 1  # QueueEntry Wait: 1
    queues = tracker.queues()
    assert queues["noanswer"]["callers"][0]["position"] == 1
    assert queues["support"]["members"] == ["Local/agent1@agents/n", "Local/agent2@agents/n"]
    assert len(queues["burst"]["members"]) == 10 and queues["sales"]["members"] == []
    assert queues["support"]["strategy"] == "ringall"
    states = {a["agent"]: a["state"] for a in tracker.agents()}
    assert states["Local/agentL@agents/n"] == "talking"
    assert states["Local/agent1@agents/n"] == "available"
    started = [e.linkedid for e in events if e.kind == "call_started"]
    assert sorted(started) == ["1795389045.0", "1795389046.4"]


def test_members_gone_while_away_are_logged_out():
    """A member missing from QueueStatus of a queue it was in is logged out of it."""
    tracker, clock, _ = make_tracker()
    tracker.handle({"Event": "QueueMemberAdded", "Queue": "q", "Interface": "PJSIP/1", "MemberName": "A"})
    events = resync(tracker, [], [{"Event": "QueueParams", "Queue": "q"}], now=50.0)
    assert [(e.agent, e.state, e.queue) for e in events] == [("PJSIP/1", "logged_out", "q")]
    assert tracker.agents()[0]["state"] == "logged_out"


def test_calls_up_at_shutdown_are_closed_as_shutdown_by_resync():
    """A call still up when the Shutdown event came is closed as 'shutdown' at resync."""
    tracker, clock, _ = make_tracker()
    replay(tracker, clock, "shutdown", stop=lambda e: e.get("Event") == "SoftHangupRequest")
    linkedid = "1795388864.0"
    assert tracker.call(linkedid).state() == "talking"
    tracker.handle({"Event": "Shutdown", "Shutdown": "Cleanly", "Restart": "True"})
    tracker.on_disconnect(clock.now)
    record = ended_records(resync(tracker, [], [], now=clock.now + 1))[linkedid]
    assert (record.close_reason, record.disposition) == ("shutdown", "answered")
    assert not tracker.shutdown_seen


def test_parse_duration():
    """CoreShowChannel Duration is HH:MM:SS."""
    assert parse_duration("01:02:03") == 3723.0
    assert parse_duration("") == 0.0 and parse_duration("junk") == 0.0
