"""What the AMI parser's fast paths must keep: the same headers, lookups and routing as the
plain reading of the wire (one dict built in C, a lazy ``action_id``, LF-only detection
on the decoded text, a case-folded index built in C on the first miss, big reads parsed
a window at a time)."""
from ami_helpers import ProtocolHarness, parse_all, raw
from hypothesis import given, settings
from hypothesis import strategies as st

from cti.ami.parser import AmiMessage, AmiParser

KEYS = ["Uniqueid", "UNIQUEID", "uniqueid", "ActionID", "Actionid", "Output", "Channel",
        "Cause-txt"]
VALUES = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                 max_size=12)


def expected_get(pairs, key):
    """``get`` as specified: the first exact-spelling value, else the first in any case."""
    exact = [v for k, v in pairs if k == key]
    if exact:
        return exact[0]
    folded = [v for k, v in pairs if k.lower() == key.lower()]
    return folded[0] if folded else None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=8))
def test_parsed_headers_match_a_plain_reading_of_the_lines(headers):
    """Property: order, repeats, every lookup spelling, ``len`` and ``action_id`` agree with
    the lines as written, values containing ": " included."""
    pairs = [("Event", "Probe")] + headers
    wire = "".join(f"{k}: {v}\r\n" for k, v in pairs).encode("utf-8") + b"\r\n"
    (msg,) = parse_all(wire, banner=False)
    assert msg.pairs() == pairs
    for key in KEYS + ["Event", "event", "Absent"]:
        assert msg.get(key) == expected_get(pairs, key), key
        assert msg.getall(key) == [v for k, v in pairs if k.lower() == key.lower()]
    assert len(msg) == len({k.lower() for k, _ in pairs})
    assert msg.action_id == next((v for k, v in headers if k == "ActionID"), None)
    assert msg == AmiMessage(pairs)


def test_first_spelling_wins_a_case_insensitive_lookup():
    """Two spellings of one header: the exact one is a hit, another case gets the first."""
    (msg,) = parse_all(b"Event: X\r\nUniqueID: a\r\nUniqueid: b\r\n\r\n", banner=False)
    assert (msg["Uniqueid"], msg["UniqueID"], msg["uniqueid"]) == ("b", "a", "a")
    assert len(msg) == 2


def test_value_with_colon_space_is_kept_whole():
    """Only the first ": " of a line separates header from value."""
    (msg,) = parse_all(b"Event: Newexten\r\nAppData: Playback: hello\r\nUniqueid: 1\r\n\r\n",
                       banner=False)
    assert msg["AppData"] == "Playback: hello" and msg["Uniqueid"] == "1"


def test_lf_only_message_after_crlf_ones_in_the_same_read():
    """An LF-only message ending a read that started with CRLF messages is still split off."""
    items = parse_all(b"Event: A\r\nUniqueid: 1\r\n\r\nEvent: B\nUniqueid: 2\n\n", banner=False)
    assert [(m.name, m["Uniqueid"]) for m in items] == [("A", "1"), ("B", "2")]


def test_lf_only_message_between_crlf_ones_in_the_same_read():
    """An LF-only blank line in the middle of a read separates two messages."""
    items = parse_all(b"Event: A\r\nUniqueid: 1\r\n\r\nEvent: B\nUniqueid: 2\n\n"
                      b"Event: C\r\nUniqueid: 3\r\n\r\n", banner=False)
    assert [(m.name, m["Uniqueid"]) for m in items] == [("A", "1"), ("B", "2"), ("C", "3")]


def test_lf_only_message_completed_by_a_later_read():
    """An LF-only message whose blank line arrives in the next read comes out whole."""
    parser = AmiParser(expect_banner=False)
    first = parser.feed(b"Event: A\r\n\r\nEvent: B\nUniqueid: 2\n")
    second = parser.feed(b"\nEvent: C\r\n\r\n")
    assert [m.name for m in first] == ["A"]
    assert [(m.name, m.get("Uniqueid")) for m in second] == [("B", "2"), ("C", None)]


def test_pairs_is_a_copy():
    """Changing the list ``pairs()`` returns does not change the message."""
    (msg,) = parse_all(b"Event: X\r\nUniqueid: 1\r\n\r\n", banner=False)
    msg.pairs().append(("Linkedid", "2"))
    assert msg.pairs() == [("Event", "X"), ("Uniqueid", "1")] and "Linkedid" not in msg


def test_action_id_is_read_from_any_line_of_a_parsed_message():
    """``action_id`` of a parsed response or event is its ActionID line, wherever it is."""
    response, event = parse_all(b"Response: Success\r\nMessage: ok\r\nActionID: h-9\r\n\r\n"
                                b"Event: OriginateResponse\r\nActionID: h-9\r\nResponse: Success"
                                b"\r\n\r\n", banner=False)
    assert (response.action_id, event.action_id) == ("h-9", "h-9")


def test_event_with_an_action_id_goes_to_on_event_when_nothing_is_pending():
    """A late reply event (its action already finished) is news like any other event."""
    h = ProtocolHarness()
    h.receive(b"Event: OriginateResponse\r\nActionID: hl-77\r\nResponse: Failure\r\n"
              b"Uniqueid: <unknown>\r\n\r\n")
    assert [(e.name, e.action_id) for e in h.events] == [("OriginateResponse", "hl-77")]


def test_event_with_an_unrelated_action_id_goes_to_on_event_while_another_is_pending():
    """An ActionID that is not pending does not capture the event."""
    h = ProtocolHarness()
    h.protocol.send_action("Ping")
    h.receive(b"Event: OriginateResponse\r\nActionID: other-1\r\nResponse: Success\r\n\r\n")
    assert [e.action_id for e in h.events] == ["other-1"]
    assert h.protocol.pending_actions == 1


def test_one_big_read_of_a_recorded_burst_equals_small_reads():
    """A read of megabytes (parsed a window at a time) gives exactly the messages of 4 KiB reads."""
    data = raw("load_burst")
    whole = AmiParser().feed(data)
    parser, small = AmiParser(), []
    for i in range(0, len(data), 4096):
        small += parser.feed(data[i:i + 4096])
    assert len(whole) > 5000
    assert [m.pairs() for m in whole] == [m.pairs() for m in small]


def test_big_read_with_lf_only_and_oversized_window_messages():
    """LF-only messages and a message longer than a parse window, inside one big read, all
    come out in order."""
    crlf = [b"Event: E%d\r\nUniqueid: %d\r\nPad: %s\r\n\r\n" % (i, i, b"x" * 300)
            for i in range(600)]
    crlf[150] = b"Event: LF150\nUniqueid: 150\n\n"
    crlf[420] = b"Event: LF420\nUniqueid: 420\n\n"
    crlf[300] = b"Event: Big\r\nUniqueid: 300\r\nPad: " + b"y" * 100_000 + b"\r\n\r\n"
    items = AmiParser(expect_banner=False).feed(b"".join(crlf))
    assert [m["Uniqueid"] for m in items] == [str(i) for i in range(600)]
    assert [items[i].name for i in (149, 150, 300, 420)] == ["E149", "LF150", "Big", "LF420"]
    assert len(items[300]["Pad"]) == 100_000
