"""The FastAGI server: one call per connection, driven by the engine session, closed at once
when the session ends, robust to hangups, silence, garbage and lost sockets.

The first half drives the protocol with StringTransport and a fake Clock; the second
half runs real loopback sockets against the simulated Asterisk (bounded waits, no sleeps).
"""
import threading

import pytest
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from agi_helpers import (
    ListSink, RecordingServices, ScriptedFactory, ScriptedSession, inline_runner,
)
from ivr.agisim import CallScript, SimulatedChannel, call, run_calls
from ivr.commands import (
    Answer, CallerHangup, Exec, GetData, GetVariable, Hangup, SayDigits, ServiceCall,
    ServiceResult, SetVariable, StreamFile, WaitForDigit, AgiResult,
)
from ivr.driver import CommandTimeouts, OperatorFallback
from ivr.fastagi import FastAGIFactory

ENV = (b"agi_network: yes\nagi_network_script: main\nagi_request: agi://127.0.0.1:4573/main\n"
       b"agi_channel: Local/main@ivr-in-00000000;2\nagi_uniqueid: 1795388557.1\n"
       b"agi_callerid: 5551234\nagi_calleridname: Alice Caller\nagi_dnid: unknown\n\n")
MAIN = [Answer(), StreamFile("hello", "12"), SetVariable("IVR_CHOICE", "1"), Hangup()]


class Harness:
    """A FastAGI protocol on a StringTransport, with a fake clock and inline 'threads'."""

    def __init__(self, flows=None, *, services=None, fetch_linkedid=False, timeouts=None, sink=None):
        self.clock = Clock()
        self.factory = ScriptedFactory(flows if flows is not None else {"main": list(MAIN)},
                                       services=services)
        self.sink = sink or ListSink()
        self.server = FastAGIFactory(self.factory, self.sink, clock=self.clock, reactor=self.clock,
                                     run_in_thread=inline_runner, fetch_linkedid=fetch_linkedid,
                                     timeouts=timeouts)
        self.proto = self.server.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def sent(self):
        lines = self.transport.value().decode().splitlines()
        self.transport.clear()
        return lines

    def receive(self, data: bytes):
        self.proto.dataReceived(data)

    def lose(self):
        self.proto.connectionLost(Failure(ConnectionError("peer closed")))

    @property
    def session(self):
        return self.factory.sessions[-1]

    @property
    def record(self):
        [record] = self.sink.records
        return record


def test_linkedid_is_fetched_first_and_stored_with_the_session():
    """The first command asks for CHANNEL(linkedid); its value reaches the env and the record."""
    h = Harness(fetch_linkedid=True)
    h.receive(ENV)
    assert h.sent() == ["GET VARIABLE CHANNEL(linkedid)"]
    h.receive(b"200 result=1 (1795388556.0)\n")
    assert h.sent() == ["ANSWER"]
    assert h.factory.envs[0]["agi_linkedid"] == "1795388556.0"
    for reply in (b"200 result=0\n", b"200 result=0 endpos=100\n", b"200 result=1\n", b"200 result=1\n"):
        h.receive(reply)
    assert h.record["linkedid"] == "1795388556.0"
    assert h.record["agi_commands"] == 5


def test_one_command_at_a_time_then_close_at_once_on_exit():
    """Each command waits for its reply; after the last one the socket is closed immediately."""
    h = Harness()
    h.receive(ENV)
    assert h.sent() == ["ANSWER"]
    h.receive(b"200 result=0\n")
    assert h.sent() == ['STREAM FILE hello "12"']
    h.receive(b"200 result=49 endpos=7040\n")
    h.receive(b"200 result=1\n")
    assert h.sent() == ['SET VARIABLE IVR_CHOICE "1"', "HANGUP"]
    assert not h.transport.disconnecting
    h.receive(b"200 result=1\nHANGUP\n")
    assert h.transport.disconnecting
    assert h.session.results[1].digit == "1"


