"""The sans-I/O AGI parser: every reply variant Asterisk sends, the environment block,
the unsolicited HANGUP line, bad input from the peer and misuse by our own code."""
import pytest
from hypothesis import given, strategies as st

from ivr.agi import (
    NEED_DATA, AgiConnection, AgiEnvironment, ConnectionClosed, LocalProtocolError,
    RemoteProtocolError, parse_reply, parse_request,
)
from ivr.commands import AgiResult, CallerHangup, GetVariable, StreamFile

ENV = (b"agi_network: yes\nagi_network_script: main?lang=zh\n"
       b"agi_request: agi://127.0.0.1:4573/main?lang=zh\nagi_channel: Local/main@ivr-in-00000000;2\n"
       b"agi_uniqueid: 1795388557.1\nagi_callerid: 5551234\nagi_calleridname: Alice Caller\n"
       b"agi_dnid: unknown\nagi_accountcode: \nagi_arg_2: 2\nagi_arg_1: first arg\n\n")


def events(conn):
    return list(conn.events())


def ready(**kw):
    conn = AgiConnection(**kw)
    conn.receive_data(ENV)
    assert isinstance(conn.next_event(), AgiEnvironment)
    return conn


R = AgiResult


@pytest.mark.parametrize("line,expected", [
    # plain results (panoramisk's cases, then the ones Asterisk 22 really sends)
    ("200 result=0", R(200, "0")),
    ("200 result=1", R(200, "1")),
    ("200 result=1234", R(200, "1234")),
    ("200 result=0123", R(200, "0123")),                      # GET DATA digits keep the zero
    ("200 result=-1", R(200, "-1")),
    ("200 result=-2", R(200, "-2")),                          # EXEC of a missing application
    ("200 result= (timeout)", R(200, "", "timeout")),        # GET DATA, nothing typed
    ("200 result=12 (timeout)", R(200, "12", "timeout")),    # GET DATA, some digits then timeout
    ("200 result=0 (timeout) endpos=1234", R(200, "0", "timeout", 1234)),
    ("200 result=49 endpos=14080", R(200, "49", None, 14080)),
    ("200 result=-1 endpos=0", R(200, "-1", None, 0)),      # missing prompt
    ("200 result=-1 endpos=24160", R(200, "-1", None, 24160)),
    ("200 result=1 (5551234)", R(200, "1", "5551234")),
    # data with spaces and parentheses
    ("200 result=1 (Alice Caller on Local/main@ivr-in-00000000;2 uid 1795388557.1)",
     R(200, "1", "Alice Caller on Local/main@ivr-in-00000000;2 uid 1795388557.1")),
    ("200 result=1 (a (nested) value)", R(200, "1", "a (nested) value")),
    ("200 result=1 (x) endpos=5) endpos=3", R(200, "1", "x) endpos=5", 3)),
    ("200 result=1 ()", R(200, "1", "")),
    # RECORD FILE / CONTROL STREAM FILE / SPEECH variants from res_agi.c
    ("200 result=35 (dtmf) endpos=8000", R(200, "35", "dtmf", 8000)),
    ("200 result=-1 (hangup) endpos=100", R(200, "-1", "hangup", 100)),
    ("200 result=0 (randomerror) endpos=0", R(200, "0", "randomerror", 0)),
    ("200 result=1 (digit) digit=5 endpos=100", R(200, "1", "digit", 100, "digit=5")),
    ("200 result=1 (speech) endpos=12 results=2 0 foo", R(200, "1", "speech", 12, "results=2 0 foo")),
    ("200 result=0 Gosub complete", R(200, "0", message="Gosub complete")),
    ("200 result=-1 Gosub label not found", R(200, "-1", message="Gosub label not found")),
    ("200 result=1 (unclosed", R(200, "1", message="(unclosed")),
    # errors
    ("510 Invalid or unknown command", R(510, message="Invalid or unknown command")),
    ("511 Command Not Permitted on a dead channel or intercept routine",
     R(511, message="Command Not Permitted on a dead channel or intercept routine")),
    ("503 result=-2 Memory allocation failure", R(503, "-2", message="Memory allocation failure")),
    ("520 Invalid command syntax.  Proper usage not available.",
     R(520, message="Invalid command syntax.  Proper usage not available.")),
    ("520 Use this", R(520, message="Use this")),
])
def test_reply_line_parses_to_agi_result(line, expected):
    """Each single-line reply variant becomes the AgiResult it means."""
    assert parse_reply(line) == expected


@pytest.mark.parametrize("line", ["HANGUP", "", "hello", "20 result=1", "result=1", "2000x"])
def test_non_reply_lines_are_not_parsed_as_replies(line):
    """Lines that are not replies give None (the connection decides what they are)."""
    assert parse_reply(line) is None


@pytest.mark.parametrize("result", ["200 result=1 (5551234)", "511 Command Not Permitted on a dead channel or intercept routine"])
def test_dead_and_ok_properties(result):
    """A 511 is dead and not ok; a 200 is ok and not dead."""
    r = parse_reply(result)
    assert r.ok != r.dead


