"""Every recorded Asterisk 22 scenario, replayed through the tracker: the call records
must say what the scenario's README, queue_log and asterisk.log say happened.

Expected values are literals read from those files (cited next to each one). Durations
come from the replay clock (ami.timing), Asterisk's queue_log holds whole seconds, so
wait/talk are compared rounded to the second.
"""
from __future__ import annotations

import pytest

from tracker_helpers import ended_records, kinds, make_tracker, replay, timed_events


def summary(record) -> dict:
    """The fields a supervisor reads in a call record, durations rounded to the second."""
    def rounded(value):
        return None if value is None else round(value)
    return {
        "caller": (record.caller_num, record.caller_name), "dnid": record.dnid,
        "queue": record.queue, "agent": record.agent, "agent_name": record.agent_name,
        "answered": record.answered_at is not None, "wait": rounded(record.wait_seconds),
        "talk": rounded(record.talk_seconds), "hold": round(record.hold_seconds),
        "disposition": record.disposition,
        "transfers": [(t["kind"], t["from"], t["to"]) for t in record.transfers],
        "hangup_cause": (record.hangup_cause, record.hangup_cause_text),
        "ivr": record.ivr_entered_at is not None, "ivr_session_id": record.ivr_session_id,
        "close_reason": record.close_reason,
    }


NOT_QUEUED = {"queue": None, "agent": None, "agent_name": None, "answered": False,
              "wait": None, "talk": None, "hold": 0, "transfers": [], "ivr_session_id": None,
              "close_reason": "hangup"}


def run(scenario: str, **kwargs):
    tracker, clock, published = make_tracker(**kwargs)
    events = replay(tracker, clock, scenario)
    assert events == published, "handle() returns exactly what it publishes"
    return tracker, events, ended_records(events)


def check_record_invariants(record) -> None:
    """Times are ordered and the record is complete."""
    assert record.ended_at is not None and record.close_reason is not None
    assert record.started_at <= record.ended_at
    for moment in (record.ivr_entered_at, record.queue_entered_at, record.answered_at,
                   record.queue_left_at):
        if moment is not None:
            assert record.started_at <= moment <= record.ended_at
    if record.answered_at is not None and record.queue_entered_at is not None:
        assert record.queue_entered_at <= record.answered_at


# -- IVR only ------------------------------------------------------------------------------

def test_ivr_dtmf_is_an_ivr_only_call_ended_by_the_ivr():
    """ivr_dtmf: the IVR answers, reads keys and hangs up itself; nobody queues."""
    tracker, events, records = run("ivr_dtmf")
    assert list(records) == ["1795388557.0"]          # Newchannel ...;1 Uniqueid = Linkedid
    record = records["1795388557.0"]
    check_record_invariants(record)
    assert summary(record) == dict(
        NOT_QUEUED,
        caller=("5551234", "Alice Caller"),          # README: CallerID="Alice Caller" <5551234>
        dnid="main",                                  # Local/main@ivr-in
        disposition="ivr_only", ivr=True,             # [ivr-in] main runs AGI(agi://...)
        hangup_cause=(0, "Unknown"),                  # the IVR's own HANGUP: ;1 Hangup Cause: 0
    )
    assert tracker.live_calls() == []


def test_ivr_caller_hangup_is_an_ivr_only_call_with_normal_clearing():
    """ivr_caller_hangup: the caller hangs up (AMI Hangup Cause=16) during a prompt."""
    _, _, records = run("ivr_caller_hangup")
    record = records["1795388589.2"]                 # Local/longprompt@ivr-in-00000001;1
    check_record_invariants(record)
    assert summary(record) == dict(
        NOT_QUEUED, caller=("5551234", "Alice Caller"), dnid="longprompt",
        disposition="ivr_only", ivr=True,
        hangup_cause=(16, "Normal Clearing"),         # README: Hangup Cause: 16 / Normal Clearing
    )
    # asterisk.log: the AGI only returns (and ;2 hangs up) once the script closes the
    # socket, ~8 s after the caller left; the call ends with its last channel.
    assert record.ended_at - record.started_at > 8


def test_classic_agi_is_an_ivr_only_call():
    """classic_agi: the agi-bin script runs, the dialplan continues and hangs up."""
    _, _, records = run("classic_agi")
    record = records["1795388608.4"]                 # Local/classic@ivr-in-00000002;1
    check_record_invariants(record)
    assert summary(record) == dict(
        NOT_QUEUED, caller=("5551234", "Alice Caller"), dnid="classic",
        disposition="ivr_only", ivr=True, hangup_cause=(16, "Normal Clearing"))