def test_record_has_the_ivr_sessions_columns():
    """The stored record is one ivr_sessions row: ids from the env, trace, outcome, counts."""
    h = Harness()
    h.receive(ENV)
    h.receive(b"200 result=0\n200 result=0 endpos=1\n200 result=1\n200 result=1\n")
    record = h.record
    assert {"id", "channel", "uniqueid", "linkedid", "caller_id_num", "caller_id_name", "dnid",
            "flow", "flow_version", "language", "started_at", "ended_at", "steps", "inputs",
            "customer_id", "tier", "outcome", "outcome_target", "outcome_step",
            "outcome_detail", "agi_commands"} == set(record)
    assert record["uniqueid"] == "1795388557.1" and record["caller_id_name"] == "Alice Caller"
    assert record["dnid"] is None and record["flow"] == "main" and record["outcome"] == "completed"
    assert record["steps"] == ["Answer", "StreamFile", "SetVariable", "Hangup"]
    assert record["started_at"].tzinfo is not None and record["agi_commands"] == 4


def test_hangup_line_after_our_own_hangup_is_not_a_caller_hangup():
    """HANGUP following the reply to our HANGUP is expected: the outcome stays completed."""
    h = Harness({"main": [Hangup(), GetVariable("IVR_CHOICE")]})
    h.receive(ENV)
    h.receive(b"200 result=1\n")
    h.receive(b"HANGUP\n200 result=1 (1)\n")
    assert h.record["outcome"] == "completed"
    assert not any(isinstance(r, CallerHangup) for r in h.session.results)


def test_unsolicited_hangup_is_fed_once_and_outcome_written_before_close():
    """HANGUP before a reply: the engine hears CallerHangup, writes its outcome, then we close."""
    h = Harness()
    h.receive(ENV)
    h.receive(b"200 result=0\n")                       # ANSWER
    h.receive(b"HANGUP\n200 result=-1 endpos=100\n")   # STREAM FILE cut short
    assert h.sent()[-1] == 'SET VARIABLE HOTLINE_OUTCOME "caller_hangup"'
    assert isinstance(h.session.results[-1], CallerHangup)
    assert not h.transport.disconnecting
    h.receive(b"200 result=1\n")                       # SET VARIABLE works on a dead channel
    assert h.transport.disconnecting
    assert h.record["outcome"] == "caller_hangup"


def test_reply_after_hangup_line_belongs_to_the_pending_command():
    """A HANGUP line between a command and its reply does not shift replies onto later commands."""
    h = Harness({"main": [Answer(), GetVariable("QUEUESTATUS")]})
    h.receive(ENV)
    h.receive(b"200 result=0\n")
    assert h.sent() == ["ANSWER", "GET VARIABLE QUEUESTATUS"]
    h.receive(b"HANGUP\n")
    assert h.sent() == []                              # nothing new until the reply comes
    h.receive(b"200 result=0\n")
    assert h.sent() == ['SET VARIABLE HOTLINE_OUTCOME "caller_hangup"']


def test_garbage_lines_are_counted_and_skipped():
    """Lines that are not replies do not derail the call."""
    h = Harness()
    h.receive(ENV)
    h.receive(b"garbage here\n\x00\x01\n200 result=0\n")
    assert h.sent()[-1] == 'STREAM FILE hello "12"'
    assert h.server.stats.protocol_errors == 2


def test_over_long_line_ends_the_call_cleanly():
    """A line past the limit closes the connection; the session is recorded as a hangup."""
    h = Harness()
    h.server.max_line_length = 1000
    h.proto.connectionMade()                           # new parser with the small limit
    h.receive(ENV)
    h.receive(b"200 result=1 (" + b"x" * 5000)
    assert h.transport.disconnecting
    h.lose()
    assert h.record["outcome"] == "caller_hangup"
    assert h.clock.getDelayedCalls() == []


def test_unknown_flow_goes_to_the_operator_queue():
    """An unknown flow is never dead air: error variable, then Queue(operator)."""
    h = Harness({})
    h.receive(ENV)
    assert h.sent()[0].startswith("SET VARIABLE HOTLINE_SESSION ")
    h.receive(b"200 result=1\n")
    assert h.sent() == ['SET VARIABLE HOTLINE_ERROR "unknown flow main"']
    h.receive(b"200 result=1\n")
    assert h.sent() == ['EXEC Queue "operator,t"']
    h.receive(b"200 result=0\n")
    assert h.transport.disconnecting
    assert (h.record["outcome"], h.record["outcome_target"]) == ("error", "operator")
    assert h.record["flow"] == "main"


