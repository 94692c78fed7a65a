"""What the call tracker tells the rest of Hotline, and how it is delivered.

The tracker folds raw AMI events into a few *domain events* (a call started, was
queued, rang an agent, was answered, ended with a complete record ...). Everything
downstream (the call recorder, the CTI bridge that builds screen pops, metrics, the
wallboard) subscribes to these, never to AMI. ``EventBus`` delivers them in-process;
``PopPublisher`` is the seam for fanning screen pops out to whichever node holds an
agent's WebSocket (in-process now, Redis pub/sub later).

Times (``at``, ``started_at`` ...) are POSIX seconds (floats) from the tracker's clock;
the recorder turns them into aware UTC datetimes.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Mapping, Protocol

__all__ = [
    "DomainEvent", "CallRecord", "CallStarted", "IvrJoined", "CallQueued", "AgentRinging",
    "AgentRingNoAnswer", "CallAnswered", "CallHeld", "CallUnheld", "CallTransferred",
    "CallAbandoned", "CallEnded", "AgentStateChanged", "EVENT_TYPES", "EventBus",
    "PopPublisher", "InProcessPopPublisher",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CallRecord:
    """One call as the ``calls`` table stores it (docs/data-model.md), times as POSIX seconds.

    ``agent`` is the queue member's interface (``PJSIP/1001``, ``Local/agent1@agents/n``);
    ``agent_name`` its MemberName. ``transfers`` items are ``{kind, from, to, at}`` with
    ``kind`` one of ``blind``/``attended``/``redirect``.
    """

    linkedid: str
    caller_num: str = ""
    caller_name: str = ""
    dnid: str = ""
    ivr_session_id: str | None = None
    queue: str | None = None
    tier: str | None = None
    started_at: float = 0.0
    ivr_entered_at: float | None = None
    queue_entered_at: float | None = None
    answered_at: float | None = None
    queue_left_at: float | None = None
    ended_at: float | None = None
    wait_seconds: float | None = None
    talk_seconds: float | None = None
    hold_seconds: float = 0.0
    agent: str | None = None
    agent_name: str | None = None
    transfers: list[dict[str, Any]] = field(default_factory=list)
    disposition: str = "unknown"
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    close_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DomainEvent:
    """Base of every domain event: ``kind`` names it, ``linkedid`` and ``at`` place it."""

    __slots__ = ()
    kind: ClassVar[str] = ""
    linkedid: str | None
    at: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        data["kind"] = self.kind
        return data


@dataclass(slots=True)
class CallStarted(DomainEvent):
    kind: ClassVar[str] = "call_started"
    linkedid: str
    at: float
    caller_num: str
    caller_name: str
    dnid: str
    channel: str
    uniqueid: str


@dataclass(slots=True)
class IvrJoined(DomainEvent):
    """The call's IVR session id is known (``HOTLINE_SESSION`` set on one of its channels)."""
    kind: ClassVar[str] = "ivr_joined"
    linkedid: str
    at: float
    ivr_session_id: str
    channel: str
    uniqueid: str


@dataclass(slots=True)
class CallQueued(DomainEvent):
    kind: ClassVar[str] = "call_queued"
    linkedid: str
    at: float
    queue: str
    position: int
    count: int
    caller_num: str
    caller_name: str
    ivr_session_id: str | None
    channel: str
    uniqueid: str


@dataclass(slots=True)
class AgentRinging(DomainEvent):
    """An agent's phone rings for a queued call: everything a screen pop starts from."""
    kind: ClassVar[str] = "agent_ringing"
    linkedid: str
    at: float
    agent: str            # interface
    agent_name: str       # MemberName
    queue: str
    caller_num: str
    caller_name: str
    wait_seconds: float   # in queue so far
    ivr_session_id: str | None
    tier: str | None
    channel: str          # the caller's queue channel
    uniqueid: str
    agent_channel: str    # the leg ringing the agent (DestChannel)
    agent_uniqueid: str


@dataclass(slots=True)
class AgentRingNoAnswer(DomainEvent):
    kind: ClassVar[str] = "agent_ring_no_answer"
    linkedid: str
    at: float
    agent: str
    agent_name: str
    queue: str
    ring_seconds: float
    channel: str
    uniqueid: str


@dataclass(slots=True)
class CallAnswered(DomainEvent):
    kind: ClassVar[str] = "call_answered"
    linkedid: str
    at: float
    agent: str
    agent_name: str
    queue: str | None
    wait_seconds: float | None
    caller_num: str
    caller_name: str
    ivr_session_id: str | None
    channel: str
    uniqueid: str
    agent_channel: str
    agent_uniqueid: str


@dataclass(slots=True)
class CallHeld(DomainEvent):
    kind: ClassVar[str] = "call_held"
    linkedid: str
    at: float
    channel: str
    uniqueid: str


@dataclass(slots=True)
class CallUnheld(DomainEvent):
    kind: ClassVar[str] = "call_unheld"
    linkedid: str
    at: float
    channel: str
    uniqueid: str
    held_seconds: float


