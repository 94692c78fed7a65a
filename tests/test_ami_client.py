"""AmiClient + AmiActions against the simulated Asterisk: login, resync hooks, reconnect with
backoff, keep-alive, Shutdown, typed actions. First in memory on a fake clock (iosim), then
over real loopback sockets with bounded waits."""
import pytest
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.python.failure import Failure
from twisted.trial import unittest

from ami_helpers import TRACES, InMemoryAsterisk, parse_all, raw, results, summary, within
from amisim import AmiSimulator
from cti.ami.actions import AmiActions, OriginateResult
from cti.ami.client import AmiClient
from cti.ami.errors import AmiActionError, AmiConnectionLost, AmiNotConnected, LocalProtocolError


def only(outcome):
    assert len(outcome) == 1, outcome
    value = outcome[0]
    return value.value if isinstance(value, Failure) else value


def connected(asterisk=None, **options):
    asterisk = asterisk or InMemoryAsterisk()
    client = asterisk.client(**options)
    client.start()
    server = asterisk.accept()
    assert client.state == "connected"
    return asterisk, client, server


# -- login and hooks ----------------------------------------------------------------------------

def test_login_then_hooks_then_when_connected():
    """Login first, then each on_connected hook in order, then whenConnected fires."""
    asterisk = InMemoryAsterisk()
    client = asterisk.client()
    order = []
    client.on_connected(lambda c: order.append(("hook1", c.state, c.logged_in)))
    client.on_connected(lambda c: order.append(("hook2", c.state)))
    client.whenConnected().addCallback(lambda c: order.append(("ready", c.state)))
    client.start()
    server = asterisk.accept()
    assert order == [("hook1", "syncing", True), ("hook2", "syncing"), ("ready", "connected")]
    assert server.logged_in and server.username == "hotline"
    assert (client.logins, client.reconnects) == (1, 0)


def test_md5_login_is_accepted_by_the_simulator():
    """AuthType MD5 logs in through Challenge/Key; the secret never crosses the wire."""
    asterisk, client, server = connected(auth_type="md5")
    assert [a.name for a in server.actions][:2] == ["Challenge", "Login"]
    assert "Secret" not in server.actions[1]


def test_resync_hook_can_run_list_actions_before_ready():
    """A hook's CoreShowChannels completes (recorded 8 channels) before whenConnected fires."""
    asterisk = InMemoryAsterisk()
    client = asterisk.client()
    seen = []
    client.on_connected(lambda c: AmiActions(c).core_show_channels().addCallback(seen.append))
    ready = results(client.whenConnected())
    client.start()
    asterisk.accept()
    assert len(seen) == 1 and len(seen[0]) == 8
    assert {e.name for e in seen[0]} == {"CoreShowChannel"}
    assert only(ready) is client


def test_failing_hook_is_logged_and_the_connection_kept():
    """A resync that fails counts a hook failure but does not drop the connection."""
    asterisk = InMemoryAsterisk()
    client = asterisk.client()
    client.on_connected(lambda c: defer.fail(RuntimeError("resync broke")))
    client.start()
    asterisk.accept()
    assert client.state == "connected" and client.hook_failures == 1


def test_event_filters_are_added_after_login():
    """Each configured Filter expression is sent once logged in."""
    asterisk, client, server = connected(event_filters=["Event: Newchannel", "Event: Hangup"])
    filters = [a["Filter"] for a in server.actions if a.name == "Filter"]
    assert filters == ["Event: Newchannel", "Event: Hangup"]


def test_bad_login_backs_off_instead_of_hammering():
    """A refused login closes, counts, and each retry waits longer (1, 2, 4 s)."""
    asterisk = InMemoryAsterisk()
    client = asterisk.client(secret="wrong")
    client.start()
    delays = []
    for _ in range(3):
        asterisk.accept()
        assert client.state == "connecting" and not client.logged_in
        (retry,) = asterisk.reactor.getDelayedCalls()
        delays.append(retry.getTime() - asterisk.reactor.seconds())
        asterisk.reactor.advance(delays[-1] - 0.01)
        assert asterisk.attempts_waiting == 0
        asterisk.reactor.advance(0.01)
        assert asterisk.attempts_waiting == 1
    assert delays == [1.0, 2.0, 4.0]
    assert client.login_failures == 3 and client.logins == 0


