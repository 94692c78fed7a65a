"""Every real Asterisk 22 AMI recording parses cleanly and matches its summary.json counts."""
import collections

import pytest

from ami_helpers import AMI_STREAMS, TRACES, ProtocolHarness, interleaved, raw, summary
from cti.ami.parser import AmiMessage, AmiParser

SCENARIOS = sorted(p.parent.name for p in TRACES.glob("*/summary.json"))


def test_the_trace_set_is_complete():
    """All recorded AMI streams are found (so a missing folder cannot pass silently)."""
    assert len(SCENARIOS) == 11
    assert ("load_burst", "ami") in AMI_STREAMS and ("shutdown", "ami_restart") in AMI_STREAMS
    assert len(AMI_STREAMS) == 20


@pytest.mark.parametrize("scenario,stem", AMI_STREAMS)
def test_every_recorded_stream_parses_without_errors(scenario, stem):
    """Banner read, no RemoteProtocolError, nothing left half-parsed at EOF."""
    parser = AmiParser()
    items = parser.feed(raw(scenario, stem))
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert all(isinstance(item, AmiMessage) for item in items)
    assert items and parser.feed_eof() == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_event_counts_match_the_summary(scenario):
    """Per-event-type counts, message count and Response-carrying count equal summary.json."""
    expected = summary(scenario)
    items = AmiParser().feed(raw(scenario))
    counts = collections.Counter(m.name for m in items if m.kind == "event")
    assert dict(counts) == expected["event_counts"]
    assert len(items) == expected["messages"]
    assert sum(counts.values()) == expected["events"]
    # summary.json counts every message with a Response header (OriginateResponse events too)
    assert sum(1 for m in items if "Response" in m) == expected["responses"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_recorded_chunks_parse_like_the_whole_stream(scenario):
    """Feeding the recv() chunks of ami.timing gives the same messages as one big read."""
    data = raw(scenario)
    parser, items = AmiParser(), []
    for line in (TRACES / scenario / "ami.timing").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] != "EOF":
            offset, length = int(parts[1]), int(parts[2])
            items += parser.feed(data[offset:offset + length])
    assert [m.pairs() for m in items] == [m.pairs() for m in AmiParser().feed(data)]


def test_shutdown_streams_end_with_the_shutdown_event():
    """Both shutdown recordings end with Event: Shutdown (Restart True / False), nothing after."""
    restart = AmiParser().feed(raw("shutdown", "ami_restart"))
    stop = AmiParser().feed(raw("shutdown"))
    assert [m.name for m in restart] == ["Success", "FullyBooted", "SuccessfulAuth", "Shutdown"]
    assert restart[-1]["Restart"] == "True" and stop[-1]["Restart"] == "False"
    assert stop[-1]["Shutdown"] == "Cleanly"
    assert sum(1 for m in stop if m.kind == "event") == 103


def test_whole_recorded_session_through_the_protocol():
    """The ami_actions stream through AmiProtocol: unmatched recorder replies are ignored and
    every event reaches on_event."""
    harness = ProtocolHarness()
    harness.receive(interleaved("ami_actions"))
    assert len(harness.events) == summary("ami_actions")["events"]
    assert harness.protocol.protocol_errors == 0