def test_unsafe_flow_name_is_treated_as_unknown():
    """A request path that is not a plain flow name never reaches the factory."""
    h = Harness({"main": list(MAIN)})
    h.receive(ENV.replace(b"agi_network_script: main", b"agi_network_script: ../etc/passwd"))
    assert h.factory.envs == []
    h.sent()
    h.receive(b"200 result=1\n")
    assert h.sent() == ['SET VARIABLE HOTLINE_ERROR "unknown flow ../etc/passwd"']


class ExplodingSession(ScriptedSession):
    def feed(self, result):
        raise ZeroDivisionError("engine bug")


def test_engine_crash_sends_the_caller_to_the_operator():
    """An exception inside the engine becomes the operator fallback with outcome error."""
    h = Harness()
    h.factory.__class__ = type("F", (ScriptedFactory,), {
        "__call__": lambda self, env: ExplodingSession([Answer()])})
    h.receive(ENV)
    h.receive(b"200 result=0\n")
    h.receive(b"200 result=1\n200 result=1\n200 result=0\n")
    assert h.transport.disconnecting
    assert h.record["outcome"] == "error" and h.record["outcome_detail"] == "internal error"


def test_peer_that_never_answers_times_out_and_is_closed():
    """No reply within the quick timeout: outcome timeout, socket closed, no timers left."""
    h = Harness(timeouts=CommandTimeouts(quick=5.0))
    h.receive(ENV)
    assert h.sent() == ["ANSWER"]
    h.clock.advance(4.9)
    assert not h.transport.disconnecting
    h.clock.advance(0.2)
    assert h.transport.disconnecting
    assert h.sent() == []                       # nothing else was sent to the silent peer
    assert h.record["outcome"] == "timeout"
    assert h.server.stats.timeouts == 1
    h.lose()
    assert h.clock.getDelayedCalls() == []
    assert len(h.sink.records) == 1


def test_long_commands_get_their_own_timeouts():
    """GET DATA waits for prompt + digits; EXEC (Queue) waits as long as it takes."""
    h = Harness({"main": [GetData("menu", 5000, 4), Exec("Queue", "support")]},
                timeouts=CommandTimeouts(quick=5.0, playback=60.0))
    h.receive(ENV)
    h.clock.advance(79)                          # 60 s prompt + 4 x 5 s digits = 80 s
    assert not h.transport.disconnecting
    h.receive(b"200 result=12 (timeout)\n")
    h.clock.advance(24 * 3600)
    assert not h.transport.disconnecting and h.clock.getDelayedCalls() == []
    h.receive(b"200 result=0\n")
    assert h.record["outcome"] == "completed"


@pytest.mark.parametrize("command,seconds", [
    (Answer(), 30.0), (SetVariable("A", "1"), 30.0), (GetVariable("A"), 30.0), (Hangup(), 30.0),
    (StreamFile("x"), 300.0), (SayDigits("12"), 300.0),
    (GetData("x", 3000, 4), 312.0), (WaitForDigit(2000), 32.0), (WaitForDigit(-1), None),
    (Exec("Queue", "support"), None), (Exec("Dial", "PJSIP/100"), None),
    ("DATABASE GET a b", 30.0), ("RECORD FILE x gsm # 1000", None), ("SAY DATETIME 0 \"\"", 300.0),
])
def test_timeout_rule_per_command_kind(command, seconds):
    """Quick commands get the quick timeout, playback a long one, EXEC none by default."""
    assert CommandTimeouts().for_command(command) == seconds


def test_connection_lost_mid_command_records_a_hangup():
    """Asterisk closing the socket while a command runs ends the session cleanly."""
    h = Harness()
    h.receive(ENV)
    h.receive(b"200 result=0\n")
    h.lose()
    assert h.record["outcome"] == "caller_hangup"
    assert isinstance(h.session.results[-1], AgiResult)   # the local 511 for the outcome write
    assert h.clock.getDelayedCalls() == []
    assert h.server.stats.active == 0