# -- IVR into a queue ------------------------------------------------------------------------

def test_ivr_to_queue_is_answered_by_burst_01():
    """ivr_to_queue: the IVR runs EXEC Queue burst; Burst 01 answers and hangs up."""
    _, events, records = run("ivr_to_queue")
    record = records["1795388889.0"]
    check_record_invariants(record)
    assert summary(record) == {
        "caller": ("5550400", "Ivy Queue"), "dnid": "burst",      # README Originate
        "queue": "burst", "agent": "Local/b01@agents/n", "agent_name": "Burst 01",
        "answered": True,
        "wait": 1,        # queue_log: CONNECT|1|1795388892.2|1
        "talk": 4,        # queue_log: COMPLETEAGENT|1|4|1
        "hold": 0, "disposition": "answered", "transfers": [],
        "hangup_cause": (16, "Normal Clearing"), "ivr": True, "ivr_session_id": None,
        "close_reason": "hangup",
    }
    assert kinds([e for e in events if e.kind != "agent_state_changed"]) == [
        "call_started", "call_queued", "agent_ringing", "call_answered", "call_ended"]


def test_ivr_queue_caller_hangup_is_abandoned_after_8_seconds():
    """ivr_queue_caller_hangup: the caller gives up while Agent Nine rings."""
    _, events, records = run("ivr_queue_caller_hangup")
    record = records["1795388914.4"]
    check_record_invariants(record)
    assert summary(record) == dict(
        NOT_QUEUED, caller=("5550500", "Jack Gaveup"), dnid="queueabandon",
        queue="noanswer",
        wait=8,                    # queue_log: ABANDON|1|1|8
        disposition="abandoned", ivr=True, hangup_cause=(16, "Normal Clearing"))
    assert kinds(events, "1795388914.4").count("call_abandoned") == 1
    # queue_log: RINGNOANSWER|5000 (first ring), then RINGCANCELED when the caller left
    assert kinds(events).count("agent_ring_no_answer") == 1


# -- queues ------------------------------------------------------------------------------------

def test_queue_answered_agent_and_caller_hangups():
    """queue_answered: ringall to two agents, Agent One answers both calls."""
    _, events, records = run("queue_answered")
    assert list(records) == ["1795388618.6", "1795388629.12"]
    common = {"dnid": "support", "queue": "support", "agent": "Local/agent1@agents/n",
              "agent_name": "Agent One", "answered": True, "hold": 0,
              "disposition": "answered", "transfers": [],
              "hangup_cause": (16, "Normal Clearing"), "ivr": False, "ivr_session_id": None,
              "close_reason": "hangup"}
    a, b = records["1795388618.6"], records["1795388629.12"]
    for record in (a, b):
        check_record_invariants(record)
    assert summary(a) == dict(common, caller=("5551234", "Alice Caller"),
                              wait=2,   # queue_log: CONNECT|2|1795388618.10|2
                              talk=6)   # queue_log: COMPLETEAGENT|2|6|1
    assert summary(b) == dict(common, caller=("5559876", "Bob Caller"),
                              wait=2,   # queue_log: CONNECT|2|1795388629.16|2
                              talk=3)   # queue_log: COMPLETECALLER|2|3|1
    call_kinds = [e.kind for e in events
                  if e.linkedid == "1795388618.6" and e.kind != "agent_state_changed"]
    # ringall: both agents rung, one answers
    assert call_kinds == ["call_started", "call_queued", "agent_ringing", "agent_ringing",
                          "call_answered", "call_ended"]


def test_queue_answered_ringall_loser_returns_to_available():
    """The ringall loser (DialEnd CANCEL, no AgentRingNoAnswer) goes back to available."""
    tracker, events, _ = run("queue_answered")
    agent_two = [(e.state, e.previous) for e in events
                 if e.kind == "agent_state_changed" and e.agent == "Local/agent2@agents/n"]
    assert agent_two == [("ringing", "available"), ("available", "ringing")] * 2
    states = {a["agent"]: a["state"] for a in tracker.agents()}
    assert states == {"Local/agent1@agents/n": "available", "Local/agent2@agents/n": "available"}


