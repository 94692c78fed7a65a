"""The sans-I/O AMI codec: messages out of any chunking, errors reported and skipped, safe encoding."""
import pytest
from hypothesis import given, settings, strategies as st

from ami_helpers import TRACES, parse_all, raw
from cti.ami.errors import LocalProtocolError, RemoteProtocolError
from cti.ami.parser import DEFAULT_MAX_MESSAGE_SIZE, AmiMessage, AmiParser, encode_action

LOGIN_REPLY = (b"Asterisk Call Manager/11.0.0\r\n"
               b"Response: Success\r\nActionID: h-1\r\nMessage: Authentication accepted\r\n\r\n"
               b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 4\r\n\r\n")


def messages(items):
    return [m for m in items if isinstance(m, AmiMessage)]


def errors(items):
    return [e for e in items if isinstance(e, RemoteProtocolError)]


def test_banner_is_the_first_line_and_not_a_message():
    """The greeting is stored in ``banner`` and the reply right after it is parsed."""
    parser = AmiParser()
    items = parser.feed(LOGIN_REPLY)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert [(m.kind, m.name) for m in items] == [("response", "Success"), ("event", "FullyBooted")]


def test_banner_split_across_reads():
    """A banner cut in the middle is completed by the next read."""
    parser = AmiParser()
    assert parser.feed(b"Asterisk Call Man") == []
    assert messages(parser.feed(b"ager/11.0.0\r\nEvent: X\r\n\r\n"))[0].name == "X"
    assert parser.banner == "Asterisk Call Manager/11.0.0"


def test_kind_name_and_action_id():
    """Kind and name come from the first header; ActionID is read wherever it is."""
    items = parse_all(b"Event: QueueMember\r\nQueue: support\r\nActionID: h-7\r\n\r\n"
                      b"Response: Error\r\nMessage: Missing action in request\r\n\r\n"
                      b"Action: Ping\r\nActionID: 3\r\n\r\n"
                      b"Foo: bar\r\n\r\n", banner=False)
    assert [(m.kind, m.name, m.action_id) for m in items] == [
        ("event", "QueueMember", "h-7"), ("response", "Error", None),
        ("action", "Ping", "3"), ("other", "", None)]


def test_headers_keep_order_and_lookup_ignores_case():
    """Arrival order is kept; ``get``/``[]``/``in`` ignore case; absent keys give the default."""
    msg = parse_all(b"Event: Hangup\r\nUniqueid: 1.2\r\nCause-txt: Normal Clearing\r\n\r\n",
                    banner=False)[0]
    assert list(msg) == ["Event", "Uniqueid", "Cause-txt"]
    assert msg["uniqueid"] == msg.get("UNIQUEID") == "1.2"
    assert "cause-TXT" in msg and "Linkedid" not in msg
    assert msg.get("Linkedid", "none") == "none"
    with pytest.raises(KeyError):
        msg["Linkedid"]


def test_repeated_headers_are_all_kept():
    """``getall`` returns every Output:/Variable: line in order; ``get`` the first."""
    msg = parse_all(b"Response: Success\r\nMessage: Command output follows\r\n"
                    b"Output: line 1\r\nOutput: line: 2\r\nOutput: \r\n\r\n", banner=False)[0]
    assert msg.getall("output") == ["line 1", "line: 2", ""]
    assert msg["Output"] == "line 1"
    assert len(msg) == 3


def test_empty_value_with_and_without_space():
    """``AccountCode: `` and ``AccountCode:`` both give an empty value."""
    a, b = parse_all(b"Event: A\r\nAccountCode: \r\n\r\nEvent: B\r\nAccountCode:\r\n\r\n",
                     banner=False)
    assert a["AccountCode"] == "" and b["AccountCode"] == ""


def test_every_chunk_boundary_gives_the_same_messages():
    """Splitting a small recorded stream at any byte offset changes nothing."""
    data = raw("ami_actions", "ami_md5")
    whole = [m.pairs() for m in parse_all(data)]
    for cut in range(len(data) + 1):
        parser = AmiParser()
        items = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert [m.pairs() for m in items] == whole, cut
        assert parser.banner == "Asterisk Call Manager/11.0.0"


def test_byte_by_byte_feeding():
    """One byte per read still yields every message, in order."""
    data = raw("ami_actions", "ami_garbage")
    parser = AmiParser()
    items = [item for i in range(len(data)) for item in parser.feed(data[i:i + 1])]
    assert [m.pairs() for m in items] == [m.pairs() for m in parse_all(data)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=21793), max_size=40))