def test_connection_lost_during_a_service_call_still_records_the_session():
    """When the socket closes while the DB works, the session finishes once the result is in."""
    pending = defer.Deferred()
    h = Harness({"main": [ServiceCall("lookup", {"by": "phone", "value": "1", "fields": []}), Answer()]})
    h.server._run_in_thread = lambda fn, *args: pending
    h.receive(ENV)
    idle = h.server.wait_idle()
    h.lose()
    assert h.sink.records == [] and not idle.called
    pending.callback(ServiceResult(value={"name": "x"}))
    assert h.record["outcome"] == "caller_hangup"
    assert idle.called
    assert h.session.results[0] == ServiceResult(value={"name": "x"})


def test_service_error_is_fed_to_the_engine_not_raised():
    """A service that raises gives the engine a ServiceResult with the error text."""
    h = Harness({"main": [ServiceCall("authenticate", {"account": "1", "pin": "2"})]},
                services=RecordingServices())
    h.receive(ENV)
    [result] = h.session.results
    assert result.error == "RuntimeError: database is down"
    assert h.record["outcome"] == "completed"


def test_unknown_service_method_is_an_error_result():
    """Asking for a service that does not exist is reported to the engine."""
    h = Harness({"main": [ServiceCall("drop_tables", {})]}, services=RecordingServices())
    h.receive(ENV)
    assert h.session.results[0].error == "no service 'drop_tables'"


def test_silent_peer_without_environment_is_dropped():
    """A connection that never sends its environment block is closed after the quick timeout."""
    h = Harness(timeouts=CommandTimeouts(quick=3.0))
    h.receive(b"agi_network: yes\n")
    h.clock.advance(3.1)
    assert h.transport.disconnecting and h.sink.records == []


def test_interrupt_ends_the_call_and_records_why():
    """Shutdown after the grace period: the socket closes and the record says interrupted."""
    h = Harness({"main": [Answer(), Exec("Queue", "support,t")]})
    h.receive(ENV)
    h.receive(b"200 result=0\n")
    h.proto.interrupt("shutdown")
    assert h.transport.disconnecting
    assert (h.record["outcome"], h.record["outcome_detail"]) == ("error", "interrupted: shutdown")
    h.receive(b"200 result=0\n")             # the queue ending later changes nothing
    h.lose()
    assert len(h.sink.records) == 1 and h.clock.getDelayedCalls() == []


def test_stats_count_sessions_outcomes_and_reply_codes():
    """Counters for metrics follow every session."""
    h = Harness()
    h.receive(ENV)
    assert h.server.stats.active == 1
    h.receive(b"200 result=0\n511 Command Not Permitted on a dead channel or intercept routine\n200 result=1\n")
    stats = h.server.stats
    assert (stats.active, stats.sessions) == (0, 1)
    assert stats.outcomes["caller_hangup"] == 1
    assert stats.reply_codes == {200: 2, 511: 1}


def test_sink_failure_is_counted_not_raised():
    """A failing store is logged and counted; the protocol carries on."""
    class BrokenSink:
        def save(self, record):
            raise OSError("disk full")
    h = Harness(sink=BrokenSink())
    h.receive(ENV)
    h.receive(b"200 result=0\n200 result=0 endpos=1\n200 result=1\n200 result=1\n")
    assert h.transport.disconnecting and h.server.stats.save_errors == 1


def test_operator_fallback_stops_when_the_channel_is_dead():
    """The fallback does not keep queueing a caller who is gone."""
    fallback = OperatorFallback("unknown flow x")
    fallback.start()
    exit_ = fallback.feed(CallerHangup())
    assert exit_.outcome.kind == "error" and exit_.outcome.detail == "unknown flow x"


# --- real loopback sockets ----------------------------------------------------------------------

