"""Replays of the real Asterisk 22 AGI conversations (../shared/asterisk-traces).

agi.log pairs each command we sent (APP>) with what Asterisk answered (AST>); the
agi-s<N>.raw files are the exact bytes Asterisk sent. Every reply must parse to the
right AgiResult, the HANGUP line must be an event of its own, and the whole conversation
must also go through the FastAGI protocol unchanged.
"""
import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from agi_helpers import TRACES, ListSink, RawLine, ScriptedSession, inline_runner, read_agi_log
from ivr.agi import AgiConnection, AgiEnvironment, RemoteProtocolError, parse_reply
from ivr.commands import AgiResult, CallerHangup
from ivr.fastagi import FastAGIFactory

SCENARIOS = ["ivr_dtmf", "ivr_caller_hangup", "ivr_to_queue", "ivr_queue_caller_hangup", "load_burst"]
SESSIONS = [(scenario, sid) for scenario in SCENARIOS
            for sid in read_agi_log(TRACES / scenario / "agi.log")]


def replay(raw: bytes, exchanges, conn=None):
    """Feed Asterisk's bytes one line at a time, sending each recorded command when due.

    Returns [(command, [events until its reply])] and any events left over.
    """
    conn = conn or AgiConnection()
    lines = raw.splitlines(keepends=True)
    out, pos = [], 0
    while pos < len(lines) and conn.environment is None:
        conn.receive_data(lines[pos])
        pos += 1
        list(conn.events())
    for exchange in exchanges:
        conn.send(exchange.command)
        got = []
        while not got or not isinstance(got[-1], AgiResult):
            assert pos < len(lines), f"no reply to {exchange.command!r}"
            conn.receive_data(lines[pos])
            pos += 1
            got.extend(conn.events())
        out.append((exchange.command, got))
    assert pos == len(lines), "bytes left over after the last recorded reply"
    return out


@pytest.mark.parametrize("scenario,sid", SESSIONS)
def test_every_recorded_reply_parses_as_its_command_reply(scenario, sid):
    """Each command gets exactly the reply agi.log shows, parsed; HANGUP is a separate event."""
    session = read_agi_log(TRACES / scenario / "agi.log")[sid]
    raw = (TRACES / scenario / f"agi-{sid}.raw").read_bytes()
    conn = AgiConnection()
    for command, got in replay(raw, session.exchanges, conn):
        expected_lines = next(e.lines for e in session.exchanges if e.command == command)
        assert not any(isinstance(e, RemoteProtocolError) for e in got)
        hangups = [e for e in got if isinstance(e, CallerHangup)]
        assert len(hangups) == expected_lines.count("HANGUP")
        reply_lines = [line for line in expected_lines if line != "HANGUP"]
        result = got[-1]
        assert result.code == int(reply_lines[0][:3])
        if len(reply_lines) == 1:
            assert result == parse_reply(reply_lines[0])
        else:   # the 520 usage block
            assert result.message == "\n".join(reply_lines[1:-1])
    assert conn.environment == dict(
        line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
        for line in session.env_lines if line)


def test_ivr_dtmf_conversation_means_what_the_readme_says():
    """The DTMF call: keys 1, 1234, #, then errors and the script's own HANGUP."""
    session = read_agi_log(TRACES / "ivr_dtmf" / "agi.log")["s1"]
    raw = (TRACES / "ivr_dtmf" / "agi-s1.raw").read_bytes()
    results = {cmd: got[-1] for cmd, got in replay(raw, session.exchanges)}
    assert results['STREAM FILE demo-instruct "0123456789*#"'].digit == "1"
    assert results["STREAM FILE demo-instruct \"0123456789*#\""].endpos == 14080
    assert results["GET DATA beep 6000 4"].result == "1234"
    assert results["WAIT FOR DIGIT 6000"].digit == "#"
    assert results["WAIT FOR DIGIT 1500"].digit is None
    assert results["GET VARIABLE NO_SUCH_VARIABLE"] == AgiResult(200, "0")
    assert results['GET FULL VARIABLE "${CALLERID(name)} on ${CHANNEL} uid ${UNIQUEID}"'].data == \
        "Alice Caller on Local/main@ivr-in-00000000;2 uid 1795388557.1"
    assert results["FOO BAR"].code == 510
    assert results["STREAM FILE"].code == 520 and "PLAYBACKSTATUS" in results["STREAM FILE"].message
    assert results['STREAM FILE no-such-prompt ""'] == AgiResult(200, "-1", endpos=0)
    assert results["EXEC NoSuchApplication foo"].result == "-2"
    assert results["GET VARIABLE IVR_CHOICE"].data == "1"   # still works after HANGUP