@dataclass(slots=True)
class CallTransferred(DomainEvent):
    """``transfer_kind``: ``blind``, ``attended`` or ``redirect`` (an AMI Redirect of a
    connected caller, which Asterisk reports with no transfer event at all)."""
    kind: ClassVar[str] = "call_transferred"
    linkedid: str
    at: float
    transfer_kind: str
    from_: str
    to: str
    channel: str
    uniqueid: str


@dataclass(slots=True)
class CallAbandoned(DomainEvent):
    """The caller hung up while queued (a queue *timeout* is not an abandon)."""
    kind: ClassVar[str] = "call_abandoned"
    linkedid: str
    at: float
    queue: str
    position: int
    wait_seconds: float
    channel: str
    uniqueid: str


@dataclass(slots=True)
class CallEnded(DomainEvent):
    """The call is over; ``record`` is final (the tracker forgets the call after this)."""
    kind: ClassVar[str] = "call_ended"
    linkedid: str
    at: float
    record: CallRecord
    timeline: list[tuple[float, str]] = field(default_factory=list)   # (at, state) changes


@dataclass(slots=True)
class AgentStateChanged(DomainEvent):
    """``state`` is one of db.models.AGENT_STATES; ``linkedid`` the call, when one caused it."""
    kind: ClassVar[str] = "agent_state_changed"
    linkedid: str | None
    at: float
    agent: str
    agent_name: str
    state: str
    previous: str | None
    queue: str | None = None
    reason: str | None = None


EVENT_TYPES: dict[str, type] = {cls.kind: cls for cls in (
    CallStarted, IvrJoined, CallQueued, AgentRinging, AgentRingNoAnswer, CallAnswered,
    CallHeld, CallUnheld, CallTransferred, CallAbandoned, CallEnded, AgentStateChanged)}

Handler = Callable[[DomainEvent], Any]


class EventBus:
    """Synchronous in-process fan-out of domain events, in the order they happen.

    A subscriber that raises is logged and skipped: one broken consumer must not stop
    call tracking or the other consumers.
    """

    def __init__(self) -> None:
        self._all: list[Handler] = []
        self._by_kind: dict[str, list[Handler]] = {}

    def subscribe(self, handler: Handler, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``handler(event)`` for every event (or only those of ``kinds``).

        Returns a function that unsubscribes it.
        """
        if kinds is None:
            self._all.append(handler)
            return lambda: self._all.remove(handler)
        kinds = list(kinds)
        for kind in kinds:
            if kind not in EVENT_TYPES:
                raise ValueError(f"unknown domain event kind {kind!r}; "
                                 f"known: {', '.join(sorted(EVENT_TYPES))}")
            self._by_kind.setdefault(kind, []).append(handler)

        def unsubscribe() -> None:
            for kind in kinds:
                self._by_kind[kind].remove(handler)
        return unsubscribe

    @property
    def has_subscribers(self) -> bool:
        return bool(self._all) or any(self._by_kind.values())

    def publish(self, event: DomainEvent) -> None:
        for handler in (*self._all, *self._by_kind.get(event.kind, ())):
            try:
                handler(event)
            except Exception:
                log.exception("event=subscriber_failed kind=%s linkedid=%s handler=%r",
                              event.kind, event.linkedid, handler)

    def publish_all(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            self.publish(event)


class PopPublisher(Protocol):
    """Delivers a screen pop to the node(s) holding an agent's browser connection.

    The CTI bridge builds the pop (from ``AgentRinging`` + customer data) and calls
    ``publish``; each node's WebSocket layer ``subscribe``s for the agents connected to
    it. In one process this is a dict of callbacks; across nodes, Redis pub/sub.
    """

    def publish(self, agent: str, pop: Mapping[str, Any]) -> int:
        """Send ``pop`` to ``agent``; the number of local receivers reached (may be 0)."""
        ...

    def subscribe(self, agent: str, receiver: Callable[[Mapping[str, Any]], Any]) -> Callable[[], None]:
        """Receive pops for ``agent``; returns an unsubscribe function."""
        ...


class InProcessPopPublisher:
    """``PopPublisher`` for a single Hotline process: pops go straight to local receivers."""

    def __init__(self) -> None:
        self._receivers: dict[str, list[Callable[[Mapping[str, Any]], Any]]] = {}

    def publish(self, agent: str, pop: Mapping[str, Any]) -> int:
        reached = 0
        for receiver in list(self._receivers.get(agent, ())):
            try:
                receiver(pop)
            except Exception:
                log.exception("event=pop_receiver_failed agent=%s", agent)
            else:
                reached += 1
        return reached

    def subscribe(self, agent: str, receiver: Callable[[Mapping[str, Any]], Any]) -> Callable[[], None]:
        self._receivers.setdefault(agent, []).append(receiver)

        def unsubscribe() -> None:
            receivers = self._receivers.get(agent, [])
            if receiver in receivers:
                receivers.remove(receiver)
            if not receivers:
                self._receivers.pop(agent, None)
        return unsubscribe