class LoopbackTests(unittest.TestCase):
    """Real sockets on 127.0.0.1 against the simulated Asterisk; trial checks nothing is left open."""

    timeout = 60

    def start(self, flows, *, services=None, timeouts=None):
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="test-db")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.factory = ScriptedFactory(flows, services=services)
        self.sink = ListSink()
        self.server = FastAGIFactory(self.factory, self.sink, reactor=reactor, threadpool=self.pool,
                                     timeouts=timeouts)
        self.port = self.server.listen("127.0.0.1", 0)
        self.addCleanup(self.port.stopListening)
        return self.port.getHost().port

    def call(self, port, **script):
        script.setdefault("request", f"agi://127.0.0.1:{port}/main")
        return call(reactor, "127.0.0.1", port, CallScript(**script), timeout=10)

    @defer.inlineCallbacks
    def finished(self):
        yield self.server.wait_idle()
        self.assertEqual(self.server.protocols, set())

    @defer.inlineCallbacks
    def test_garbage_lines_from_the_peer_do_not_break_the_call(self):
        """Garbage before replies is skipped and the call completes normally."""
        port = self.start({"main": list(MAIN)})
        result = yield self.call(port, keys=["2"], inject={2: [b"!!garbage!!\n", b"\n"]})
        yield self.finished()
        self.assertTrue(result.closed_by_server)
        self.assertEqual(self.sink.records[0]["outcome"], "completed")
        self.assertEqual(self.server.stats.protocol_errors, 2)

    @defer.inlineCallbacks
    def test_a_64_kb_reply_line_is_read_whole(self):
        """GET VARIABLE of a 64 KB value reaches the engine intact."""
        port = self.start({"main": [GetVariable("BIG")]})
        yield self.call(port, variables={"BIG": "b" * 65536})
        yield self.finished()
        result = self.factory.sessions[0].results[0]
        self.assertEqual(result.data, "b" * 65536)

    @defer.inlineCallbacks
    def test_asterisk_closing_mid_command_records_a_hangup(self):
        """The simulated Asterisk drops the socket during STREAM FILE; the record says so."""
        port = self.start({"main": list(MAIN)})
        result = yield self.call(port, close_at=3)      # linkedid, ANSWER, STREAM FILE
        yield self.finished()
        self.assertFalse(result.closed_by_server)
        self.assertEqual(self.sink.records[0]["outcome"], "caller_hangup")

    @defer.inlineCallbacks
    def test_unknown_flow_reaches_the_operator_queue_over_the_wire(self):
        """Asterisk sees HOTLINE_ERROR set and Queue(operator) run, then the socket close."""
        port = self.start({})
        result = yield self.call(port, request=f"agi://127.0.0.1:{port}/nosuchflow")
        yield self.finished()
        self.assertEqual(result.variables["HOTLINE_ERROR"], "unknown flow nosuchflow")
        self.assertEqual(result.commands[-1], 'EXEC Queue "operator,t"')
        self.assertTrue(result.closed_by_server)

    @defer.inlineCallbacks
    def test_silent_asterisk_times_out_and_socket_is_closed(self):
        """A peer that stops answering is given up on after the command timeout."""
        port = self.start({"main": list(MAIN)}, timeouts=CommandTimeouts(quick=0.2))
        result = yield self.call(port, silent_at=2)
        yield self.finished()
        self.assertTrue(result.closed_by_server)
        self.assertEqual(self.sink.records[0]["outcome"], "timeout")

    @defer.inlineCallbacks
    def test_service_calls_run_in_the_pool_and_never_block_the_reactor(self):
        """While one call's DB work is blocked, another call completes; the work ran off-thread."""
        services = RecordingServices(block=threading.Event())
        port = self.start({"main": [ServiceCall("lookup", {"by": "phone", "value": "5551234",
                                                           "fields": []}), Answer()],
                           "quick": [Answer()]}, services=services)
        blocked = self.call(port)
        yield services.entered                       # the DB work has started and is now stuck
        quick = yield self.call(port, request=f"agi://127.0.0.1:{port}/quick")
        self.assertTrue(quick.closed_by_server)
        self.assertFalse(blocked.called)
        services.block.set()
        yield blocked
        yield self.finished()
        self.assertNotEqual(services.threads, [threading.get_ident()])
        self.assertEqual(self.factory.sessions[0].results[0].value,
                         {"by": "phone", "value": "5551234"})

    @defer.inlineCallbacks
    def test_500_concurrent_calls_all_complete_with_records(self):
        """500 simultaneous callers each get their flow, their record, and a closed socket."""
        port = self.start({"main": list(MAIN)})
        scripts = [CallScript(request=f"agi://127.0.0.1:{port}/main", caller_id=f"555{i:04d}",
                              uniqueid=f"1795388557.{i}", keys=["1" if i % 2 else None])
                   for i in range(500)]
        results = yield run_calls(reactor, "127.0.0.1", port, scripts, timeout=30)
        yield self.finished()
        self.assertEqual([r.closed_by_server for r in results], [True] * 500)
        self.assertEqual(sorted(r["uniqueid"] for r in self.sink.records),
                         sorted(s.uniqueid for s in scripts))
        by_uid = {r["uniqueid"]: r for r in self.sink.records}
        for script, result in zip(scripts, results):
            self.assertEqual(by_uid[script.uniqueid]["caller_id_num"], script.caller_id)
            self.assertEqual(result.variables.get("IVR_CHOICE"), "1")
        self.assertEqual(self.server.stats.outcomes, {"completed": 500})