def test_send_action_without_connection_fails_fast():
    """Between connections an action fails at once with AmiNotConnected (never queued)."""
    client = InMemoryAsterisk().client()
    assert isinstance(only(results(client.send_action("Ping"))), AmiNotConnected)


# -- losing and regaining the connection ---------------------------------------------------------

def test_disconnect_fails_pending_then_reconnects_and_resyncs():
    """A dropped link fails pending actions, reconnects after backoff and reruns the hooks."""
    asterisk = InMemoryAsterisk()
    client = asterisk.client()
    hook_runs = []
    client.on_connected(hook_runs.append)
    client.start()
    server = asterisk.accept()
    asterisk.sim.ignore_actions.add("queuestatus")
    pending = results(client.send_action("QueueStatus"))
    asterisk.flush()
    server.drop()
    asterisk.flush()
    assert isinstance(only(pending), AmiConnectionLost)
    assert client.state == "connecting" and client.protocol is None
    assert client.connection_losses == 1
    asterisk.reactor.advance(1.0)
    asterisk.accept()
    assert client.state == "connected" and client.reconnects == 1
    assert hook_runs == [client, client]


def test_reconnect_delay_resets_after_a_good_login():
    """After a successful login the next loss retries at the first backoff step again."""
    asterisk, client, server = connected()
    for _ in range(2):
        server.drop()
        asterisk.flush()
        (retry,) = asterisk.reactor.getDelayedCalls()
        assert retry.getTime() - asterisk.reactor.seconds() == 1.0
        asterisk.reactor.advance(1.0)
        server = asterisk.accept()
    assert client.reconnects == 2


def test_connection_refused_is_retried_with_growing_delays():
    """Asterisk down: refused connects are retried 1 s, 2 s, 4 s apart until it answers."""
    asterisk = InMemoryAsterisk()
    client = asterisk.client()
    client.start()
    delays = []
    for _ in range(3):
        asterisk.refuse()
        (retry,) = asterisk.reactor.getDelayedCalls()
        delays.append(retry.getTime() - asterisk.reactor.seconds())
        asterisk.reactor.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0]
    asterisk.accept()
    assert client.state == "connected"


def test_missed_keepalive_drops_and_reconnects():
    """An Asterisk that stops answering Ping is dropped and reconnected to."""
    asterisk, client, server = connected(keepalive_interval=20)
    asterisk.advance(20)
    assert client.state == "connected"
    asterisk.sim.ignore_actions.add("ping")
    asterisk.advance(20)
    asterisk.advance(20)
    assert client.connection_losses == 1 and client.state == "connecting"
    asterisk.sim.ignore_actions.clear()
    asterisk.reactor.advance(1.0)
    asterisk.accept()
    assert client.state == "connected" and client.reconnects == 1


def test_shutdown_then_eof_is_survived():
    """Event: Shutdown reaches handlers, the EOF is a normal loss, and the client logs in again."""
    asterisk, client, server = connected()
    events = []
    client.add_event_handler(events.append)
    server.shutdown(restart=True)
    asterisk.flush()
    assert [e.name for e in events] == ["Shutdown"]
    assert client.state == "connecting"
    asterisk.reactor.advance(1.0)
    asterisk.accept()
    assert client.state == "connected"


def test_stop_logs_off_and_does_not_reconnect():
    """stop() sends Logoff, disconnects and leaves no retry scheduled."""
    asterisk, client, server = connected(keepalive_interval=30)
    done = results(client.stop())
    asterisk.flush()
    assert server.actions[-1].name == "Logoff"
    assert len(done) == 1 and client.state == "stopped"
    assert asterisk.reactor.getDelayedCalls() == [] and asterisk.attempts_waiting == 0


def test_stop_while_logging_in_closes_the_half_open_connection():
    """stop() during login (no reply yet) still closes the socket and schedules nothing."""
    asterisk = InMemoryAsterisk()
    asterisk.sim.ignore_actions.add("login")
    client = asterisk.client()
    client.start()
    server = asterisk.accept()
    assert client.state == "logging_in"
    done = results(client.stop())
    asterisk.flush()
    assert not server.open and len(done) == 1 and client.state == "stopped"
    assert asterisk.reactor.getDelayedCalls() == []