@given(st.text(alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=60),
       st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
       st.sampled_from(["0", "1", "-1", "", "1234", "0123"]))
def test_any_data_round_trips(data, endpos, result):
    """Whatever Asterisk puts between the parentheses comes back intact, with endpos."""
    line = f"200 result={result} ({data})" + (f" endpos={endpos}" if endpos is not None else "")
    parsed = parse_reply(line)
    assert (parsed.result, parsed.data, parsed.endpos) == (result, data, endpos)


# --- requests and the environment block ------------------------------------------------------

@pytest.mark.parametrize("request_,script,flow,query", [
    ("agi://host:4573/main?lang=zh", None, "main", {"lang": "zh"}),
    ("agi://127.0.0.1:4573/main?flow=demo", "main?flow=demo", "main", {"flow": "demo"}),
    ("agi://127.0.0.1/burst", "burst", "burst", {}),
    ("agi://h/survey?a=1&b=&a=2", None, "survey", {"a": "2", "b": ""}),
    ("agi://h/sales%20line", None, "sales line", {}),
    ("hagi://_agi._tcp.example.com/main", None, "main", {}),
    ("hotline_classic.py", None, "hotline_classic", {}),
    ("/var/lib/asterisk/agi-bin/main.py", None, "main", {}),
])
def test_request_gives_flow_and_query(request_, script, flow, query):
    """The request path names the flow and its query string gives the arguments."""
    assert parse_request(request_, script) == (flow, query)


def test_environment_block_becomes_one_event_with_parsed_fields():
    """The env block ends at the blank line: variables, flow, query, positional args."""
    conn = AgiConnection()
    conn.receive_data(ENV)
    env = conn.next_event()
    assert isinstance(env, AgiEnvironment)
    assert env["agi_calleridname"] == "Alice Caller"
    assert env["agi_accountcode"] == ""
    assert (env.flow, env.query, env.args) == ("main", {"lang": "zh"}, ["first arg", "2"])
    assert env.network and env.dnid is None and env.caller_id_num == "5551234"
    assert conn.next_event() is NEED_DATA


def test_environment_tolerates_crlf_and_byte_by_byte_delivery():
    """CRLF line ends and one-byte reads give the same environment."""
    conn = AgiConnection()
    for byte in ENV.replace(b"\n", b"\r\n"):
        conn.receive_data(bytes([byte]))
    env = conn.next_event()
    assert isinstance(env, AgiEnvironment) and env["agi_uniqueid"] == "1795388557.1"


def test_garbage_in_environment_is_skipped_with_an_error_event():
    """A line that is not `name: value` is reported and skipped; the block still completes."""
    conn = AgiConnection()
    conn.receive_data(b"agi_network: yes\n!!! garbage\nagi_request: agi://h/main\n\n")
    evs = events(conn)
    assert isinstance(evs[0], RemoteProtocolError) and not evs[0].fatal
    assert isinstance(evs[1], AgiEnvironment) and evs[1].flow == "main"


def test_endless_environment_is_fatal():
    """More environment lines than the limit end the connection cleanly."""
    conn = AgiConnection(max_env_lines=5)
    conn.receive_data(b"".join(b"agi_x%d: y\n" % i for i in range(10)))
    evs = events(conn)
    assert isinstance(evs[0], RemoteProtocolError) and evs[0].fatal
    assert evs[-1] == ConnectionClosed("protocol_error")


# --- replies on the connection -------------------------------------------------------------

def test_reply_completes_the_pending_command():
    """A command is pending until its reply arrives; then another may be sent."""
    conn = ready()
    assert conn.send(GetVariable("CALLERID(num)")) == b"GET VARIABLE CALLERID(num)\n"
    assert conn.pending == "GET VARIABLE CALLERID(num)"
    conn.receive_data(b"200 result=1 (5551234)\n")
    assert conn.next_event() == R(200, "1", "5551234")
    assert conn.pending is None
    conn.send("NOOP")


def test_second_command_while_one_is_pending_is_our_fault():
    """Sending while a reply is awaited raises LocalProtocolError."""
    conn = ready()
    conn.send("ANSWER")
    with pytest.raises(LocalProtocolError, match="still waiting"):
        conn.send("NOOP")


def test_sending_before_environment_is_our_fault():
    """No command may go out before Asterisk's environment block."""
    with pytest.raises(LocalProtocolError, match="before the environment"):
        AgiConnection().send("ANSWER")


def test_a_command_with_a_newline_is_refused():
    """A raw command line cannot smuggle a second command."""
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send("SET VARIABLE A 1\nHANGUP")


def test_usage_block_is_one_520_result_with_the_usage_text():
    """`520-...` lines up to `520 End of proper usage.` make one result."""
    conn = ready()
    conn.send("STREAM FILE")
    conn.receive_data(b"520-Invalid command syntax.  Proper usage follows:\n"
                      b"Send the given file (with digits).\n    <value>SUCCESS</value>\n"
                      b"520 End of proper usage.\n")
    result = conn.next_event()
    assert result.code == 520
    assert result.message == "Send the given file (with digits).\n    <value>SUCCESS</value>"
    assert conn.pending is None and conn.next_event() is NEED_DATA