def _hangup_test(command):
    @defer.inlineCallbacks
    def test(self):
        port = self.start({"main": [Answer(), command, StreamFile("after")]})
        result = yield self.call(port, hangup_at=3, keys=["1"])   # linkedid, ANSWER, command
        yield self.finished()
        self.assertTrue(result.closed_by_server)
        record = self.sink.records[0]
        self.assertEqual(record["outcome"], "caller_hangup")
        self.assertEqual(result.variables["HOTLINE_OUTCOME"], "caller_hangup")
        self.assertNotIn('STREAM FILE after ""', result.commands)
    test.__doc__ = f"Caller hangs up during {command.verb}: outcome written, socket closed."
    return test


for _command in (StreamFile("menu", "12"), GetData("menu", 3000, 4), WaitForDigit(3000),
                 SayDigits("1234"), Exec("Queue", "support,t"), Answer()):
    setattr(LoopbackTests, "test_caller_hangup_during_" + _command.verb.lower().replace(" ", "_"),
            _hangup_test(_command))


def test_simulator_answers_like_the_recorded_asterisk():
    """The simulator's replies for the recorded DTMF call match the trace's reply shapes."""
    ch = SimulatedChannel(CallScript(keys=["1", "1234", "#", None]))
    assert ch.handle('STREAM FILE demo-instruct "0123456789*#"').data == b"200 result=49 endpos=7040\n"
    assert ch.handle("GET DATA beep 6000 4").data == b"200 result=1234\n"
    assert ch.handle("WAIT FOR DIGIT 6000").data == b"200 result=35\n"
    assert ch.handle("WAIT FOR DIGIT 1500").data == b"200 result=0\n"
    assert ch.handle("FOO BAR").data == b"510 Invalid or unknown command\n"
    assert ch.handle("STREAM FILE").data.startswith(b"520-")
    assert ch.handle("EXEC Queue support").data == b"200 result=0\n"
    assert ch.handle("GET VARIABLE QUEUESTATUS").data == b"200 result=1 (TIMEOUT)\n"
    assert ch.handle("HANGUP").data == b"200 result=1\nHANGUP\n"
    assert ch.handle("GET DATA beep 3000 4").data.startswith(b"511 ")
    assert ch.handle("SET VARIABLE X 1").data == b"200 result=1\n"


# --- hot reload -----------------------------------------------------------------------------

class FakeLibrary:
    def __init__(self):
        self.calls = 0
        self.problems = []

    def reload(self):
        self.calls += 1
        return list(self.problems)


def test_flow_watcher_reloads_on_its_interval_and_logs_refusals_with_file_line(caplog):
    """Every interval the library reloads; a refusal is logged once with file:line:col."""
    from ivr.driver import FlowWatcher
    from ivr.flow import FlowProblem, SourcePos
    clock, library = Clock(), FakeLibrary()
    watcher = FlowWatcher(library, interval=2.0, clock=clock)
    watcher.start()
    clock.advance(2.0)
    assert library.calls == 1
    library.problems = [FlowProblem(SourcePos("flows/main.yaml", 14, 7), "step 'menu': unknown key 'timout'")]
    with caplog.at_level("WARNING", logger="ivr.driver"):
        clock.advance(2.0)
        clock.advance(2.0)
    refusals = [r.getMessage() for r in caplog.records]
    assert refusals == ["flows/main.yaml:14:7: step 'menu': unknown key 'timout'"]
    watcher.stop()
    assert clock.getDelayedCalls() == []


def test_flow_watcher_survives_a_failing_reload():
    """An exception from reload() is logged and the watcher keeps polling."""
    from ivr.driver import FlowWatcher
    clock = Clock()

    class Broken(FakeLibrary):
        def reload(self):
            self.calls += 1
            raise OSError("disk gone")
    library = Broken()
    watcher = FlowWatcher(library, interval=1.0, clock=clock)
    watcher.start()
    clock.advance(1.0)
    clock.advance(1.0)
    assert library.calls == 2
    watcher.stop()