def test_paced_replay_follows_the_recorded_timing():
    """replay_paced() sends each recorded chunk at its recorded offset on the clock."""
    asterisk, client, server = connected()
    got = []
    client.add_event_handler(got.append)
    timing = (TRACES / "shutdown" / "ami_restart.timing").read_text()
    server.replay_paced(raw("shutdown", "ami_restart"), timing)
    asterisk.flush()
    assert [e.name for e in got] == []
    asterisk.advance(0.02)   # second chunk: 11 ms after the first
    assert [e.name for e in got] == ["FullyBooted", "SuccessfulAuth"]
    asterisk.advance(0.5)
    assert [e.name for e in got] == ["FullyBooted", "SuccessfulAuth"]
    asterisk.advance(0.1)   # third chunk: 557 ms after the first
    assert [e.name for e in got][-1] == "Shutdown"


# -- events -----------------------------------------------------------------------------------

def test_events_reach_every_handler_even_if_one_raises():
    """A handler that raises is logged; the others still get the event, counters move."""
    asterisk, client, server = connected()
    got = []
    client.add_event_handler(lambda e: 1 / 0)
    client.add_event_handler(got.append)
    server.send_event({"Event": "SomethingNew", "Uniqueid": "1.5"})
    asterisk.flush()
    assert [e.name for e in got] == ["SomethingNew"]
    assert client.events_received >= 1


def test_replayed_recording_reaches_handlers_in_order():
    """A whole recorded call replayed by the simulator arrives event for event."""
    asterisk, client, server = connected()
    got = []
    client.add_event_handler(got.append)
    sent = server.replay(raw("queue_answered"))
    asterisk.flush()
    assert sent == summary("queue_answered")["events"] == len(got)


# -- typed actions -------------------------------------------------------------------------------

def actions_on_simulator():
    asterisk, client, server = connected()
    return asterisk, AmiActions(client), server


def test_originate_fires_with_the_originate_response():
    """originate() waits for OriginateResponse (by ActionID): success with a Uniqueid."""
    asterisk, actions, server = actions_on_simulator()
    got = results(actions.originate("Local/agent3@agents/n", application="Playback", data="beep",
                                    caller_id='"Click2Dial" <100>', variables={"HOTLINE_X": "1"}))
    asterisk.flush()
    result = only(got)
    assert isinstance(result, OriginateResult) and result.success and result.reason == 4
    assert result.uniqueid and result.channel.startswith("Local/agent3@agents-")
    sent = server.actions[-1]
    assert (sent["Async"], sent.getall("Variable")) == ("true", ["HOTLINE_X=1"])


def test_failed_originate_has_no_uniqueid():
    """A failed originate (Uniqueid: <unknown>) is a result with success False, not an error."""
    asterisk, actions, server = actions_on_simulator()
    got = results(actions.originate("Local/nosuch@agents/n", application="Playback", data="beep"))
    asterisk.flush()
    result = only(got)
    assert (result.success, result.reason, result.uniqueid) == (False, 0, None)


def test_chanspy_modes_become_chanspy_options():
    """listen/whisper/barge map to q/qw/qB (+E) in the ChanSpy Data."""
    asterisk, actions, server = actions_on_simulator()
    for mode in ("listen", "whisper", "barge"):
        results(actions.chanspy("Local/900@supervisors/n", "Local/agentL@agents", mode=mode))
    asterisk.flush()
    spied = [(a["Application"], a["Data"]) for a in server.actions if a.name == "Originate"]
    assert spied == [("ChanSpy", "Local/agentL@agents,qE"), ("ChanSpy", "Local/agentL@agents,qwE"),
                     ("ChanSpy", "Local/agentL@agents,qBE")]
    with pytest.raises(ValueError):
        actions.chanspy("Local/900@s/n", "Local/a@agents", mode="shout")


