"""Bring the tracker back in line with Asterisk after a (re)connect.

While the AMI link was down events were lost: calls ended with no Hangup seen, new
calls started, agents paused. After every login the AMI client runs
``CoreShowChannels`` and ``QueueStatus``; ``resync`` compares their list items with
what the tracker believes and repairs it. A call whose channels are all gone is
closed as a complete record (``close_reason`` ``resync_missing``, or ``shutdown`` when
Asterisk announced a shutdown before the link dropped), ended at the moment the stream
was lost. Calls and channels we did not know are added; queue members and waiting
callers are rebuilt from ``QueueStatus``.

Sans-I/O like the tracker: the AMI client passes in the list events it collected.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from cti.events import CallQueued, DomainEvent
from cti.tracker import CallTracker, _float, _int
from cti.tracker_state import QueueCaller, clean_callerid, device_of_channel

__all__ = ["resync", "parse_duration", "RESYNC_ACTIONS"]

#: The actions whose list events ``resync`` reads, in the order to send them.
RESYNC_ACTIONS = ("CoreShowChannels", "QueueStatus")

Event = Mapping[str, str]


def parse_duration(text: str | None) -> float:
    """``CoreShowChannel`` ``Duration: 01:02:03`` → 3723.0 (0 if unreadable)."""
    try:
        hours, minutes, seconds = (int(part) for part in (text or "").split(":"))
    except ValueError:
        return 0.0
    return float(hours * 3600 + minutes * 60 + seconds)


def resync(tracker: CallTracker, channel_events: Iterable[Event],
           queue_status_events: Iterable[Event], now: float | None = None) -> list[DomainEvent]:
    """Repair ``tracker`` from Asterisk's own lists; the domain events this caused.

    ``channel_events``: the ``CoreShowChannel`` items (other events are ignored).
    ``queue_status_events``: the ``QueueParams``/``QueueMember``/``QueueEntry`` items.
    """
    now = tracker.clock() if now is None else now
    out: list[DomainEvent] = []
    channels = {e["Uniqueid"]: e for e in channel_events
                if e.get("Event") == "CoreShowChannel" and e.get("Uniqueid")}
    members, entries = _queue_lists(tracker, list(queue_status_events))
    try:
        _close_vanished(tracker, channels, now, out)
        _rebuild_members(tracker, members, now, out)      # agents first: answered calls need them
        _add_unknown(tracker, channels, now, out)
        _free_stale_agents(tracker, now, out)
        _rebuild_entries(tracker, entries, now, out)
    finally:
        # Whatever was repaired is already in the tracker: its events must go out even
        # if a later item made a step fail (a closed call's CallEnded is its only record),
        # and the link is up again either way, so the next outage starts from scratch.
        tracker.disconnected_at = None
        tracker.shutdown_seen = False
        if out:
            tracker.bus.publish_all(out)
    return out


def _close_vanished(tracker: CallTracker, present: Mapping[str, Event], now: float,
                    out: list) -> None:
    ended_at = tracker.disconnected_at if tracker.disconnected_at is not None else now
    for call in list(tracker._calls.values()):
        for channel in [ch for uid, ch in call.channels.items() if uid not in present]:
            tracker._channels.pop(channel.uniqueid, None)
            tracker._channel_gone(call, channel, ended_at, out, end_reason="resync_missing")


def _add_unknown(tracker: CallTracker, present: Mapping[str, Event], now: float,
                 out: list) -> None:
    new_by_call: dict[str, list[Event]] = {}
    for uniqueid, event in present.items():
        if uniqueid not in tracker._channels:
            new_by_call.setdefault(event.get("Linkedid") or uniqueid, []).append(event)
    for linkedid, events in new_by_call.items():
        known = linkedid in tracker._calls
        # The call's first channel is the one whose Uniqueid is the Linkedid, else the oldest.
        events.sort(key=lambda e: (e.get("Uniqueid") != linkedid,
                                   -parse_duration(e.get("Duration"))))
        oldest = max(parse_duration(e.get("Duration")) for e in events)
        for event in events:
            channel, call = tracker._add_channel(
                event, event["Uniqueid"], linkedid, now, out,
                started_at=None if known else now - oldest)
            channel.started_at = now - parse_duration(event.get("Duration"))
            channel.bridge = event.get("BridgeId") or None
            record = call.record
            if not record.caller_num:
                record.caller_num = clean_callerid(event.get("CallerIDNum"))
                record.caller_name = clean_callerid(event.get("CallerIDName"))
            if event.get("Application") in ("AGI", "EAGI") and record.ivr_entered_at is None:
                record.ivr_entered_at = channel.started_at
        call = tracker._calls[linkedid]
        if call.record.answered_at is None:
            _answer_if_bridged_with_agent(tracker, call, now, out)


def _answer_if_bridged_with_agent(tracker: CallTracker, call, now: float, out: list) -> None:
    """A call found talking to a known agent (their phones share a bridge) is answered."""
    for channel in call.channels.values():
        agent = tracker._agents_by_device.get(device_of_channel(channel.name))
        if agent is None or channel.bridge is None:
            continue
        customers = [ch for ch in call.channels.values()
                     if ch.bridge == channel.bridge and ch is not channel
                     and tracker._agents_by_device.get(device_of_channel(ch.name)) is None]
        if customers:
            tracker._answer(call, channel.started_at, out, agent, queue=call.record.queue,
                            customer=customers[0], agent_channel=channel.name,
                            agent_uid=channel.uniqueid)
            call.bridged_since = channel.started_at
            call.bridged_ever = True
            return


def _queue_lists(tracker: CallTracker, events: list[Event]
                 ) -> tuple[dict[str, dict[str, Event]], dict[str, dict[str, Event]]]:
    """QueueStatus items as {queue: {interface: QueueMember}}, {queue: {uniqueid: QueueEntry}},
    with an (empty) entry for every queue the reply covered (its QueueParams)."""
    covered = {e.get("Queue") for e in events if e.get("Event") == "QueueParams" and e.get("Queue")}
    members: dict[str, dict[str, Event]] = {q: {} for q in covered}   # type: ignore[misc]
    entries: dict[str, dict[str, Event]] = {q: {} for q in covered}   # type: ignore[misc]
    for event in events:
        name, queue = event.get("Event"), event.get("Queue") or ""
        if name == "QueueParams":
            tracker._queue(queue).strategy = event.get("Strategy")
        elif name == "QueueMember":
            interface = event.get("Location") or event.get("Interface") or ""
            if interface:
                members.setdefault(queue, {})[interface] = event
        elif name == "QueueEntry" and event.get("Uniqueid"):
            entries.setdefault(queue, {})[event["Uniqueid"]] = event
    return members, entries


def _rebuild_members(tracker: CallTracker, members: dict[str, dict[str, Event]], now: float,
                     out: list) -> None:
    for queue, listed in members.items():
        # members gone while we were away log out; new ones log in
        for agent in list(tracker._agents.values()):
            if queue in agent.queues and agent.interface not in listed:
                tracker._logout(agent, queue, now, out)
        for interface, event in listed.items():
            tracker._login(interface, event.get("Name") or event.get("MemberName") or "",
                           event.get("StateInterface") or "", queue, event, now, out, emit=True)


def _free_stale_agents(tracker: CallTracker, now: float, out: list) -> None:
    for agent in tracker._agents.values():
        # an agent whose call ended unseen is free again
        if agent.state in ("ringing", "talking") and agent.linkedid not in tracker._calls:
            tracker._rest(agent, now, out, linkedid=agent.linkedid)


def _rebuild_entries(tracker: CallTracker, entries: dict[str, dict[str, Event]], now: float,
                     out: list) -> None:
    for queue_name, listed in entries.items():
        queue = tracker._queue(queue_name)
        for uniqueid in [u for u in queue.callers if u not in listed]:
            queue.remove_caller(uniqueid)
        for uniqueid, event in listed.items():
            channel = tracker._channels.get(uniqueid)
            call = tracker._calls.get(channel.linkedid) if channel else None
            position = _int(event.get("Position"))
            if position < 1:
                position = len(queue.callers) + 1
            if uniqueid in queue.callers:
                queue.callers[uniqueid].position = position
                continue
            if call is None or channel is None:
                continue
            record = call.record
            joined = now - max(0.0, _float(event.get("Wait")))
            record.queue = queue_name
            record.queue_entered_at = joined
            record.queue_left_at = None
            call.customer_uid = uniqueid
            queue.callers[uniqueid] = QueueCaller(call.linkedid, uniqueid, position, joined,
                                                  record.caller_num, record.caller_name)
            out.append(CallQueued(linkedid=call.linkedid, at=now, queue=queue_name,
                                  position=position, count=len(listed),
                                  caller_num=record.caller_num, caller_name=record.caller_name,
                                  ivr_session_id=record.ivr_session_id, channel=channel.name,
                                  uniqueid=uniqueid))

