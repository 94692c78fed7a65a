"""The call tracker: AMI events in, call/agent/queue state and domain events out.

Sans-I/O (no sockets, no reactor, no database): ``handle(event)`` takes any
``Mapping[str, str]`` AMI event and returns the domain events it caused, after
publishing them on ``bus``. Dispatch is one dict lookup on the event name
(wazo-calld style ``on_<snake_name>`` handlers); events nobody handles cost only that.

Rules worth knowing (each checked against the real Asterisk 22 traces):

- A call is every channel sharing a **Linkedid**; it ends when its last channel hangs
  up, and is then forgotten (bounded memory) after ``call_ended`` carries its record.
- **Caller** = the first channel's caller ID (updated by its ``NewCallerid`` while it
  is still unknown); **dnid** = the first channel's extension.
- **Answered** = ``AgentConnect`` (queue calls), or a channel of a known agent entering
  a bridge with the call (direct calls). **Wait** = queue join to queue leave.
  **Talk** = time the caller's channel spent bridged after the answer, minus hold time
  (so talk + hold + wrap-up is the AHT, with nothing counted twice).
- **Hold**: ``Hold``/``Unhold`` on any channel of the call; a hold still open ends when
  that channel hangs up, when an attended transfer completes, or with the call.
- **Abandon vs timeout**: on a queue *timeout* Asterisk 22 also sends
  ``QueueCallerAbandon``. An abandon is real when the caller's channel had already been
  asked to hang up (``HangupRequest``/``SoftHangupRequest``) when it came; otherwise it
  is held pending: ``VarSet QUEUESTATUS=TIMEOUT`` (or LEAVEEMPTY/LEAVEUNAVAIL) makes it
  a timeout, a later hangup of the caller's channel (or the end of the call) an abandon.
- **Transfers**: ``BlindTransfer``, ``AttendedTransfer``, and an AMI ``Redirect`` of a
  connected caller, which Asterisk reports with no event at all: the caller's channel
  leaves the agent's bridge already sitting in another context/extension (without the
  ``BLINDTRANSFER`` variable a blind transfer sets first).
- **Disposition**, first rule that applies: answered; the IVR's ``HOTLINE_OUTCOME``
  voicemail/callback; queue timeout; queue abandon (or still queued at hangup);
  an IVR ran (``AGI`` application or ``HOTLINE_SESSION``) → ivr_only; else unknown.
- **Hangup cause** = the first channel's ``Hangup`` Cause/Cause-txt (else the last one).
- **Shutdown**: a call whose channels got ``SoftHangupRequest Cause: 4``
  (AST_SOFTHANGUP_SHUTDOWN) ends with close_reason ``shutdown``; calls still up when the
  ``Shutdown`` event arrives are closed by the next ``resync`` (cti/resync.py), also as
  ``shutdown``. Calls that vanish across a reconnect for any other reason are
  ``resync_missing``.
- **Agents** (by interface): logged in/out (QueueMemberAdded/Removed), paused + reason
  (QueueMemberPause, per queue), ringing (AgentCalled) until AgentConnect, AgentRingNoAnswer
  or the ringing leg ends (ringall losers get only ``DialEnd CANCEL``), talking until
  AgentComplete or their leg hangs up (after a Redirect, AgentComplete comes much later and
  without channel fields), then wrap-up for the member's ``Wrapuptime`` (or the queue's
  configured one) — call ``tick()`` periodically to end wrap-ups — then available/paused.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Any, Callable, Iterable, Mapping

from cti.events import (
    AgentRinging, AgentRingNoAnswer, AgentStateChanged, CallAbandoned, CallAnswered,
    CallEnded, CallHeld, CallQueued, CallRecord, CallStarted, CallTransferred, CallUnheld,
    DomainEvent, EventBus, IvrJoined,
)
from cti.tracker_state import (
    Agent, Call, Channel, Membership, Queue, QueueCaller, clean_callerid, device_of_channel,
    device_of_interface,
)

__all__ = ["CallTracker", "TIMEOUT_QUEUESTATUSES", "SHUTDOWN_SOFTHANGUP_CAUSE"]

Event = Mapping[str, str]

#: QUEUESTATUS values meaning the queue let the caller go (not the caller giving up).
TIMEOUT_QUEUESTATUSES = frozenset({"TIMEOUT", "LEAVEEMPTY", "LEAVEUNAVAIL"})
#: SoftHangupRequest ``Cause`` when Asterisk hangs channels up to stop or restart.
SHUTDOWN_SOFTHANGUP_CAUSE = "4"
_AGI_APPLICATIONS = frozenset({"AGI", "EAGI", "DeadAGI"})
_TIERS = frozenset({"vip", "key", "regular"})
_RECENTLY_ENDED_MAX = 10_000


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _float(value: str | None, default: float = 0.0) -> float:
    """A number of seconds from an AMI field; unreadable or non-finite (``inf``,
    ``1e999``, ``nan``) is unknown: a wrap-up time of infinity would never end."""
    try:
        number = float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


class CallTracker:
    """Folds AMI events into live calls, agents and queues; emits domain events.

    ``clock`` gives POSIX seconds (a replay sets it from the recording's timing);
    ``wrapup_seconds`` maps queue name → wrap-up time used when a member's own
    ``Wrapuptime`` is 0/unknown.
    """

    def __init__(self, clock: Callable[[], float] = time.time, *, bus: EventBus | None = None,
                 wrapup_seconds: Mapping[str, float] | None = None) -> None:
        self.clock = clock
        self.bus = bus if bus is not None else EventBus()
        self.wrapup_seconds = dict(wrapup_seconds or {})
        self._channels: dict[str, Channel] = {}
        self._calls: dict[str, Call] = {}
        self._agents: dict[str, Agent] = {}
        self._agents_by_device: dict[str, Agent] = {}
        self._queues: dict[str, Queue] = {}
        self._recently_ended: OrderedDict[str, None] = OrderedDict()
        self._in_wrapup: set[str] = set()
        self.disconnected_at: float | None = None
        self.shutdown_seen = False
        self._handlers: dict[str, Callable[[Event, float, list], None]] = {}
        for name, handler in (
            ("Newchannel", self.on_newchannel),
            ("NewCallerid", self.on_new_callerid),
            ("Newexten", self.on_newexten),
            ("VarSet", self.on_var_set),
            ("Rename", self.on_rename),
            ("HangupRequest", self.on_hangup_request),
            ("SoftHangupRequest", self.on_soft_hangup_request),
            ("Hangup", self.on_hangup),
            ("QueueCallerJoin", self.on_queue_caller_join),
            ("QueueCallerLeave", self.on_queue_caller_leave),
            ("QueueCallerAbandon", self.on_queue_caller_abandon),
            ("AgentCalled", self.on_agent_called),
            ("AgentRingNoAnswer", self.on_agent_ring_no_answer),
            ("AgentConnect", self.on_agent_connect),
            ("AgentComplete", self.on_agent_complete),
            ("DialEnd", self.on_dial_end),
            ("BridgeEnter", self.on_bridge_enter),
            ("BridgeLeave", self.on_bridge_leave),
            ("Hold", self.on_hold),
            ("Unhold", self.on_unhold),
            ("BlindTransfer", self.on_blind_transfer),
            ("AttendedTransfer", self.on_attended_transfer),
            ("QueueMemberAdded", self.on_queue_member_added),
            ("QueueMemberRemoved", self.on_queue_member_removed),
            ("QueueMemberPause", self.on_queue_member_pause),
            ("QueueMemberPaused", self.on_queue_member_pause),   # Asterisk 12 spelling
            ("QueueMemberStatus", self.on_queue_member_status),
            ("Shutdown", self.on_shutdown),
        ):
            self.subscribe(name, handler)

    # -- public API ------------------------------------------------------------------
    def subscribe(self, event_name: str, handler: Callable[[Event, float, list], None]) -> None:
        """Route AMI events named ``event_name`` to ``handler(event, now, out)``."""
        self._handlers[event_name] = handler

    def handle(self, event: Event) -> list[DomainEvent]:
        """Fold one AMI event in; the domain events it caused (also published on ``bus``).

        ``event`` is any ``Mapping[str, str]`` with an ``Event`` header; for a parsed
        ``AmiMessage`` its ``kind``/``name`` are used, so ignored events are never split.
        """
        try:   # an AmiMessage knows its event name without splitting its headers
            name = event.name if event.kind == "event" else None  # type: ignore[attr-defined]
        except AttributeError:
            name = event.get("Event")
        handler = self._handlers.get(name)  # type: ignore[arg-type]
        if handler is None:
            return []
        out: list[DomainEvent] = []
        handler(event, self.clock(), out)
        if out:
            self.bus.publish_all(out)
        return out

    def handle_all(self, events: Iterable[Event]) -> list[DomainEvent]:
        out: list[DomainEvent] = []
        for event in events:
            out.extend(self.handle(event))
        return out

    def tick(self, now: float | None = None) -> list[DomainEvent]:
        """End the wrap-ups that are due (call every second or so from a timer)."""
        now = self.clock() if now is None else now
        out: list[DomainEvent] = []
        for interface in [i for i in self._in_wrapup
                          if (self._agents[i].wrapup_until or 0) <= now]:
            agent = self._agents[interface]
            self._rest(agent, now, out, linkedid=agent.linkedid)
        if out:
            self.bus.publish_all(out)
        return out

    def on_disconnect(self, at: float | None = None) -> None:
        """The AMI stream is gone: events may be missed until the next ``resync``.

        Live state is kept (calls are still up on Asterisk, most likely); ``resync``
        closes what ended meanwhile, with this moment as their end.
        """
        if self.disconnected_at is None:
            self.disconnected_at = self.clock() if at is None else at

    def live_calls(self) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        for call in self._calls.values():
            snapshot = call.record.as_dict()
            snapshot["state"] = call.state()
            snapshot["timeline"] = list(call.timeline)
            snapshot["channels"] = sorted(ch.name for ch in call.channels.values())
            snapshot["age_seconds"] = max(0.0, now - call.record.started_at)
            out.append(snapshot)
        return out

    def agents(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [agent.snapshot(now) for agent in self._agents.values()]

    def queues(self) -> dict[str, dict[str, Any]]:
        now = self.clock()
        return {name: queue.snapshot(now) for name, queue in self._queues.items()}

    def call(self, linkedid: str) -> Call | None:
        return self._calls.get(linkedid)

    # -- helpers -----------------------------------------------------------------------
    def _call_of(self, event: Event) -> Call | None:
        linkedid = event.get("Linkedid")
        return self._calls.get(linkedid) if linkedid is not None else None  # type: ignore[arg-type]

    def _channel_and_call(self, event: Event) -> tuple[Channel | None, Call | None]:
        channel = self._channels.get(event.get("Uniqueid"))  # type: ignore[arg-type]
        if channel is None:
            return None, None
        return channel, self._calls.get(channel.linkedid)

    def _queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(name)
        return queue

    def _agent(self, interface: str, name: str = "", state_interface: str = "") -> Agent:
        agent = self._agents.get(interface)
        if agent is None:
            agent = self._agents[interface] = Agent(interface, name)
            self._agents_by_device[device_of_interface(interface)] = agent
        elif name and agent.name != name:
            agent.name = name
        if state_interface:
            self._agents_by_device.setdefault(state_interface, agent)
        return agent

    def _set_agent(self, agent: Agent, state: str, at: float, out: list, *,
                   linkedid: str | None = None, queue: str | None = None,
                   reason: str | None = None, emit_as: str | None = None) -> None:
        previous = agent.state
        if previous == state and agent.reason == reason and emit_as is None:
            return
        agent.state = state
        agent.reason = reason
        agent.since = at
        if state != "wrap_up" and agent.interface in self._in_wrapup:
            self._in_wrapup.discard(agent.interface)
            agent.wrapup_until = None
        out.append(AgentStateChanged(linkedid=linkedid, at=at, agent=agent.interface,
                                     agent_name=agent.name, state=emit_as or state,
                                     previous=previous, queue=queue, reason=reason))

    def _rest(self, agent: Agent, at: float, out: list, *, linkedid: str | None = None,
              queue: str | None = None) -> None:
        """Back to available / paused / logged out: no call involves the agent now."""
        state = agent.resting_state()
        agent.linkedid = None
        agent.leg_uid = None
        self._set_agent(agent, state, at, out, linkedid=linkedid, queue=queue,
                        reason=agent.pause_reason() if state == "paused" else None)

    def _end_talk(self, agent: Agent, call_queue: str | None, at: float, out: list) -> None:
        """The agent's conversation is over: wrap-up if configured, else rest."""
        linkedid = agent.linkedid
        membership = agent.queues.get(call_queue or "")
        wrapup = (membership.wrapup if membership and membership.wrapup > 0
                  else self.wrapup_seconds.get(call_queue or "", 0.0))
        if wrapup > 0:
            agent.wrapup_until = at + wrapup
            agent.leg_uid = None
            self._set_agent(agent, "wrap_up", at, out, linkedid=linkedid, queue=call_queue)
            self._in_wrapup.add(agent.interface)
        else:
            self._rest(agent, at, out, linkedid=linkedid, queue=call_queue)

    def _stop_ringing(self, call: Call, agent_uid: str, at: float, out: list) -> None:
        interface = call.ringing.pop(agent_uid, None)
        if interface is None:
            return
        agent = self._agents.get(interface)
        if agent is not None and agent.state == "ringing" and agent.linkedid == call.linkedid \
                and agent.leg_uid == agent_uid:
            self._rest(agent, at, out, linkedid=call.linkedid, queue=call.record.queue)

    def _mark(self, call: Call, at: float, state: str) -> None:
        call.timeline.append((at, state))

    def _close_hold(self, call: Call, uniqueid: str, at: float, out: list) -> None:
        since = call.holds.pop(uniqueid, None)
        if since is None:
            return
        held = max(0.0, at - since)
        call.record.hold_seconds += held
        channel = call.channels.get(uniqueid)
        out.append(CallUnheld(linkedid=call.linkedid, at=at,
                              channel=channel.name if channel else "", uniqueid=uniqueid,
                              held_seconds=held))
        self._mark(call, at, call.state())

    def _close_bridge_segment(self, call: Call, at: float) -> None:
        if call.bridged_since is not None:
            call.bridged_total += max(0.0, at - call.bridged_since)
            call.bridged_since = None

    def _abandon(self, call: Call, at: float, out: list) -> None:
        call.queue_result = "abandoned"
        record = call.record
        left = record.queue_left_at or at
        wait = max(0.0, left - record.queue_entered_at) if record.queue_entered_at else 0.0
        channel = call.channels.get(call.customer_uid or "")
        out.append(CallAbandoned(linkedid=call.linkedid, at=at, queue=record.queue or "",
                                 position=call.abandon_position, wait_seconds=wait,
                                 channel=channel.name if channel else "",
                                 uniqueid=call.customer_uid or ""))
        self._mark(call, at, "abandoned")

    def _add_transfer(self, call: Call, at: float, out: list, kind: str, from_: str, to: str,
                      channel: str, uniqueid: str) -> None:
        call.record.transfers.append({"kind": kind, "from": from_, "to": to, "at": at})
        out.append(CallTransferred(linkedid=call.linkedid, at=at, transfer_kind=kind,
                                   from_=from_, to=to, channel=channel, uniqueid=uniqueid))
        self._mark(call, at, "transferred")

    def _answer(self, call: Call, at: float, out: list, agent: Agent, *, queue: str | None,
                customer: Channel | None, agent_channel: str, agent_uid: str) -> None:
        record = call.record
        record.answered_at = at
        record.agent = agent.interface
        record.agent_name = agent.name
        if record.queue_entered_at is not None and record.wait_seconds is None:
            record.wait_seconds = max(0.0, (record.queue_left_at or at) - record.queue_entered_at)
        call.agent_uid = agent_uid
        if customer is not None:
            call.customer_uid = customer.uniqueid
            call.connect_location = (customer.context, customer.exten)
        # ringall losers stop ringing; the winner starts talking
        call.ringing.pop(agent_uid, None)
        for other_uid in list(call.ringing):
            self._stop_ringing(call, other_uid, at, out)
        out.append(CallAnswered(
            linkedid=call.linkedid, at=at, agent=agent.interface, agent_name=agent.name,
            queue=queue, wait_seconds=record.wait_seconds, caller_num=record.caller_num,
            caller_name=record.caller_name, ivr_session_id=record.ivr_session_id,
            channel=customer.name if customer else "",
            uniqueid=customer.uniqueid if customer else "",
            agent_channel=agent_channel, agent_uniqueid=agent_uid))
        agent.linkedid = call.linkedid
        agent.leg_uid = agent_uid
        self._set_agent(agent, "talking", at, out, linkedid=call.linkedid, queue=queue)
        self._mark(call, at, "talking")

    # -- channels ------------------------------------------------------------------------
    def on_newchannel(self, event: Event, now: float, out: list) -> None:
        uniqueid = event.get("Uniqueid")
        if not uniqueid or uniqueid in self._channels:
            return
        linkedid = event.get("Linkedid") or uniqueid
        if linkedid in self._recently_ended:
            return   # a late or duplicated event for a call already closed
        self._add_channel(event, uniqueid, linkedid, now, out)

    def _add_channel(self, event: Event, uniqueid: str, linkedid: str, now: float, out: list,
                     *, started_at: float | None = None) -> tuple[Channel, Call]:
        channel = Channel(uniqueid, linkedid, event.get("Channel") or "",
                          event.get("Context") or "", event.get("Exten") or "", now)
        call = self._calls.get(linkedid)
        if call is None:
            record = CallRecord(linkedid=linkedid,
                                caller_num=clean_callerid(event.get("CallerIDNum")),
                                caller_name=clean_callerid(event.get("CallerIDName")),
                                dnid=event.get("Exten") or "",
                                started_at=now if started_at is None else started_at)
            call = self._calls[linkedid] = Call(record, uniqueid)
            call.channels[uniqueid] = channel
            self._channels[uniqueid] = channel
            self._mark(call, record.started_at, "started")
            out.append(CallStarted(linkedid=linkedid, at=now, caller_num=record.caller_num,
                                   caller_name=record.caller_name, dnid=record.dnid,
                                   channel=channel.name, uniqueid=uniqueid))
        else:
            call.channels[uniqueid] = channel
            self._channels[uniqueid] = channel
        return channel, call

    def on_new_callerid(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is None or channel is None:
            return
        record = call.record
        if channel.uniqueid == call.root_uid or not record.caller_num:
            number = clean_callerid(event.get("CallerIDNum"))
            if number:
                record.caller_num = number
                name = clean_callerid(event.get("CallerIDName"))
                if name:
                    record.caller_name = name

    def on_newexten(self, event: Event, now: float, out: list) -> None:
        if event.get("Application") not in _AGI_APPLICATIONS:
            return
        channel, call = self._channel_and_call(event)
        if call is not None and call.record.ivr_entered_at is None:
            call.record.ivr_entered_at = now
            self._mark(call, now, "ivr")

    def on_var_set(self, event: Event, now: float, out: list) -> None:
        variable = event.get("Variable")
        handler = self._var_handlers.get(variable)  # type: ignore[arg-type]
        if handler is None:
            return
        channel, call = self._channel_and_call(event)
        if call is not None and channel is not None:
            handler(self, call, channel, event.get("Value") or "", now, out)

    def _var_session(self, call: Call, channel: Channel, value: str, now: float, out: list) -> None:
        record = call.record
        if not value or record.ivr_session_id == value:
            return
        record.ivr_session_id = value
        if record.ivr_entered_at is None:
            record.ivr_entered_at = now
        out.append(IvrJoined(linkedid=call.linkedid, at=now, ivr_session_id=value,
                             channel=channel.name, uniqueid=channel.uniqueid))

    def _var_outcome(self, call: Call, channel: Channel, value: str, now: float, out: list) -> None:
        call.outcome = value.strip().lower() or None

    def _var_tier(self, call: Call, channel: Channel, value: str, now: float, out: list) -> None:
        tier = value.strip().lower()
        if tier in _TIERS:
            call.record.tier = tier

    def _var_queuestatus(self, call: Call, channel: Channel, value: str, now: float, out: list) -> None:
        if value in TIMEOUT_QUEUESTATUSES and call.queue_result in (None, "abandon_pending"):
            call.queue_result = "timeout"
            self._mark(call, now, "timeout")

    def _var_blindtransfer(self, call: Call, channel: Channel, value: str, now: float, out: list) -> None:
        channel.blind_transfer = bool(value)

    _var_handlers: dict[str, Callable[..., None]] = {
        "HOTLINE_SESSION": _var_session,
        "HOTLINE_OUTCOME": _var_outcome,
        "HOTLINE_TIER": _var_tier,
        "QUEUESTATUS": _var_queuestatus,
        "BLINDTRANSFER": _var_blindtransfer,
    }

    def on_rename(self, event: Event, now: float, out: list) -> None:
        channel = self._channels.get(event.get("Uniqueid"))  # type: ignore[arg-type]
        if channel is not None and event.get("Newname"):
            channel.name = event["Newname"]

    def on_hangup_request(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if channel is None or call is None:
            return
        channel.hangup_requested = True
        if call.queue_result == "abandon_pending" and channel.uniqueid == call.customer_uid:
            self._abandon(call, now, out)

    def on_soft_hangup_request(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if channel is None or call is None:
            return
        if event.get("Cause") == SHUTDOWN_SOFTHANGUP_CAUSE:
            call.shutdown = True
        self.on_hangup_request(event, now, out)

    def on_hangup(self, event: Event, now: float, out: list) -> None:
        uniqueid = event.get("Uniqueid")
        channel = self._channels.pop(uniqueid, None)  # type: ignore[arg-type]
        if channel is None:
            return
        call = self._calls.get(channel.linkedid)
        if call is None:
            return
        cause = (_int(event.get("Cause"), 0) if event.get("Cause") not in (None, "") else None,
                 event.get("Cause-txt"))
        call.last_cause = cause
        if uniqueid == call.root_uid:
            call.root_cause = cause
        self._channel_gone(call, channel, now, out)

    def _channel_gone(self, call: Call, channel: Channel, now: float, out: list,
                      end_reason: str | None = None) -> None:
        """``channel`` no longer exists (Hangup, or missing at resync)."""
        uniqueid = channel.uniqueid
        self._close_hold(call, uniqueid, now, out)
        if uniqueid == call.customer_uid:
            self._close_bridge_segment(call, now)
            if call.queue_result == "abandon_pending":
                self._abandon(call, now, out)
        if uniqueid in call.ringing:
            self._stop_ringing(call, uniqueid, now, out)
        if uniqueid == call.agent_uid:
            agent = self._agents.get(call.record.agent or "")
            if agent is not None and agent.state == "talking" and agent.linkedid == call.linkedid:
                self._end_talk(agent, call.record.queue, now, out)
        if channel.bridge is not None:
            channel.bridge = None
        call.channels.pop(uniqueid, None)
        if not call.channels:
            reason = "shutdown" if call.shutdown else (end_reason or "hangup")
            self._end_call(call, now, reason, out)

    def _end_call(self, call: Call, at: float, reason: str, out: list) -> None:
        record = call.record
        for uniqueid in list(call.holds):
            self._close_hold(call, uniqueid, at, out)
        self._close_bridge_segment(call, at)
        if call.queue_result == "abandon_pending":
            self._abandon(call, at, out)
        for agent_uid in list(call.ringing):
            self._stop_ringing(call, agent_uid, at, out)
        agent = self._agents.get(record.agent or "")
        if agent is not None and agent.linkedid == call.linkedid and agent.state == "talking":
            self._end_talk(agent, record.queue, at, out)
        for queue in self._queues.values():
            for uniqueid in [u for u, c in queue.callers.items() if c.linkedid == call.linkedid]:
                queue.remove_caller(uniqueid)
        for uniqueid in list(call.channels):
            self._channels.pop(uniqueid, None)
        call.channels.clear()

        record.ended_at = at
        record.close_reason = reason
        if record.queue_entered_at is not None and record.wait_seconds is None:
            record.wait_seconds = max(0.0, (record.queue_left_at or at) - record.queue_entered_at)
        if record.answered_at is not None:
            talked = call.bridged_total if call.bridged_ever else max(0.0, at - record.answered_at)
            record.talk_seconds = max(0.0, talked - record.hold_seconds)
        cause = call.root_cause or call.last_cause
        if cause is not None:
            record.hangup_cause, record.hangup_cause_text = cause
        record.disposition = self._disposition(call, reason)
        self._mark(call, at, "ended")

        del self._calls[call.linkedid]
        self._recently_ended[call.linkedid] = None
        if len(self._recently_ended) > _RECENTLY_ENDED_MAX:
            self._recently_ended.popitem(last=False)
        out.append(CallEnded(linkedid=call.linkedid, at=at, record=record, timeline=call.timeline))

    @staticmethod
    def _disposition(call: Call, reason: str) -> str:
        record = call.record
        if record.answered_at is not None:
            return "answered"
        if call.outcome in ("voicemail", "callback"):
            return call.outcome
        if call.queue_result == "timeout":
            return "timeout"
        if call.queue_result == "abandoned":
            return "abandoned"
        if record.queue_entered_at is not None and reason == "hangup":
            return "abandoned"   # hung up while queued, the queue's own events were missed
        if record.ivr_entered_at is not None or record.ivr_session_id:
            return "ivr_only"
        return "unknown"

    # -- queue callers ---------------------------------------------------------------------
    def on_queue_caller_join(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is None or channel is None:
            return
        name = event.get("Queue") or ""
        queue = self._queue(name)
        if channel.uniqueid in queue.callers:
            return   # duplicate
        record = call.record
        if not record.caller_num:
            record.caller_num = clean_callerid(event.get("CallerIDNum"))
            record.caller_name = record.caller_name or clean_callerid(event.get("CallerIDName"))
        record.queue = name
        record.queue_entered_at = now
        record.queue_left_at = None
        record.wait_seconds = None
        call.customer_uid = channel.uniqueid
        call.queue_result = None
        position = _int(event.get("Position"), len(queue.callers) + 1)
        queue.callers[channel.uniqueid] = QueueCaller(call.linkedid, channel.uniqueid, position,
                                                      now, record.caller_num, record.caller_name)
        out.append(CallQueued(linkedid=call.linkedid, at=now, queue=name, position=position,
                              count=_int(event.get("Count"), len(queue.callers)),
                              caller_num=record.caller_num, caller_name=record.caller_name,
                              ivr_session_id=record.ivr_session_id, channel=channel.name,
                              uniqueid=channel.uniqueid))
        self._mark(call, now, "queued")

    def on_queue_caller_leave(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is None or channel is None:
            return
        queue = self._queues.get(event.get("Queue") or "")
        if queue is None or queue.remove_caller(channel.uniqueid) is None:
            return   # duplicate, or a join we never saw
        record = call.record
        record.queue_left_at = now
        if record.queue_entered_at is not None:
            record.wait_seconds = max(0.0, now - record.queue_entered_at)

    def on_queue_caller_abandon(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is None or channel is None or call.queue_result is not None:
            return
        call.abandon_position = _int(event.get("Position"))
        if channel.hangup_requested:
            self._abandon(call, now, out)
        else:
            call.queue_result = "abandon_pending"   # Asterisk 22 says this on timeouts too

    # -- agents and a queue call ---------------------------------------------------------
    def on_agent_called(self, event: Event, now: float, out: list) -> None:
        call = self._call_of(event)
        if call is None:
            return
        interface = event.get("Interface") or ""
        agent_uid = event.get("DestUniqueid") or ""
        if call.ringing.get(agent_uid) == interface:
            return   # duplicate
        queue = event.get("Queue") or ""
        agent = self._agent(interface, event.get("MemberName") or "")
        if queue and queue not in agent.queues:   # a member we learn about by its first call
            agent.queues[queue] = Membership()
            self._queue(queue).members.add(interface)
            if agent.state == "logged_out":
                agent.state = agent.resting_state()
        call.ringing[agent_uid] = interface
        record = call.record
        wait = max(0.0, now - record.queue_entered_at) if record.queue_entered_at else 0.0
        out.append(AgentRinging(
            linkedid=call.linkedid, at=now, agent=interface, agent_name=agent.name, queue=queue,
            caller_num=record.caller_num, caller_name=record.caller_name, wait_seconds=wait,
            ivr_session_id=record.ivr_session_id, tier=record.tier,
            channel=event.get("Channel") or "", uniqueid=event.get("Uniqueid") or "",
            agent_channel=event.get("DestChannel") or "", agent_uniqueid=agent_uid))
        agent.linkedid = call.linkedid
        agent.leg_uid = agent_uid
        self._set_agent(agent, "ringing", now, out, linkedid=call.linkedid, queue=queue)

    def on_agent_ring_no_answer(self, event: Event, now: float, out: list) -> None:
        call = self._call_of(event)
        if call is None:
            return
        agent_uid = event.get("DestUniqueid") or ""
        interface = call.ringing.get(agent_uid)
        if interface is None:
            return   # duplicate, or a ring we never saw
        agent = self._agents[interface]
        out.append(AgentRingNoAnswer(
            linkedid=call.linkedid, at=now, agent=interface, agent_name=agent.name,
            queue=event.get("Queue") or "", ring_seconds=_float(event.get("RingTime")) / 1000.0,
            channel=event.get("Channel") or "", uniqueid=event.get("Uniqueid") or ""))
        self._stop_ringing(call, agent_uid, now, out)

    def on_agent_connect(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is None or call.record.answered_at is not None:
            return
        agent = self._agent(event.get("Interface") or "", event.get("MemberName") or "")
        queue = event.get("Queue") or call.record.queue
        if queue and not call.record.queue:
            call.record.queue = queue
        self._answer(call, now, out, agent, queue=queue, customer=channel,
                     agent_channel=event.get("DestChannel") or "",
                     agent_uid=event.get("DestUniqueid") or "")

    def on_agent_complete(self, event: Event, now: float, out: list) -> None:
        agent = self._agents.get(event.get("Interface") or "")
        if agent is None:
            return
        # After an AMI Redirect this event has no channel fields: find the call by agent.
        linkedid = event.get("Linkedid") or agent.linkedid
        if agent.state == "talking" and agent.linkedid == linkedid:
            self._end_talk(agent, event.get("Queue"), now, out)

    def on_dial_end(self, event: Event, now: float, out: list) -> None:
        if event.get("DialStatus") == "ANSWER":
            return
        dest = self._channels.get(event.get("DestUniqueid"))  # type: ignore[arg-type]
        if dest is None:
            return
        call = self._calls.get(dest.linkedid)
        if call is not None and dest.uniqueid in call.ringing:
            self._stop_ringing(call, dest.uniqueid, now, out)

    # -- bridges, hold, transfers ---------------------------------------------------------
    def on_bridge_enter(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is None or channel is None:
            return
        channel.bridge = event.get("BridgeUniqueid")
        if call.record.answered_at is None:
            self._maybe_answer_direct(call, channel, now, out)
        if channel.uniqueid == call.customer_uid and call.record.answered_at is not None \
                and call.bridged_since is None:
            call.bridged_since = now
            call.bridged_ever = True

    def _maybe_answer_direct(self, call: Call, entering: Channel, now: float, out: list) -> None:
        """A call that never queued is answered when a known agent's phone shares a bridge
        with another of its channels (direct dial to an agent, click-to-dial)."""
        if call.record.queue_entered_at is not None or entering.bridge is None:
            return
        members = [ch for ch in call.channels.values() if ch.bridge == entering.bridge]
        if len(members) < 2:
            return
        agents = [(ch, self._agents_by_device.get(device_of_channel(ch.name))) for ch in members]
        agent_side = [(ch, agent) for ch, agent in agents if agent is not None]
        customers = [ch for ch, agent in agents if agent is None]
        if not agent_side or not customers:
            return
        agent_channel, agent = agent_side[0]
        customer = customers[0]
        self._answer(call, now, out, agent, queue=None, customer=customer,
                     agent_channel=agent_channel.name, agent_uid=agent_channel.uniqueid)
        call.bridged_since = now
        call.bridged_ever = True

    def on_bridge_leave(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is None or channel is None:
            return
        channel.bridge = None
        if channel.uniqueid != call.customer_uid or call.record.answered_at is None:
            return
        self._close_bridge_segment(call, now)
        # An AMI Redirect moves the caller out of the agent's bridge with no transfer
        # event: the BridgeLeave already shows the new dialplan location.
        location = (event.get("Context") or "", event.get("Exten") or "")
        if (call.connect_location is not None and location != call.connect_location
                and location[1] != "h" and not channel.blind_transfer
                and ("redirect", channel.uniqueid) not in call.transfer_keys):
            call.transfer_keys.add(("redirect", channel.uniqueid))
            self._add_transfer(call, now, out, "redirect", call.record.agent or "",
                               f"{location[1]}@{location[0]}", channel.name, channel.uniqueid)

    def on_hold(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is None or channel is None or channel.uniqueid in call.holds:
            return
        call.holds[channel.uniqueid] = now
        out.append(CallHeld(linkedid=call.linkedid, at=now, channel=channel.name,
                            uniqueid=channel.uniqueid))
        self._mark(call, now, "held")

    def on_unhold(self, event: Event, now: float, out: list) -> None:
        channel, call = self._channel_and_call(event)
        if call is not None and channel is not None:
            self._close_hold(call, channel.uniqueid, now, out)

    def _transfer_from(self, call: Call, uniqueid: str | None, channel_name: str | None) -> str:
        if uniqueid and uniqueid == call.agent_uid and call.record.agent:
            return call.record.agent
        return channel_name or ""

    def _new_transfer(self, event: Event, linkedid_headers: tuple[str, ...],
                      key: tuple) -> Call | None:
        """The call a successful transfer event is about, unless it was already counted
        (Asterisk repeats transfer events per bridge leg); None means ignore the event."""
        if event.get("Result", "Success") != "Success":
            return None
        linkedid = next((event.get(h) for h in linkedid_headers if event.get(h)), "")
        call = self._calls.get(linkedid)
        if call is None or key in call.transfer_keys:
            return None
        call.transfer_keys.add(key)
        return call

    def on_blind_transfer(self, event: Event, now: float, out: list) -> None:
        call = self._new_transfer(event, ("TransfereeLinkedid", "TransfererLinkedid"),
                                  ("blind", event.get("BridgeUniqueid"), event.get("TransfereeUniqueid")))
        if call is None:
            return
        to = f"{event.get('Extension') or ''}@{event.get('Context') or ''}"
        from_ = self._transfer_from(call, event.get("TransfererUniqueid"),
                                    event.get("TransfererChannel"))
        self._add_transfer(call, now, out, "blind", from_, to,
                           event.get("TransfereeChannel") or "", event.get("TransfereeUniqueid") or "")

    def on_attended_transfer(self, event: Event, now: float, out: list) -> None:
        call = self._new_transfer(
            event, ("TransfereeLinkedid", "OrigTransfererLinkedid", "SecondTransfererLinkedid"),
            ("attended", event.get("OrigBridgeUniqueid"), event.get("SecondBridgeUniqueid")))
        if call is None:
            return
        exten = event.get("TransferTargetExten")
        if exten:
            to = f"{exten}@{event.get('TransferTargetContext') or ''}"
        else:
            to = event.get("TransferTargetChannel") or event.get("DestApp") or ""
        from_ = self._transfer_from(call, event.get("OrigTransfererUniqueid"),
                                    event.get("OrigTransfererChannel"))
        for uniqueid in list(call.holds):   # the transferee's hold ends with the transfer
            self._close_hold(call, uniqueid, now, out)
        self._add_transfer(call, now, out, "attended", from_, to,
                           event.get("TransfereeChannel") or "", event.get("TransfereeUniqueid") or "")

    # -- queue members ----------------------------------------------------------------------
    def _member_fields(self, event: Event) -> tuple[str, str, str]:
        interface = event.get("Interface") or event.get("Location") or ""
        name = event.get("MemberName") or event.get("Name") or ""
        return interface, name, event.get("StateInterface") or ""

    def on_queue_member_added(self, event: Event, now: float, out: list) -> None:
        interface, name, state_interface = self._member_fields(event)
        queue = event.get("Queue") or ""
        if not interface or not queue:
            return
        self._login(interface, name, state_interface, queue, event, now, out, emit=True)

    def _login(self, interface: str, name: str, state_interface: str, queue: str, event: Event,
               now: float, out: list, *, emit: bool) -> Agent:
        agent = self._agent(interface, name, state_interface)
        paused = event.get("Paused") == "1"
        reason = event.get("PausedReason") or ""
        wrapup = _float(event.get("Wrapuptime"))
        membership = agent.queues.get(queue)
        if membership is not None:
            membership.wrapup = wrapup or membership.wrapup
            self._apply_pause(agent, queue, paused, reason, now, out)
            return agent
        agent.queues[queue] = Membership(paused, reason, wrapup)
        self._queue(queue).members.add(interface)
        resting = agent.state in ("logged_out", "available", "paused")
        if emit:
            self._set_agent(agent, agent.resting_state() if resting else agent.state, now, out,
                            queue=queue, reason=reason or None, emit_as="logged_in")
        elif resting:
            agent.state = agent.resting_state()
            agent.reason = agent.pause_reason()
            agent.since = agent.since or now
        return agent

    def on_queue_member_removed(self, event: Event, now: float, out: list) -> None:
        interface, _, _ = self._member_fields(event)
        queue = event.get("Queue") or ""
        agent = self._agents.get(interface)
        if agent is None or queue not in agent.queues:
            return
        self._logout(agent, queue, now, out)

    def _logout(self, agent: Agent, queue: str, now: float, out: list) -> None:
        del agent.queues[queue]
        if queue in self._queues:
            self._queues[queue].members.discard(agent.interface)
        busy = agent.state in ("ringing", "talking", "wrap_up")
        state = agent.state if busy else agent.resting_state()
        self._set_agent(agent, state, now, out, linkedid=agent.linkedid if busy else None,
                        queue=queue, emit_as="logged_out",
                        reason=agent.pause_reason() if state == "paused" else None)

    def on_queue_member_pause(self, event: Event, now: float, out: list) -> None:
        interface, name, state_interface = self._member_fields(event)
        queue = event.get("Queue") or ""
        if not interface or not queue:
            return
        agent = self._agents.get(interface)
        if agent is None or queue not in agent.queues:
            # a member we did not know: it was logged in and unpaused until now
            agent = self._login(interface, name, state_interface, queue, {}, now, out,
                                emit=False)
        self._apply_pause(agent, queue, event.get("Paused") == "1",
                          event.get("PausedReason") or "", now, out)

    def on_queue_member_status(self, event: Event, now: float, out: list) -> None:
        # Sent on every device state change: learn members we did not know (silently, as
        # they are), and catch up with a pause we missed; call states come from Agent*.
        interface, name, state_interface = self._member_fields(event)
        queue = event.get("Queue") or ""
        if not interface or not queue:
            return
        agent = self._agents.get(interface)
        if agent is None or queue not in agent.queues:
            self._login(interface, name, state_interface, queue, event, now, out, emit=False)
            return
        self._apply_pause(agent, queue, event.get("Paused") == "1",
                          event.get("PausedReason") or "", now, out)

    def _apply_pause(self, agent: Agent, queue: str, paused: bool, reason: str, now: float,
                     out: list) -> None:
        membership = agent.queues[queue]
        if membership.paused == paused and (not paused or membership.reason == reason):
            return
        membership.paused = paused
        membership.reason = reason if paused else ""
        busy = agent.state in ("ringing", "talking", "wrap_up")
        state = agent.state if busy else agent.resting_state()
        self._set_agent(agent, state, now, out, linkedid=agent.linkedid if busy else None,
                        queue=queue, reason=(reason or None) if paused else None,
                        emit_as="paused" if paused else "unpaused")
        if not busy:
            agent.reason = agent.pause_reason() if state == "paused" else None

    # -- Asterisk going away ------------------------------------------------------------------
    def on_shutdown(self, event: Event, now: float, out: list) -> None:
        """Asterisk stops or restarts: calls still up end without their Hangup; the next
        ``resync`` closes them (as ``shutdown``)."""
        self.shutdown_seen = True
        for call in self._calls.values():
            call.shutdown = True