def test_agent_ringing_carries_what_a_screen_pop_needs():
    """agent_ringing names the agent, caller, queue, wait so far and the call."""
    _, events, _ = run("queue_answered")
    ring = next(e for e in events if e.kind == "agent_ringing" and e.agent == "Local/agent1@agents/n")
    assert (ring.linkedid, ring.agent_name, ring.queue, ring.caller_num, ring.caller_name) == (
        "1795388618.6", "Agent One", "support", "5551234", "Alice Caller")
    assert ring.agent_channel == "Local/agent1@agents-00000005;1"
    assert 0 <= ring.wait_seconds < 1
    assert ring.ivr_session_id is None


def test_queue_ring_no_answer_timeout_is_not_an_abandon():
    """queue_ring_no_answer: AMI sends QueueCallerAbandon on timeout; the record says timeout."""
    _, events, records = run("queue_ring_no_answer")
    record = records["1795388643.18"]
    check_record_invariants(record)
    assert summary(record) == dict(
        NOT_QUEUED, caller=("5551234", "Alice Caller"), dnid="noanswer", queue="noanswer",
        wait=21,                   # queue_log: EXITWITHTIMEOUT|1|1|21
        disposition="timeout", ivr=False, hangup_cause=(16, "Normal Clearing"))
    assert "call_abandoned" not in kinds(events)
    no_answers = [e for e in events if e.kind == "agent_ring_no_answer"]
    # queue_log: three RINGNOANSWER|5000 lines for Agent Nine
    assert [(e.agent_name, e.ring_seconds) for e in no_answers] == [("Agent Nine", 5.0)] * 3


def test_queue_abandon_both_callers_abandon_after_8_seconds():
    """queue_abandon: Alice hangs up while Agent Nine rings, Carol in an empty queue."""
    _, events, records = run("queue_abandon")
    assert list(records) == ["1795388667.26", "1795388678.32"]
    for record in records.values():
        check_record_invariants(record)
    assert summary(records["1795388667.26"]) == dict(
        NOT_QUEUED, caller=("5551234", "Alice Caller"), dnid="noanswer", queue="noanswer",
        wait=8,                    # queue_log: ABANDON|1|1|8
        disposition="abandoned", ivr=False, hangup_cause=(16, "Normal Clearing"))
    assert summary(records["1795388678.32"]) == dict(
        NOT_QUEUED, caller=("5550001", "Carol Caller"), dnid="sales", queue="sales",
        wait=8,                    # queue_log: ABANDON|1|1|8 (queue sales)
        disposition="abandoned", ivr=False, hangup_cause=(16, "Normal Clearing"))
    abandons = [(e.linkedid, e.queue, e.position) for e in events if e.kind == "call_abandoned"]
    assert abandons == [("1795388667.26", "noanswer", 1), ("1795388678.32", "sales", 1)]


# -- transfers ---------------------------------------------------------------------------------

def test_redirect_blind_and_attended_transfers():
    """redirect_transfer: an AMI Redirect, a BlindTransfer and an Atxfer of queue calls."""
    _, events, records = run("redirect_transfer")
    assert list(records) == ["1795388698.34", "1795388711.38", "1795388725.42"]
    common = {"dnid": "long", "queue": "long", "agent": "Local/agentL@agents/n",
              "agent_name": "Agent Long", "answered": True, "disposition": "answered",
              "hangup_cause": (16, "Normal Clearing"), "ivr": False, "ivr_session_id": None,
              "close_reason": "hangup",
              "wait": 1}              # queue_log: CONNECT|1|... for all three calls
    for record in records.values():
        check_record_invariants(record)
    # 1. Redirect 2 s after AgentConnect (README): talk ends when the caller leaves the
    # agent's bridge. (queue_log COMPLETECALLER|1|9 counts until the caller hung up.)
    assert summary(records["1795388698.34"]) == dict(
        common, caller=("5550101", "Dave Redirect"), talk=2, hold=0,
        transfers=[("redirect", "Local/agentL@agents/n", "200@xfer")])   # Redirect ... xfer/200
    # 2. queue_log: BLINDTRANSFER|200|xfer|1|2
    assert summary(records["1795388711.38"]) == dict(
        common, caller=("5550102", "Erin Blind"), talk=2, hold=0,
        transfers=[("blind", "Local/agentL@agents/n", "200@xfer")])
    # 3. Atxfer to xfer/201 (Agent Three): the caller is on Hold from the *2 feature until the
    # transfer completes ~3 s later, then talks to Agent Three until the end. queue_log
    # ATTENDEDTRANSFER|BRIDGE|...|1|5 counts Agent Long's part only (5 s, hold included).
    frank = records["1795388725.42"]
    assert summary(frank) == dict(
        common, caller=("5550103", "Frank Attended"), hold=3, talk=8,
        transfers=[("attended", "Local/agentL@agents/n", "201@xfer")])
    assert [e.kind for e in events if e.kind in ("call_held", "call_unheld")] == [
        "call_held", "call_unheld"]
    transfers = [(e.linkedid, e.transfer_kind) for e in events if e.kind == "call_transferred"]
    assert transfers == [("1795388698.34", "redirect"), ("1795388711.38", "blind"),
                         ("1795388725.42", "attended")]