def test_caller_hangup_conversation_shows_dead_channel_rules():
    """After the caller hangs up: -1, HANGUP before the next reply, 511 for channel commands only."""
    session = read_agi_log(TRACES / "ivr_caller_hangup" / "agi.log")["s1"]
    raw = (TRACES / "ivr_caller_hangup" / "agi-s1.raw").read_bytes()
    got = dict(replay(raw, session.exchanges))
    assert got['STREAM FILE demo-instruct ""'][-1].dead
    assert isinstance(got['STREAM FILE demo-congrats ""'][0], CallerHangup)
    assert got['STREAM FILE demo-congrats ""'][-1].code == 511
    assert got["GET VARIABLE IVR_STAGE"][-1].data == "greeting"
    assert got['SET VARIABLE IVR_STAGE "after-hangup"'][-1].ok
    assert got["CHANNEL STATUS"][-1].code == 511 and got["GET DATA beep 3000 4"][-1].code == 511


@pytest.mark.parametrize("sid", sorted(read_agi_log(TRACES / "load_burst" / "agi.log")))
def test_load_burst_sessions_read_their_own_caller_id(sid):
    """In the 50-call burst each session's CALLERID(num) reply is that call's agi_callerid."""
    session = read_agi_log(TRACES / "load_burst" / "agi.log")[sid]
    raw = (TRACES / "load_burst" / f"agi-{sid}.raw").read_bytes()
    conn = AgiConnection()
    results = [got[-1] for _, got in replay(raw, session.exchanges, conn)]
    assert results[0].data == conn.environment["agi_callerid"]
    assert [r.result for r in results[1:]] == ["1", "1", "-1", "0"]


def test_classic_agi_log_parses_the_same_way():
    """The stdin/stdout conversation has the same env shape (no agi_network) and replies."""
    session = read_agi_log(TRACES / "classic_agi" / "classic-agi.log")
    [recorded] = session.values()
    raw = ("\n".join(recorded.env_lines) + "\n" + "".join(
        line + "\n" for e in recorded.exchanges for line in e.lines)).encode()
    conn = AgiConnection()
    results = [got[-1] for _, got in replay(raw, recorded.exchanges, conn)]
    env = conn.environment
    assert isinstance(env, AgiEnvironment) and not env.network
    assert env.args == ["alpha", "beta"] and env.flow == "hotline_classic"
    assert results[2] == AgiResult(200, "0", endpos=3520)
    assert [r.code for r in results] == [200] * 6


# --- the same conversations through the FastAGI server ---------------------------------------

class ReplayFactory:
    services = None

    def __init__(self, lines):
        self.lines = lines
        self.session = None

    def __call__(self, env):
        self.session = ScriptedSession([RawLine(line) for line in self.lines], stop_on_dead=False)
        self.session.feed = _feed_without_stopping(self.session)
        return self.session


def _feed_without_stopping(session):
    def feed(result):
        session.results.append(result)
        return session._next()
    return feed


@pytest.mark.parametrize("scenario", ["ivr_dtmf", "ivr_caller_hangup", "ivr_to_queue",
                                      "ivr_queue_caller_hangup"])
def test_fastagi_server_replays_recorded_call(scenario):
    """Fed Asterisk's recorded bytes, the server sends the recorded commands and closes at the end."""
    recorded = read_agi_log(TRACES / scenario / "agi.log")["s1"]
    lines = (TRACES / scenario / "agi-s1.raw").read_bytes().splitlines(keepends=True)
    factory = ReplayFactory([e.command for e in recorded.exchanges])
    sink = ListSink()
    server = FastAGIFactory(factory, sink, clock=Clock(), run_in_thread=inline_runner,
                            fetch_linkedid=False, reactor=Clock())
    proto = server.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    env_end = lines.index(b"\n") + 1
    proto.dataReceived(b"".join(lines[:env_end]))
    for line in lines[env_end:]:
        proto.dataReceived(line)
    sent = transport.value().decode().splitlines()
    assert sent == [e.command for e in recorded.exchanges]
    assert transport.disconnecting
    [record] = sink.records
    assert record["agi_commands"] == len(recorded.exchanges)
    assert record["uniqueid"] == recorded.env_lines[6].split(": ")[1]
    hangups = [r for r in factory.session.results if isinstance(r, CallerHangup)]
    # The caller's HANGUP line is delivered once, in place of the next reply; after our
    # own HANGUP command (ivr_dtmf) the HANGUP line is expected and not delivered.
    assert len(hangups) == (0 if scenario in ("ivr_dtmf", "ivr_to_queue") else 1)