class SocketOptionTests(unittest.TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def test_accepted_sockets_have_nodelay_and_keepalive(self):
        """Each accepted FastAGI socket disables Nagle and enables keepalive."""
        import socket
        seen = {}
        factory = ScriptedFactory({"main": [Answer()]})
        server = FastAGIFactory(factory, ListSink(), reactor=reactor)
        original = server.session_started

        def spy(proto):
            sock = proto.transport.getHandle()
            seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            seen["keepalive"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            original(proto)
        server.session_started = spy
        port = server.listen("127.0.0.1", 0)
        self.addCleanup(port.stopListening)
        yield call(reactor, "127.0.0.1", port.getHost().port, CallScript(), timeout=10)
        yield server.wait_idle()
        self.assertEqual((bool(seen["nodelay"]), bool(seen["keepalive"])), (True, True))


class RealFlowTests(unittest.TestCase):
    """The production session factory: a YAML flow from a FlowLibrary through the real engine."""

    timeout = 30

    def setUp(self):
        import shutil
        import tempfile
        from pathlib import Path

        import ivr.steps  # noqa: F401  (registers the step types)
        from agi_helpers import write_tiny_flow
        from ivr.driver import FlowLibrarySessionFactory
        from ivr.library import FlowLibrary
        from ivr.memory_services import InMemoryServices
        flows_dir = Path(tempfile.mkdtemp(prefix="hotline-agi-test-"))
        self.addCleanup(shutil.rmtree, flows_dir, True)
        self.library = FlowLibrary(write_tiny_flow(flows_dir))
        self.sink = ListSink()
        self.server = FastAGIFactory(FlowLibrarySessionFactory(self.library, InMemoryServices()),
                                     self.sink, reactor=reactor)
        self.port = self.server.listen("127.0.0.1", 0)
        self.addCleanup(self.port.stopListening)

    def call(self, **script):
        port = self.port.getHost().port
        script.setdefault("request", f"agi://127.0.0.1:{port}/tiny")
        return call(reactor, "127.0.0.1", port, CallScript(**script), timeout=10)

    @defer.inlineCallbacks
    def test_menu_choice_routes_to_the_queue_and_is_recorded(self):
        """Pressing 1 queues the caller on 'sales'; the record has the path and the outcome."""
        result = yield self.call(keys=["1"], queue_status="CONNECTED", linkedid="1795388556.0")
        yield self.server.wait_idle()
        self.assertTrue(result.closed_by_server)
        self.assertIn("EXEC Queue", " ".join(result.commands))
        [record] = self.sink.records
        self.assertEqual((record["outcome"], record["outcome_target"]), ("queued", "sales"))
        self.assertEqual(record["steps"][:2], ["menu", "sales"])
        self.assertEqual(record["linkedid"], "1795388556.0")
        self.assertEqual(result.variables["HOTLINE_SESSION"], record["id"])
        self.assertIsNotNone(record["flow_version"])

    @defer.inlineCallbacks
    def test_goodbye_path_completes_and_hangs_up(self):
        """Pressing 2 says goodbye, writes the outcome and hangs up; we close at once."""
        result = yield self.call(keys=["2"])
        yield self.server.wait_idle()
        self.assertEqual(result.commands[-1], "HANGUP")
        self.assertEqual(result.variables["HOTLINE_OUTCOME"], "completed")
        self.assertEqual(self.sink.records[0]["outcome"], "completed")

    @defer.inlineCallbacks
    def test_caller_hanging_up_at_the_menu_is_recorded_at_that_step(self):
        """A hangup during the menu prompt ends the session as caller_hangup, socket closed."""
        result = yield self.call(hangup_at=4)   # linkedid, ANSWER, SET HOTLINE_SESSION, menu
        yield self.server.wait_idle()
        self.assertTrue(result.closed_by_server)
        record = self.sink.records[0]
        self.assertEqual(record["outcome"], "caller_hangup")
        self.assertEqual(record["steps"], ["menu"])
        self.assertNotIn("HANGUP", result.commands)