def test_command_returns_output_lines():
    """command() gives the Output: lines; an unknown CLI command is an AmiActionError."""
    asterisk, actions, server = actions_on_simulator()
    version = results(actions.command("core show version"))
    bad = results(actions.command("no such cli command"))
    asterisk.flush()
    assert only(version) == ["Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on "
                             "2026-11-22 22:58:08 UTC"]
    error = only(bad)
    assert isinstance(error, AmiActionError)
    assert error.response.getall("Output")[0].startswith("No such command")


def test_queue_and_channel_queries_return_recorded_lists():
    """queue_status/queue_summary/status/getvar read the recorded replies."""
    asterisk, actions, server = actions_on_simulator()
    status = results(actions.queue_status("support"))
    summary_ = results(actions.queue_summary())
    channels = results(actions.status())
    value = results(actions.getvar("CALLERID(num)", channel="Local/long@queue-in-00000000;2"))
    asterisk.flush()
    names = [e.name for e in only(status).items]
    assert names[0] == "QueueParams" and "QueueMember" in names
    assert {e.name for e in only(summary_)} == {"QueueSummary"}
    assert {e.name for e in only(channels)} == {"Status"}
    assert only(value) == "5550200"


def test_queue_admin_actions_send_the_recorded_headers():
    """queue_pause/add/remove/setvar/hangup/redirect/transfers/play_dtmf send what Asterisk expects."""
    asterisk, actions, server = actions_on_simulator()
    calls = [
        actions.queue_pause("Local/agent1@agents/n", True, queue="support", reason="lunch"),
        actions.queue_add("sales", "Local/agent3@agents/n", penalty=1, member_name="Agent Three"),
        actions.queue_remove("sales", "Local/agent3@agents/n"),
        actions.setvar("HOTLINE_TIER", "vip", channel="Local/x-1;2"),
        actions.hangup("Local/x-1;1"),
        actions.redirect("Local/x-1;1", "xfer", "200"),
        actions.blind_transfer("Local/x-1;2", "300", "agents"),
        actions.atxfer("Local/x-1;2", "301", "agents"),
        actions.play_dtmf("Local/x-1;1", "5", duration_ms=250),
    ]
    for d in calls:
        d.addErrback(lambda f: None)
    asterisk.flush()
    sent = {a.name: [(k, v) for k, v in a.pairs() if k not in ("Action", "ActionID")]
            for a in server.actions}
    assert sent["QueuePause"] == [("Interface", "Local/agent1@agents/n"), ("Paused", "true"),
                                  ("Queue", "support"), ("Reason", "lunch")]
    assert sent["QueueAdd"] == [("Queue", "sales"), ("Interface", "Local/agent3@agents/n"),
                                ("Penalty", "1"), ("MemberName", "Agent Three")]
    assert sent["Setvar"] == [("Channel", "Local/x-1;2"), ("Variable", "HOTLINE_TIER"), ("Value", "vip")]
    assert sent["Redirect"] == [("Channel", "Local/x-1;1"), ("Context", "xfer"), ("Exten", "200"),
                                ("Priority", "1")]
    assert sent["BlindTransfer"] == [("Channel", "Local/x-1;2"), ("Exten", "300"), ("Context", "agents")]
    assert sent["PlayDTMF"] == [("Channel", "Local/x-1;1"), ("Digit", "5"), ("Duration", "250")]


def test_untrusted_value_cannot_inject_an_action():
    """A caller-typed value with CRLF raises LocalProtocolError and nothing is sent."""
    asterisk, actions, server = actions_on_simulator()
    before = len(server.actions)
    with pytest.raises(LocalProtocolError):
        actions.setvar("NOTE", "hi\r\nAction: Hangup\r\nChannel: Local/x;1")
    asterisk.flush()
    assert len(server.actions) == before


def test_slow_asterisk_delays_replies_without_blocking_events():
    """While replies are delayed (a PlayDTMF-busy session), events still flow to handlers."""
    asterisk, client, server = connected()
    got = []
    client.add_event_handler(got.append)
    asterisk.sim.reply_delay = 5.0
    reply = results(AmiActions(client).ping())
    asterisk.flush()
    server.send_event({"Event": "Newexten", "Uniqueid": "1.1"})
    asterisk.flush()
    assert [e.name for e in got] == ["Newexten"] and reply == []
    asterisk.advance(5.0)
    assert only(reply).get("Ping") == "Pong"