def test_any_chunking_of_a_recorded_call(cuts):
    """Property: arbitrary read sizes over a whole recorded call give identical messages."""
    data = raw("ivr_caller_hangup")
    expected = [m.pairs() for m in parse_all(data)]
    parser, items, start = AmiParser(), [], 0
    for cut in sorted(set(cuts)) + [len(data)]:
        items += parser.feed(data[start:cut])
        start = cut
    assert [m.pairs() for m in items] == expected


def test_lf_only_line_endings_are_tolerated():
    """Messages ending lines with a bare LF parse like CRLF ones, even mixed."""
    items = parse_all(b"Event: A\nUniqueid: 1\n\nEvent: B\r\nUniqueid: 2\r\n\r\n", banner=False)
    assert [(m.name, m["Uniqueid"]) for m in items] == [("A", "1"), ("B", "2")]


def test_line_without_colon_is_logged_and_skipped(caplog):
    """A colon-less line inside an event is dropped and logged; the rest of that message and
    the next message survive."""
    items = parse_all(b"Event: Odd\r\nno colon here\r\nUniqueid: 9.9\r\n\r\n"
                      b"Event: Next\r\n\r\n", banner=False)
    odd, following = messages(items)
    assert odd.pairs() == [("Event", "Odd"), ("Uniqueid", "9.9")]
    assert following.name == "Next"
    assert "no colon here" in caplog.text and "ami.remote_protocol_error" in caplog.text


def test_block_not_starting_with_a_known_header_is_checked_at_once():
    """A block whose first line is not Event/Response/Action reports bad lines from feed()."""
    items = parse_all(b"Foo: bar\r\nno colon here\r\n\r\nEvent: Next\r\n\r\n", banner=False)
    assert [e.data for e in errors(items)] == ["no colon here"]
    assert [m.pairs() for m in messages(items)] == [[("Foo", "bar")], [("Event", "Next")]]


def test_bare_lf_inside_a_crlf_message_still_splits_lines():
    """A lone LF line end inside a CRLF-terminated message is a line end, not part of a value."""
    (msg,) = parse_all(b"Event: A\r\nUniqueid: 1\nLinkedid: 2\r\n\r\n", banner=False)
    assert (msg["Uniqueid"], msg["Linkedid"]) == ("1", "2")


def test_headerless_block_from_the_garbage_recording_is_skipped():
    """A block with no header at all is one error, and the actions after it still parse."""
    sent = (TRACES / "ami_actions" / "ami_garbage.sent").read_bytes()
    items = AmiParser(expect_banner=False).feed(sent)
    assert [e.data for e in errors(items)] == ["this is not a header"]
    assert [m.name for m in messages(items)] == ["Login", "Ping", "Logoff"]


def test_invalid_utf8_is_replaced_not_fatal():
    """A caller-supplied CallerIDName with invalid UTF-8 decodes with U+FFFD."""
    msg = parse_all(b"Event: NewCallerid\r\nCallerIDName: Jos\xe9 \xff\r\nUniqueid: 1\r\n\r\n",
                    banner=False)[0]
    assert msg["CallerIDName"] == "Jos\ufffd \ufffd"
    assert msg["Uniqueid"] == "1"


def test_one_megabyte_message_is_accepted():
    """A 1 MB Command output (well under the default limit) arrives whole, in 64 KiB reads."""
    big = (b"Response: Success\r\nActionID: big\r\n" + b"Output: " + b"x" * 1_000_000 +
           b"\r\n\r\nEvent: After\r\n\r\n")
    parser, items = AmiParser(expect_banner=False), []
    for i in range(0, len(big), 65536):
        items += parser.feed(big[i:i + 65536])
    assert [m.name for m in items] == ["Success", "After"]
    assert len(items[0]["Output"]) == 1_000_000


