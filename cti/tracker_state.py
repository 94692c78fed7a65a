"""The live state the call tracker keeps: channels, calls, agents and queues.

Plain slotted objects with no behaviour beyond small derived values, so the tracker's
handlers read like the rules they implement and snapshots are cheap to take. Calls are
keyed by Linkedid, channels by Uniqueid: channel *names* are never keys, because their
sequence numbers restart when Asterisk restarts.
"""
from __future__ import annotations

from typing import Any

from cti.events import CallRecord

__all__ = ["Channel", "Call", "Agent", "Membership", "QueueCaller", "Queue",
           "device_of_channel", "device_of_interface", "clean_callerid", "RESTING"]

#: The states an agent returns to when no call involves them.
RESTING = ("available", "paused", "logged_out")


def clean_callerid(value: str | None) -> str:
    """Asterisk writes ``<unknown>`` for an absent caller ID; we store ``""``."""
    if not value or value == "<unknown>":
        return ""
    return value


def device_of_channel(name: str) -> str:
    """``PJSIP/1001-0000002a`` → ``PJSIP/1001``; ``Local/a1@agents-00000005;1`` →
    ``Local/a1@agents`` (what a queue member interface names, minus its options)."""
    dash = name.rfind("-")
    return name[:dash] if dash > 0 else name


def device_of_interface(interface: str) -> str:
    """``Local/agent1@agents/n`` → ``Local/agent1@agents``; ``PJSIP/1001`` unchanged."""
    parts = interface.split("/", 2)
    return "/".join(parts[:2])


class Channel:
    __slots__ = ("uniqueid", "linkedid", "name", "context", "exten", "bridge",
                 "hangup_requested", "blind_transfer", "started_at")

    def __init__(self, uniqueid: str, linkedid: str, name: str, context: str = "",
                 exten: str = "", started_at: float = 0.0) -> None:
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.name = name
        self.context = context
        self.exten = exten
        self.bridge: str | None = None
        self.hangup_requested = False
        self.blind_transfer = False
        self.started_at = started_at


class Call:
    """One call (all channels sharing a Linkedid) while it is live."""

    __slots__ = ("record", "channels", "root_uid", "customer_uid", "agent_uid",
                 "connect_location", "ringing", "holds", "bridged_since", "bridged_total",
                 "bridged_ever", "queue_result", "abandon_position", "outcome",
                 "root_cause", "last_cause", "shutdown", "transfer_keys", "timeline")

    def __init__(self, record: CallRecord, root_uid: str) -> None:
        self.record = record
        self.channels: dict[str, Channel] = {}
        self.root_uid = root_uid
        self.customer_uid: str | None = None     # the caller's channel in the queue / bridge
        self.agent_uid: str | None = None        # the answering agent's leg
        self.connect_location: tuple[str, str] | None = None  # (context, exten) at answer
        self.ringing: dict[str, str] = {}        # agent leg uniqueid -> agent interface
        self.holds: dict[str, float] = {}        # uniqueid on hold -> since
        self.bridged_since: float | None = None
        self.bridged_total = 0.0
        self.bridged_ever = False
        self.queue_result: str | None = None     # None / 'abandon_pending' / 'abandoned' / 'timeout'
        self.abandon_position = 0
        self.outcome: str | None = None          # HOTLINE_OUTCOME from the IVR
        self.root_cause: tuple[int | None, str | None] | None = None
        self.last_cause: tuple[int | None, str | None] | None = None
        self.shutdown = False                    # Asterisk was shutting down when it ended
        self.transfer_keys: set[Any] = set()
        self.timeline: list[tuple[float, str]] = []

    @property
    def linkedid(self) -> str:
        return self.record.linkedid

    def state(self) -> str:
        """A one-word summary for wallboards: ivr, queued, ringing, talking, held ..."""
        record = self.record
        if self.holds:
            return "held"
        if record.answered_at is not None:
            return "talking"
        if record.queue_entered_at is not None and record.queue_left_at is None:
            return "ringing_agent" if self.ringing else "queued"
        if record.ivr_entered_at is not None:
            return "ivr"
        return "ringing"


class Membership:
    __slots__ = ("paused", "reason", "wrapup")

    def __init__(self, paused: bool = False, reason: str = "", wrapup: float = 0.0) -> None:
        self.paused = paused
        self.reason = reason
        self.wrapup = wrapup


class Agent:
    """A queue member, keyed by interface (``PJSIP/1001``); state is agent-wide."""

    __slots__ = ("interface", "name", "queues", "state", "reason", "linkedid", "leg_uid",
                 "since", "wrapup_until")

    def __init__(self, interface: str, name: str = "") -> None:
        self.interface = interface
        self.name = name or interface
        self.queues: dict[str, Membership] = {}
        self.state = "logged_out"
        self.reason: str | None = None
        self.linkedid: str | None = None   # the call ringing / talking / in wrap-up
        self.leg_uid: str | None = None    # the agent's channel for that call
        self.since = 0.0
        self.wrapup_until: float | None = None

    def resting_state(self) -> str:
        """What the agent is when no call involves them."""
        if not self.queues:
            return "logged_out"
        if all(m.paused for m in self.queues.values()):
            return "paused"
        return "available"

    def pause_reason(self) -> str | None:
        reasons = [m.reason for m in self.queues.values() if m.paused and m.reason]
        return reasons[0] if reasons else None

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "agent": self.interface, "name": self.name, "state": self.state,
            "reason": self.reason, "linkedid": self.linkedid,
            "seconds_in_state": max(0.0, now - self.since) if self.since else None,
            "queues": {q: {"paused": m.paused, "reason": m.reason or None}
                       for q, m in self.queues.items()},
        }


class QueueCaller:
    __slots__ = ("linkedid", "uniqueid", "position", "joined_at", "caller_num", "caller_name")

    def __init__(self, linkedid: str, uniqueid: str, position: int, joined_at: float,
                 caller_num: str, caller_name: str) -> None:
        self.linkedid = linkedid
        self.uniqueid = uniqueid
        self.position = position
        self.joined_at = joined_at
        self.caller_num = caller_num
        self.caller_name = caller_name


class Queue:
    __slots__ = ("name", "callers", "members", "strategy")

    def __init__(self, name: str) -> None:
        self.name = name
        self.callers: dict[str, QueueCaller] = {}   # by the caller's channel uniqueid
        self.members: set[str] = set()              # interfaces
        self.strategy: str | None = None

    def remove_caller(self, uniqueid: str) -> QueueCaller | None:
        """Take a caller out; those behind move up one place, as in app_queue."""
        caller = self.callers.pop(uniqueid, None)
        if caller is not None:
            for other in self.callers.values():
                if other.position > caller.position:
                    other.position -= 1
        return caller

    def snapshot(self, now: float) -> dict[str, Any]:
        callers = sorted(self.callers.values(), key=lambda c: c.position)
        return {
            "queue": self.name,
            "strategy": self.strategy,
            "members": sorted(self.members),
            "callers": [{"linkedid": c.linkedid, "uniqueid": c.uniqueid, "position": c.position,
                         "waiting_seconds": max(0.0, now - c.joined_at),
                         "caller_num": c.caller_num, "caller_name": c.caller_name}
                        for c in callers],
        }