def test_redirected_agent_is_free_when_their_leg_hangs_up():
    """After a Redirect the agent is available again before the late AgentComplete."""
    _, events, _ = run("redirect_transfer")
    first_call = [(e.state, e.previous) for e in events
                  if e.kind == "agent_state_changed" and e.linkedid == "1795388698.34"]
    assert first_call == [("ringing", "available"), ("talking", "ringing"),
                          ("available", "talking")]


# -- load and shutdown ------------------------------------------------------------------------

# (linkedid, caller number, member who answered, queue_log CONNECT holdtime,
#  queue_log COMPLETEAGENT talktime) for the 50 calls of load_burst, from queue_log
# (callid there is the ;2 channel, whose Linkedid is the ;1 Uniqueid in ami.raw).
BURST = [
    ("1795388804.62", "5552000", "Burst 01", 1, 4), ("1795388804.64", "5552001", "Burst 02", 1, 4),
    ("1795388804.66", "5552002", "Burst 03", 1, 4), ("1795388805.68", "5552003", "Burst 04", 1, 4),
    ("1795388805.70", "5552004", "Burst 05", 1, 4), ("1795388805.72", "5552005", "Burst 06", 1, 4),
    ("1795388805.74", "5552006", "Burst 07", 1, 4), ("1795388805.76", "5552007", "Burst 08", 1, 4),
    ("1795388805.78", "5552008", "Burst 09", 1, 4), ("1795388805.80", "5552009", "Burst 10", 1, 4),
    ("1795388805.82", "5552010", "Burst 01", 6, 4), ("1795388805.84", "5552011", "Burst 02", 6, 4),
    ("1795388805.86", "5552012", "Burst 03", 6, 4), ("1795388805.88", "5552013", "Burst 04", 6, 4),
    ("1795388805.90", "5552014", "Burst 05", 6, 4), ("1795388805.92", "5552015", "Burst 06", 6, 4),
    ("1795388805.94", "5552016", "Burst 07", 6, 4), ("1795388805.96", "5552017", "Burst 08", 6, 4),
    ("1795388805.98", "5552018", "Burst 09", 6, 4), ("1795388805.100", "5552019", "Burst 10", 6, 4),
    ("1795388805.102", "5552020", "Burst 01", 11, 4), ("1795388805.104", "5552021", "Burst 02", 11, 4),
    ("1795388805.106", "5552022", "Burst 03", 11, 4), ("1795388806.108", "5552023", "Burst 04", 11, 4),
    ("1795388806.110", "5552024", "Burst 05", 11, 4), ("1795388806.112", "5552025", "Burst 06", 11, 4),
    ("1795388806.114", "5552026", "Burst 07", 11, 4), ("1795388806.116", "5552027", "Burst 08", 11, 4),
    ("1795388806.118", "5552028", "Burst 09", 11, 4), ("1795388806.120", "5552029", "Burst 10", 11, 4),
    ("1795388806.122", "5552030", "Burst 01", 16, 4), ("1795388806.124", "5552031", "Burst 02", 16, 4),
    ("1795388806.126", "5552032", "Burst 03", 16, 4), ("1795388806.128", "5552033", "Burst 04", 16, 4),
    ("1795388806.130", "5552034", "Burst 05", 16, 4), ("1795388806.132", "5552035", "Burst 06", 16, 4),
    ("1795388806.134", "5552036", "Burst 07", 16, 4), ("1795388806.136", "5552037", "Burst 08", 16, 4),
    ("1795388806.138", "5552038", "Burst 09", 16, 4), ("1795388806.140", "5552039", "Burst 10", 16, 4),
    ("1795388806.142", "5552040", "Burst 01", 21, 4), ("1795388806.144", "5552041", "Burst 02", 21, 4),
    ("1795388807.146", "5552042", "Burst 03", 21, 4), ("1795388807.148", "5552043", "Burst 04", 21, 4),
    ("1795388807.150", "5552044", "Burst 05", 21, 4), ("1795388807.152", "5552045", "Burst 06", 21, 4),
    ("1795388807.154", "5552046", "Burst 07", 21, 4), ("1795388807.156", "5552047", "Burst 08", 22, 4),
    ("1795388807.158", "5552048", "Burst 09", 21, 4), ("1795388807.160", "5552049", "Burst 10", 21, 4),
]