# -- real loopback sockets -------------------------------------------------------------------------

class LoopbackTests(unittest.TestCase):
    """AmiClient against the simulator over 127.0.0.1 (real sockets, bounded waits)."""

    timeout = 30

    def setUp(self):
        self.sim = AmiSimulator()
        self.port = self.sim.listen(reactor)
        self.addCleanup(self.port.stopListening)

    def make_client(self, secret="secret", **options):
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        options.setdefault("keepalive_interval", 0)
        options.setdefault("retry_policy", lambda attempt: 0.05)
        client = AmiClient(endpoint, "hotline", secret, **options)
        self.addCleanup(client.stop)
        self.events = []
        client.add_event_handler(self.events.append)
        return client

    @defer.inlineCallbacks
    def test_login_and_replay_a_recorded_call(self):
        """Over TCP the client logs in and receives every event of a recorded call."""
        client = self.make_client()
        client.start()
        server = yield within(self.sim.next_login())
        yield within(client.whenConnected())
        server.send_event({"Event": "StartMarker"})
        expected = server.replay(raw("redirect_transfer"))
        server.send_event({"Event": "EndMarker"})
        while not self.events or self.events[-1].name != "EndMarker":
            yield within(self._next_event(), 5)
        names = [e.name for e in self.events]
        received = names[names.index("StartMarker") + 1:-1]
        recorded = [m.name for m in parse_all(raw("redirect_transfer")) if m.kind == "event"]
        self.assertEqual((expected, received), (len(recorded), recorded))

    def _next_event(self):
        d = defer.Deferred()
        self.sim.clock.callLater(0.01, d.callback, None)
        return d

    @defer.inlineCallbacks
    def test_disconnect_mid_message_then_reconnect(self):
        """A reset in the middle of a message: pending action fails, client reconnects and logs in."""
        client = self.make_client()
        hooks = []
        client.on_connected(hooks.append)
        client.start()
        server = yield within(self.sim.next_login())
        yield within(client.whenConnected())
        self.sim.ignore_actions.add("status")
        pending = client.send_action("Status")
        relogin = self.sim.next_login()
        server.drop()
        yield self.assertFailure(within(pending), AmiConnectionLost)
        yield within(relogin)
        yield within(client.whenConnected())
        self.assertEqual((client.reconnects, len(hooks)), (1, 2))

    @defer.inlineCallbacks
    def test_one_megabyte_message_over_tcp(self):
        """A 1 MB message crosses the socket in many reads and arrives whole; the next one too."""
        client = self.make_client()
        client.start()
        server = yield within(self.sim.next_login())
        yield within(client.whenConnected())
        server.send_big_message(1_000_000)
        server.send_event({"Event": "EndMarker"})
        while not self.events or self.events[-1].name != "EndMarker":
            yield within(self._next_event(), 5)
        (big,) = [e for e in self.events if e.name == "BigOutput"]
        self.assertEqual(len(big.getall("Output")), 1001)
        self.assertGreaterEqual(len(big.raw), 1_000_000)

    @defer.inlineCallbacks
    def test_bad_login_over_tcp_is_refused_and_retried(self):
        """Wrong secret: Authentication failed, Asterisk-style close, then a backed-off retry."""
        client = self.make_client(secret="wrong")
        first, second = self.sim.next_connection(), None
        client.start()
        conn = yield within(first)
        second = self.sim.next_connection()
        yield within(conn.closed)
        yield within(second)
        self.assertGreaterEqual(client.login_failures, 1)
        self.assertFalse(client.logged_in)

    @defer.inlineCallbacks
    def test_shutdown_over_tcp_then_login_again(self):
        """Shutdown + EOF from the server: the client reconnects on its own."""
        client = self.make_client()
        client.start()
        server = yield within(self.sim.next_login())
        yield within(client.whenConnected())
        relogin = self.sim.next_login()
        server.shutdown(restart=True)
        yield within(relogin)
        self.assertIn("Shutdown", [e.name for e in self.events])
