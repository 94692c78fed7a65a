"""A simulated Asterisk AMI server, speaking the real protocol over real sockets.

Its replies are the recorded ones (``asterisk-traces/ami_actions``): a client's action
is matched to the recorded action with the same name and headers (or, failing that,
the first recorded action of that name) and answered with the recorded response and
list events, ActionID rewritten. Login (plain and MD5 ``Challenge``), ``Ping``,
``Logoff``, ``Originate`` (+ ``OriginateResponse``), ``Events``, ``Filter`` and errors
(``Permission denied`` before login, ``Missing action in request``, unknown actions)
follow Asterisk 22's behaviour as recorded. Test controls on each connection inject
events, raw bytes, garbage, a 1 MB message, a mid-message drop, ``Shutdown`` + EOF,
replay an ``ami.raw`` (at full speed or with its recorded pacing), delay replies
(a ``PlayDTMF``-style busy session) or stop reading (slow reader).

Usage (trial/pytest with a running reactor)::

    sim = AmiSimulator()
    port = sim.listen(reactor)                  # 127.0.0.1, ephemeral port
    conn = yield sim.next_login()               # the server side of the next login
    conn.send_event({"Event": "Newchannel", "Uniqueid": "1.1"})
"""
from __future__ import annotations

import itertools
import random
import time
from hashlib import md5
from pathlib import Path
from typing import Iterable, Mapping

from twisted.internet import defer
from twisted.internet.protocol import Protocol, ServerFactory

from cti.ami.errors import RemoteProtocolError
from cti.ami.parser import AmiMessage, AmiParser

from traces import TRACES
BANNER = "Asterisk Call Manager/11.0.0"

Headers = Mapping[str, object] | Iterable[tuple[str, object]]


def encode_message(headers: Headers) -> bytes:
    """Wire bytes of one server message (no validation: the simulator may send anything)."""
    items = headers.pairs() if isinstance(headers, AmiMessage) else (
        headers.items() if isinstance(headers, Mapping) else headers)
    return "".join(f"{k}: {v}\r\n" for k, v in items).encode("utf-8") + b"\r\n"


def _with_action_id(message: AmiMessage, action_id: str | None) -> list[tuple[str, str]]:
    pairs = []
    for key, value in message.pairs():
        if key == "ActionID":
            if action_id is None:
                continue
            value = action_id
        pairs.append((key, value))
    return pairs


def read_messages(path: Path, *, banner: bool = True) -> list[AmiMessage]:
    parser = AmiParser(expect_banner=banner)
    return [m for m in parser.feed(path.read_bytes()) if isinstance(m, AmiMessage)]


class Recording:
    """The recorded (action -> response + events carrying its ActionID) conversation."""

    def __init__(self, folder: Path = TRACES / "ami_actions") -> None:
        sent = read_messages(folder / "ami.sent", banner=False)
        received = read_messages(folder / "ami.raw")
        by_id: dict[str, list[AmiMessage]] = {}
        for message in received:
            if message.action_id is not None:
                by_id.setdefault(message.action_id, []).append(message)
        self.exchanges: list[tuple[AmiMessage, list[AmiMessage]]] = [
            (action, by_id.get(action.action_id, [])) for action in sent]
        self.boot_events = [m for m in received if m.kind == "event"
                            and m.name in ("FullyBooted", "SuccessfulAuth")]
        names = (TRACES / "manager-commands.txt").read_text().split("\n")
        self.known_actions = {line.split()[0].lower() for line in names[2:] if line.strip()}

    @staticmethod
    def _key(action: AmiMessage) -> tuple:
        return (action.name.lower(),
                tuple(sorted((k.lower(), v) for k, v in action.pairs()
                             if k.lower() not in ("action", "actionid"))))

    def reply_for(self, action: AmiMessage) -> list[AmiMessage] | None:
        """Recorded reply to the same action (same headers), else to the same action name."""
        key = self._key(action)
        fallback = None
        for recorded, reply in self.exchanges:
            if not reply:
                continue
            if self._key(recorded) == key:
                return reply
            if fallback is None and recorded.name.lower() == action.name.lower():
                fallback = reply
        return fallback

    def originate_response(self, success: bool) -> AmiMessage:
        for recorded, reply in self.exchanges:
            for message in reply:
                if message.name == "OriginateResponse" and (message.get("Response") == "Success") == success:
                    return message
        raise LookupError("no OriginateResponse in the recording")


_RECORDING: Recording | None = None


def recording() -> Recording:
    global _RECORDING
    if _RECORDING is None:
        _RECORDING = Recording()
    return _RECORDING