def test_load_burst_gives_exactly_fifty_complete_records():
    """load_burst: 50 concurrent IVR → queue calls, each one complete and right."""
    tracker, events, records = run("load_burst")
    assert len(records) == 50
    assert kinds(events).count("call_ended") == 50
    assert tracker.live_calls() == [] and tracker.queues()["burst"]["callers"] == []
    for linkedid, number, member, holdtime, talktime in BURST:
        record = records[linkedid]
        check_record_invariants(record)
        assert (record.caller_num, record.caller_name) == (number, f"Burst {number[-2:]}")
        assert (record.queue, record.agent_name, record.disposition, record.close_reason) == (
            "burst", member, "answered", "hangup")
        assert record.agent == f"Local/b{member[-2:]}@agents/n"
        assert record.ivr_entered_at is not None and record.transfers == []
        # queue_log whole seconds are truncated at both ends: within one second
        assert abs(record.wait_seconds - holdtime) < 1, linkedid
        assert abs(record.talk_seconds - talktime) < 1, linkedid
        assert record.hangup_cause == 16


def test_load_burst_queue_positions_reach_forty():
    """README: QueueCallerJoin Position/Count reached 40 during the burst."""
    _, events, _ = run("load_burst")
    queued = [e for e in events if e.kind == "call_queued"]
    assert len(queued) == 50
    assert max(e.count for e in queued) == 40
    joins = [int(e["Count"]) for _, e in timed_events("load_burst")
             if e.get("Event") == "QueueCallerJoin"]
    assert [e.count for e in queued] == joins


def test_shutdown_with_a_call_up_closes_it_as_shutdown():
    """shutdown: `core stop now` hangs the connected call up before the Shutdown event."""
    tracker, events, records = run("shutdown")
    record = records["1795388864.0"]                 # Local/long@queue-in-00000000;1
    check_record_invariants(record)
    assert summary(record) == {
        "caller": ("5550300", "Henry Shutdown"), "dnid": "long",   # README: Henry, 5550300
        "queue": "long", "agent": "Local/agentL@agents/n", "agent_name": "Agent Long",
        "answered": True, "wait": 1, "talk": 2, "hold": 0, "disposition": "answered",
        "transfers": [],
        "hangup_cause": (0, "Unknown"),   # ;1 Hangup Cause: 0 (channels hung up by the core)
        "ivr": False, "ivr_session_id": None,
        "close_reason": "shutdown",       # SoftHangupRequest Cause: 4 = AST_SOFTHANGUP_SHUTDOWN
    }
    assert tracker.shutdown_seen and tracker.live_calls() == []


def test_shutdown_on_an_idle_connection_changes_nothing():
    """shutdown/ami_restart: just FullyBooted, SuccessfulAuth and Shutdown."""
    tracker, clock, _ = make_tracker()
    assert replay(tracker, clock, "shutdown", stem="ami_restart") == []
    assert tracker.shutdown_seen and tracker.live_calls() == []


@pytest.mark.parametrize("scenario", [
    "ivr_dtmf", "ivr_caller_hangup", "classic_agi", "ivr_to_queue", "ivr_queue_caller_hangup",
    "queue_answered", "queue_ring_no_answer", "queue_abandon", "redirect_transfer", "shutdown"])
def test_duplicated_events_change_nothing(scenario):
    """Every AMI event fed twice gives the same domain events and records as once."""
    tracker, clock, _ = make_tracker()
    once = replay(tracker, clock, scenario)
    tracker, clock, _ = make_tracker()
    twice = replay(tracker, clock, scenario, duplicate=True)
    assert [e.as_dict() for e in twice] == [e.as_dict() for e in once]
