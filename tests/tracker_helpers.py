"""Replay the real Asterisk 22 AMI recordings (../shared/asterisk-traces) into a tracker.

``ami.raw`` holds the bytes exactly as received and ``ami.timing`` when each recv()
chunk arrived; the replay feeds the chunks through the real AMI parser with the
tracker's clock set to each chunk's receive time, so durations are the recording's.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

from cti.ami.parser import AmiMessage, AmiParser
from cti.events import CallEnded, DomainEvent, EventBus
from cti.tracker import CallTracker

from traces import TRACES


class ReplayClock:
    """A settable clock: ``clock()`` returns ``now``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def chunks(scenario: str, stem: str = "ami") -> list[tuple[float, bytes]]:
    """``(receive time, bytes)`` for every recv() chunk of ``<scenario>/<stem>.raw``."""
    raw = (TRACES / scenario / f"{stem}.raw").read_bytes()
    out = []
    for line in (TRACES / scenario / f"{stem}.timing").read_text().splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[2] == "EOF":
            continue
        when, offset, length = _epoch(parts[0]), int(parts[1]), int(parts[2])
        out.append((when, raw[offset:offset + length]))
    assert sum(len(c) for _, c in out) == len(raw), f"{scenario}/{stem}.timing does not cover ami.raw"
    return out


def timed_events(scenario: str, stem: str = "ami") -> Iterator[tuple[float, AmiMessage]]:
    """Every AMI event of the recording with its receive time (responses left out)."""
    parser = AmiParser()
    for when, data in chunks(scenario, stem):
        for item in parser.feed(data):
            assert isinstance(item, AmiMessage), f"{scenario}: unreadable AMI: {item!r}"
            if item.kind == "event":
                yield when, item


def make_tracker(**kwargs: Any) -> tuple[CallTracker, ReplayClock, list[DomainEvent]]:
    """A tracker on a replay clock, and the list every domain event it publishes lands in."""
    clock = ReplayClock()
    bus = EventBus()
    published: list[DomainEvent] = []
    bus.subscribe(published.append)
    return CallTracker(clock, bus=bus, **kwargs), clock, published


def replay(tracker: CallTracker, clock: ReplayClock, scenario: str, stem: str = "ami",
           *, stop: Any = None, duplicate: bool = False) -> list[DomainEvent]:
    """Feed the recording; stop before the first event for which ``stop(event)`` is true."""
    out: list[DomainEvent] = []
    for when, event in timed_events(scenario, stem):
        if stop is not None and stop(event):
            break
        clock.now = when
        out.extend(tracker.handle(event))
        if duplicate:
            out.extend(tracker.handle(event))
    return out


def ended_records(events: list[DomainEvent]) -> dict[str, Any]:
    """The final record of every call that ended, by linkedid."""
    return {e.linkedid: e.record for e in events if isinstance(e, CallEnded)}


def kinds(events: list[DomainEvent], linkedid: str | None = None) -> list[str]:
    return [e.kind for e in events if linkedid is None or e.linkedid == linkedid]


def list_events(scenario: str, event_names: set[str], stem: str = "ami") -> list[AmiMessage]:
    """The events named in ``event_names`` (e.g. CoreShowChannel list items)."""
    return [e for _, e in timed_events(scenario, stem) if e.get("Event") in event_names]