def test_usage_block_end_glued_to_the_last_line_is_recognised():
    """Some versions print the end marker on the same line as the last usage line."""
    conn = ready()
    conn.send("GET DATA")
    conn.receive_data(b"520-Invalid command syntax.  Proper usage follows:\n"
                      b"Returns the digits.520 End of proper usage.\n")
    assert conn.next_event() == R(520, message="Returns the digits.")


def test_100_trying_is_not_the_reply():
    """`100 result=0 Trying...` (GOSUB) keeps the command pending until the 200."""
    conn = ready()
    conn.send("GOSUB ctx s 1")
    conn.receive_data(b"100 result=0 Trying...\n")
    assert conn.next_event() is NEED_DATA and conn.pending
    conn.receive_data(b"200 result=0 Gosub complete\n")
    assert conn.next_event() == R(200, "0", message="Gosub complete")


def test_hangup_between_command_and_reply_leaves_the_reply_to_the_command():
    """HANGUP is an event of its own; the reply after it still answers the pending command."""
    conn = ready()
    conn.send(StreamFile("demo-congrats"))
    conn.receive_data(b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
    assert conn.next_event() == CallerHangup("caller_hangup")
    result = conn.next_event()
    assert result.code == 511 and result.dead
    assert conn.hangup_received


def test_hangup_is_reported_once():
    """A repeated HANGUP line is not a second hangup."""
    conn = ready()
    conn.receive_data(b"HANGUP\nHANGUP\n")
    assert events(conn) == [CallerHangup("caller_hangup")]


def test_garbage_reply_line_is_skipped():
    """A line that is not a reply is reported; the pending command still gets its reply."""
    conn = ready()
    conn.send("ANSWER")
    conn.receive_data(b"hello there\n\n200 result=0\n")
    evs = events(conn)
    assert [type(e) for e in evs] == [RemoteProtocolError, RemoteProtocolError, AgiResult]
    assert evs[-1] == R(200, "0")


def test_reply_without_a_command_is_reported_not_delivered():
    """A stray reply when nothing is pending is a peer error, skipped."""
    conn = ready()
    conn.receive_data(b"200 result=0\n")
    [event] = events(conn)
    assert isinstance(event, RemoteProtocolError) and "no command pending" in str(event)


def test_a_64_kb_line_is_handled():
    """A 64 KB variable value arrives whole, in small pieces."""
    conn = ready()
    conn.send("GET VARIABLE BIG")
    value = "x" * 65536
    data = f"200 result=1 ({value})\n".encode()
    for i in range(0, len(data), 1000):
        conn.receive_data(data[i:i + 1000])
    events_ = events(conn)
    assert events_ == [R(200, "1", value)]


def test_a_line_over_the_limit_ends_the_connection_cleanly():
    """Past max_line_length the peer is given up on: fatal error, then ConnectionClosed."""
    conn = ready(max_line_length=1000)
    conn.send("GET VARIABLE BIG")
    conn.receive_data(b"200 result=1 (" + b"y" * 2000)
    evs = events(conn)
    assert isinstance(evs[0], RemoteProtocolError) and evs[0].fatal
    assert evs[1] == ConnectionClosed("protocol_error")
    conn.receive_data(b")\n200 result=0\n")
    assert conn.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        conn.send("NOOP")


def test_a_complete_line_over_the_limit_in_one_chunk_is_fatal_too():
    """An over-long line that arrives with its newline is refused the same way."""
    conn = ready(max_line_length=100)
    conn.send("NOOP")
    conn.receive_data(b"200 result=1 (" + b"z" * 200 + b")\n")
    assert next(iter(events(conn))).fatal


def test_eof_gives_connection_closed_once():
    """End of file yields ConnectionClosed('eof') after the buffered events, then nothing."""
    conn = ready()
    conn.send("ANSWER")
    conn.receive_data(b"200 result=0\n")
    conn.receive_data(b"")
    assert events(conn) == [R(200, "0"), ConnectionClosed("eof")]
    assert conn.next_event() is NEED_DATA


def test_abandoned_command_makes_its_late_reply_a_stray_line():
    """After we give up on a command, its late reply is not taken for the next one."""
    conn = ready()
    conn.send("EXEC Wait 100")
    conn.abandon_pending()
    conn.receive_data(b"200 result=0\n")
    assert isinstance(conn.next_event(), RemoteProtocolError)


def test_classic_connection_starts_with_a_known_environment():
    """Classic AGI: pyst2 read the block; the connection starts ready for commands."""
    conn = AgiConnection(environment={"agi_request": "hotline_classic.py", "agi_arg_1": "alpha"})
    assert conn.environment.args == ["alpha"]
    assert conn.send("ANSWER") == b"ANSWER\n"