class AmiServerConnection(Protocol):
    """Server side of one AMI connection, with test controls."""

    factory: "AmiSimulator"

    def __init__(self) -> None:
        self.parser = AmiParser(expect_banner=False)
        self.logged_in = False
        self.username: str | None = None
        self.events_enabled = True
        self.challenge: str | None = None
        self.actions: list[AmiMessage] = []
        self.closed = defer.Deferred()
        self.open = False

    # -- Twisted ---------------------------------------------------------------------
    def connectionMade(self) -> None:
        self.open = True
        self.factory.connections.append(self)
        self.transport.write(self.factory.banner.encode() + b"\r\n")
        self.factory._fire(self.factory._connection_waiters, self)

    def connectionLost(self, reason=None) -> None:
        self.open = False
        if self in self.factory.connections:
            self.factory.connections.remove(self)
        self.closed.callback(None)

    def dataReceived(self, data: bytes) -> None:
        for item in self.parser.feed(data):
            if isinstance(item, RemoteProtocolError):
                self.write({"Response": "Error", "Message": "Missing action in request"})
            elif item.kind != "action":
                self.write({"Response": "Error", "Message": "Missing action in request"})
            else:
                self.actions.append(item)
                self.factory.actions.append(item)
                delay = self.factory.reply_delay
                if delay:
                    self.factory.clock.callLater(delay, self._handle, item)
                else:
                    self._handle(item)

    # -- test controls -----------------------------------------------------------------
    def write(self, headers: Headers) -> None:
        if self.open:
            self.transport.write(encode_message(headers))

    def send_event(self, headers: Headers) -> None:
        """Send one event (dict/pairs; ``Event`` should come first)."""
        if self.events_enabled:
            self.write(headers)

    def send_raw(self, data: bytes) -> None:
        if self.open:
            self.transport.write(data)

    def replay(self, raw: bytes, *, skip_banner: bool = True, events_only: bool = True) -> int:
        """Send a recorded ``ami.raw`` at full speed; returns the number of messages sent.

        ``events_only`` leaves out the recorder's own responses (their ActionIDs mean
        nothing to this client); the events are re-encoded byte for byte.
        """
        messages = AmiParser(expect_banner=skip_banner).feed(raw)
        out = [encode_message(m) for m in messages
               if isinstance(m, AmiMessage) and (m.kind == "event" or not events_only)]
        self.send_raw(b"".join(out))
        return len(out)

    def replay_paced(self, raw: bytes, timing: str, *, speed: float = 1.0) -> defer.Deferred:
        """Send ``raw`` in its recorded recv() chunks at the recorded pace (on the factory clock).

        ``timing`` is the text of ``ami.timing``; the banner chunk is skipped (this
        connection already sent its own). Fires when the last chunk is written.
        """
        from datetime import datetime
        chunks = []
        for line in timing.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] != "EOF":
                when = datetime.fromisoformat(parts[0].replace("Z", "+00:00")).timestamp()
                chunks.append((when, int(parts[1]), int(parts[2])))
        banner_end = raw.find(b"\n") + 1
        start = chunks[0][0] if chunks else 0.0
        done = defer.Deferred()
        calls = []
        for when, offset, length in chunks:
            data = raw[max(offset, banner_end):offset + length] if offset + length > banner_end else b""
            if data:
                calls.append(self.factory.clock.callLater((when - start) / speed, self.send_raw, data))
        last = max(((when - start) / speed for when, _, _ in chunks), default=0.0)
        self.factory.clock.callLater(last, lambda: done.called or done.callback(len(calls)))
        return done

    def send_garbage(self) -> None:
        """A header-less line, bare blank lines and a line without colon inside a message."""
        self.send_raw(b"this is not a header\r\n\r\n\r\n\r\n"
                      b"Event: Odd\r\nno colon here\r\nUniqueid: 9.9\r\n\r\n")

    def send_big_message(self, size: int = 1_000_000) -> None:
        """One ``Command``-like response of ``size`` bytes of ``Output:`` lines."""
        line = b"Output: " + b"x" * 990 + b"\r\n"
        body = line * (size // len(line) + 1)
        self.send_raw(b"Event: BigOutput\r\n" + body + b"\r\n")

    def drop(self, partial: bytes = b"Event: Newchannel\r\nChannel: Loc") -> None:
        """Send half a message, then reset the connection (no FIN handshake wait)."""
        self.send_raw(partial)
        self.transport.abortConnection()

    def shutdown(self, restart: bool = True) -> None:
        """``Event: Shutdown`` then EOF, as ``core restart now`` / ``core stop now`` do."""
        self.write([("Event", "Shutdown"), ("Privilege", "system,all"),
                    ("Shutdown", "Cleanly"), ("Restart", "True" if restart else "False")])
        self.transport.loseConnection()

    def pause_reading(self) -> None:
        """Stop reading actions (a stuck Asterisk): replies wait until ``resume_reading``."""
        self.transport.pauseProducing()

    def resume_reading(self) -> None:
        self.transport.resumeProducing()

    # -- action handlers -------------------------------------------------------------------
    def _handle(self, action: AmiMessage) -> None:
        if not self.open:
            return
        name = action.name.lower()
        if name in self.factory.ignore_actions:
            return
        if not self.logged_in and name not in ("login", "challenge"):
            self.reply(action, "Error", Message="Permission denied")
            return
        handler = getattr(self, f"action_{name}", None)
        if handler is not None:
            handler(action)
        elif name not in recording().known_actions:
            self.reply(action, "Error", Message=f"Invalid/unknown command: {action.name}. "
                       "Use Action: ListCommands to show available commands.")
        else:
            recorded = recording().reply_for(action)
            if recorded is None:
                self.reply(action, "Success")
            for message in recorded or ():
                self.write(_with_action_id(message, action.action_id))

    def reply(self, action: AmiMessage, status: str, **headers: object) -> None:
        pairs: list[tuple[str, object]] = [("Response", status)]
        if action.action_id is not None:
            pairs.append(("ActionID", action.action_id))
        pairs.extend(headers.items())
        self.write(pairs)

    def action_challenge(self, action: AmiMessage) -> None:
        self.challenge = str(random.randint(100000000, 999999999))
        self.reply(action, "Success", Challenge=self.challenge)

    def action_login(self, action: AmiMessage) -> None:
        user = action.get("Username", "")
        secret = self.factory.users.get(user)
        if (action.get("AuthType") or "").lower() == "md5":
            ok = (secret is not None and self.challenge is not None and
                  action.get("Key") == md5((self.challenge + secret).encode()).hexdigest())
        else:
            ok = secret is not None and action.get("Secret") == secret
        if not ok:
            self.reply(action, "Error", Message="Authentication failed")
            self.transport.loseConnection()
            return
        self.logged_in = True
        self.username = user
        self.events_enabled = (action.get("Events") or "on").lower() != "off"
        self.reply(action, "Success", Message="Authentication accepted")
        if (action.get("Events") or "on").lower() == "on":
            for event in recording().boot_events:
                self.write(event.pairs())
        self.factory._fire(self.factory._login_waiters, self)

    def action_logoff(self, action: AmiMessage) -> None:
        self.reply(action, "Goodbye", Message="Thanks for all the fish.")
        self.transport.loseConnection()

    def action_ping(self, action: AmiMessage) -> None:
        self.reply(action, "Success", Ping="Pong", Timestamp=f"{time.time():.6f}")

    def action_events(self, action: AmiMessage) -> None:
        self.events_enabled = (action.get("EventMask") or "on").lower() != "off"
        self.reply(action, "Success", Events="On" if self.events_enabled else "Off")

    def action_filter(self, action: AmiMessage) -> None:
        self.reply(action, "Success", Message="Filter Added Successfully")

    def action_originate(self, action: AmiMessage) -> None:
        self.reply(action, "Success", Message="Originate successfully queued")
        if (action.get("Async") or "").lower() not in ("true", "yes", "1"):
            return
        channel = action.get("Channel", "")
        success = "nosuch" not in channel
        template = recording().originate_response(success)
        pairs = []
        for key, value in _with_action_id(template, action.action_id):
            if key == "Channel":
                value = (f"{channel.split('/n')[0]}-{next(self.factory.channel_seq):08x};1"
                         if success else channel)
            elif key in ("Application", "Data", "Context", "Exten") and action.get(key) is not None:
                value = action[key]
            pairs.append((key, value))
        self.write(pairs)

    def action_command(self, action: AmiMessage) -> None:
        recorded = recording().reply_for(action)
        if recorded is not None and recording()._key(action) in {
                recording()._key(a) for a, _ in recording().exchanges}:
            for message in recorded:
                self.write(_with_action_id(message, action.action_id))
            return
        command = action.get("Command", "")
        self.reply(action, "Error", Message="Command output follows",
                   Output=f"No such command '{command}' (type 'core show help "
                          f"{command.split()[0] if command.split() else ''}' for other possible commands)")


class AmiSimulator(ServerFactory):
    """The listening side; ``users`` maps username -> secret."""

    protocol = AmiServerConnection

    def __init__(self, users: Mapping[str, str] | None = None, *, banner: str = BANNER,
                 clock=None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.users = dict(users or {"hotline": "secret"})
        self.banner = banner
        self.connections: list[AmiServerConnection] = []
        self.actions: list[AmiMessage] = []
        self.reply_delay = 0.0
        self.ignore_actions: set[str] = set()     # lower-case action names never answered
        self.channel_seq = itertools.count(0x10)
        self._connection_waiters: list[defer.Deferred] = []
        self._login_waiters: list[defer.Deferred] = []

    def listen(self, reactor, interface: str = "127.0.0.1", port: int = 0):
        """listenTCP on an ephemeral port; returns the IListeningPort (``.getHost().port``)."""
        return reactor.listenTCP(port, self, interface=interface)

    def next_connection(self) -> defer.Deferred:
        """Fires with the server side of the next accepted connection."""
        d: defer.Deferred = defer.Deferred()
        self._connection_waiters.append(d)
        return d

    def next_login(self) -> defer.Deferred:
        """Fires with the server side of the next successful login."""
        d: defer.Deferred = defer.Deferred()
        self._login_waiters.append(d)
        return d

    @staticmethod
    def _fire(waiters: list, value: object) -> None:
        pending = list(waiters)
        waiters.clear()
        for d in pending:
            d.callback(value)