@pytest.mark.parametrize("read_size", [65536, 10 * 1024 * 1024])
def test_message_over_the_limit_is_skipped_and_the_next_one_kept(read_size):
    """Over ``max_message_size`` (default 4 MiB) a message is one error; parsing resumes after it."""
    big = (b"Event: Huge\r\n" + b"Output: " + b"y" * (DEFAULT_MAX_MESSAGE_SIZE + 10) +
           b"\r\n\r\nEvent: After\r\nUniqueid: 5\r\n\r\n")
    parser, items = AmiParser(expect_banner=False), []
    for i in range(0, len(big), read_size):
        items += parser.feed(big[i:i + read_size])
    assert len(errors(items)) == 1 and "longer than" in str(errors(items)[0])
    assert [(m.name, m["Uniqueid"]) for m in messages(items)] == [("After", "5")]


def test_eof_mid_message_is_reported():
    """A connection closed inside a message reports the dropped bytes once."""
    parser = AmiParser(expect_banner=False)
    assert parser.feed(b"Event: A\r\n\r\nEvent: Newchannel\r\nChannel: Loc") != []
    (error,) = parser.feed_eof()
    assert isinstance(error, RemoteProtocolError) and "mid-message" in str(error)
    assert parser.feed_eof() == []


def test_lazy_message_drops_a_bad_line_between_good_ones():
    """A colon-less line between headers that contain colons is dropped when headers are read."""
    (msg,) = parse_all(b"Event: SuccessfulAuth\r\nEventTV: 2026-11-22T23:10:42.362+0000\r\n"
                       b"garbage\r\nService: AMI\r\n\r\n", banner=False)
    assert msg.pairs() == [("Event", "SuccessfulAuth"),
                           ("EventTV", "2026-11-22T23:10:42.362+0000"), ("Service", "AMI")]


def test_raw_reencodes_the_message():
    """``raw`` gives back the wire bytes of a CRLF message."""
    data = b"Event: Hangup\r\nUniqueid: 1.2\r\nCause: 16\r\n\r\n"
    assert parse_all(data, banner=False)[0].raw == data


# -- encoding ---------------------------------------------------------------------------------

def test_encode_action_orders_headers_and_repeats_lists():
    """Action and ActionID first, then headers in order; lists repeat; bools and None handled."""
    data = encode_action("Originate", {"Channel": "Local/100@agents/n", "Async": True,
                                       "Variable": ["A=1", "B=2"], "Account": None}, "h-9")
    assert data == (b"Action: Originate\r\nActionID: h-9\r\nChannel: Local/100@agents/n\r\n"
                    b"Async: true\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n")


def test_encoded_action_parses_back():
    """The server-side parser reads what the encoder writes, non-ASCII included."""
    data = encode_action("Setvar", [("Variable", "NAME"), ("Value", "Zoë: ok")], "x-1")
    (msg,) = AmiParser(expect_banner=False).feed(data)
    assert (msg.kind, msg.name, msg.action_id, msg["Value"]) == ("action", "Setvar", "x-1", "Zoë: ok")


@pytest.mark.parametrize("headers", [
    {"Value": "x\r\nAction: Hangup"}, {"Value": "line\nbreak"}, {"Value": "cr\ronly"},
    {"Variable": ["ok", "bad\n"]},
])
def test_cr_or_lf_in_a_value_is_refused(headers):
    """Header injection through a value raises LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match="CR/LF"):
        encode_action("Setvar", headers, "1")


@pytest.mark.parametrize("name,headers", [
    ("Ping\r\nAction: Hangup", {}), ("", {}), ("Setvar", {"Bad:Name": "1"}),
    ("Setvar", {"": "1"}), ("Setvar", {"X\r\n": "1"}),
])
def test_bad_action_or_header_names_are_refused(name, headers):
    """Names with a colon, CR/LF, or empty names are our bug: LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        encode_action(name, headers)
