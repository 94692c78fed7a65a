"""The AGI wire protocol as a sans-I/O state machine (bytes in, events out; commands in, bytes out).

Asterisk speaks the same protocol over a FastAGI socket and over a classic AGI script's
stdin/stdout: an ``agi_*`` environment block ended by a blank line, then one reply per
command we send. Keeping it free of sockets lets the FastAGI server, the classic AGI
entry point, the simulator and the trace-replay tests share one parser, built the h11
way: ``receive_data()`` then ``next_event()`` until ``NEED_DATA``; ``send()`` for commands.

Events: ``AgiEnvironment`` (once), ``AgiResult`` (the reply to the pending command),
``CallerHangup`` (Asterisk's unsolicited ``HANGUP`` line — it may come between a command
and its reply; the reply that follows still belongs to that command),
``RemoteProtocolError`` (a line we could not use: logged and skipped, or ``fatal`` when
the connection cannot go on) and ``ConnectionClosed``.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Mapping, Union
from urllib.parse import parse_qsl, unquote, urlsplit

from ivr.commands import AgiResult, CallerHangup, ChannelCommand

__all__ = [
    "NEED_DATA", "AgiConnection", "AgiEnvironment", "ConnectionClosed",
    "LocalProtocolError", "RemoteProtocolError", "parse_reply", "parse_request",
    "DEFAULT_MAX_LINE_LENGTH", "Event",
]

DEFAULT_MAX_LINE_LENGTH = 1 << 20  # 1 MiB: GET VARIABLE of a huge value still fits
DEFAULT_MAX_ENV_LINES = 512       # Asterisk sends ~25; more means a confused peer
MAX_USAGE_LINES = 1000            # a 520 usage block is a few lines of documentation


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


class LocalProtocolError(Exception):
    """Our own code misused the protocol (e.g. a second command while one is pending)."""


class RemoteProtocolError(Exception):
    """Asterisk (or whatever is on the socket) sent something we cannot use.

    Returned as an event, not raised: a garbage line is logged and skipped. ``fatal``
    means the connection cannot continue (a line over the length limit, too many
    environment lines); a ``ConnectionClosed`` event follows.
    """

    def __init__(self, message: str, line: str = "", fatal: bool = False):
        super().__init__(message)
        self.line = line[:200]
        self.fatal = fatal

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RemoteProtocolError) and str(self) == str(other)
                and self.fatal == other.fatal)

    def __hash__(self) -> int:
        return hash((str(self), self.fatal))


@dataclass(frozen=True)
class ConnectionClosed:
    """No more events will come: the peer closed (``eof``) or we gave up (``protocol_error``)."""

    reason: str = "eof"


class AgiEnvironment(dict):
    """The ``agi_*`` variables (a plain dict, as Asterisk sent them) plus what we parse from them.

    ``flow`` and ``query`` come from the request: ``agi://host:4573/main?lang=zh`` gives
    flow ``main`` and query ``{'lang': 'zh'}``; ``args`` are ``agi_arg_1..N`` in order.
    """

    flow: str
    query: dict[str, str]
    args: list[str]

    def __init__(self, variables: Mapping[str, str] = (), **kw: str):
        super().__init__(variables, **kw)
        self.flow, self.query = parse_request(self.get("agi_request", ""),
                                              self.get("agi_network_script"))
        numbered = []
        for key, value in self.items():
            if key.startswith("agi_arg_") and key[8:].isdigit():
                numbered.append((int(key[8:]), value))
        self.args = [value for _, value in sorted(numbered)]

    @property
    def network(self) -> bool:
        """True for FastAGI (``agi_network: yes``), False for a classic AGI script."""
        return self.get("agi_network", "").lower() == "yes"

    def _known(self, key: str) -> str | None:
        value = self.get(key, "")
        return None if value in ("", "unknown") else value

    @property
    def channel(self) -> str | None:
        return self._known("agi_channel")

    @property
    def uniqueid(self) -> str | None:
        return self._known("agi_uniqueid")

    @property
    def caller_id_num(self) -> str | None:
        return self._known("agi_callerid")

    @property
    def caller_id_name(self) -> str | None:
        return self._known("agi_calleridname")

    @property
    def dnid(self) -> str | None:
        return self._known("agi_dnid")

    @property
    def language(self) -> str | None:
        return self._known("agi_language")


def parse_request(request: str, network_script: str | None = None) -> tuple[str, dict[str, str]]:
    """Flow name and query parameters of an AGI request.

    ``agi://127.0.0.1:4573/main?flow=demo`` -> ``("main", {"flow": "demo"})``. FastAGI
    also sends ``agi_network_script: main?flow=demo``, which wins when present (it is
    exactly what the dialplan wrote after the host). A classic AGI request is a script
    path (``hotline_classic.py``): the flow is its base name without the extension.
    """
    if network_script is not None and network_script != "":
        path, _, query = network_script.partition("?")
    elif "://" in request:
        parts = urlsplit(request)
        path, query = parts.path, parts.query
    else:
        path, query = request.rsplit("/", 1)[-1], ""
        if "." in path:
            path = path.rsplit(".", 1)[0]
    flow = unquote(path).strip("/")
    return flow, dict(parse_qsl(query, keep_blank_values=True))


# --- reply lines --------------------------------------------------------------------------

_REPLY = re.compile(r"(?P<code>\d{3})(?P<sep>[ -]|$)(?P<rest>.*)", re.S)
_RESULT = re.compile(r"result=(?P<result>\S*)\s*(?P<rest>.*)", re.S)
# Data in parentheses may itself hold spaces and parentheses: take the LAST ")" that is
# followed only by key=value pairs (endpos=...), else the first ")" (free text follows).
_DATA_THEN_PAIRS = re.compile(r"\((?P<data>.*)\)(?P<tail>(?:\s+\w+=\S*)*)\s*", re.S)
_DATA_FIRST = re.compile(r"\((?P<data>[^)]*)\)\s*(?P<tail>.*)", re.S)
_ENDPOS = re.compile(r"(?:^|\s)endpos=(?P<endpos>-?\d+)(?=\s|$)")


def parse_reply(line: str) -> AgiResult | None:
    """Parse one single-line reply (``200 result=1 (data) endpos=42``, ``510 ...``).

    Returns None when the line is not a reply at all. The multi-line ``520-`` block and
    the ``HANGUP`` line are handled by ``AgiConnection``, not here.
    """
    m = _REPLY.fullmatch(line)
    if m is None:
        return None
    code = int(m.group("code"))
    rest = m.group("rest").strip()
    result, data, endpos = "", None, None
    rm = _RESULT.match(rest)
    if rm is None:
        return AgiResult(code=code, message=rest)
    result, rest = rm.group("result"), rm.group("rest")
    if rest.startswith("("):
        dm = _DATA_THEN_PAIRS.fullmatch(rest) or _DATA_FIRST.fullmatch(rest)
        if dm is not None:
            data, rest = dm.group("data"), dm.group("tail").strip()
    em = _ENDPOS.search(rest)
    if em is not None:
        endpos = int(em.group("endpos"))
        rest = (rest[:em.start()] + " " + rest[em.end():]).strip()
    return AgiResult(code=code, result=result, data=data, endpos=endpos, message=" ".join(rest.split()))


Event = Union[AgiEnvironment, AgiResult, CallerHangup, RemoteProtocolError, ConnectionClosed]

_ENV_NAME = re.compile(r"\w+")
_USAGE_END = "520 End of proper usage."


class AgiConnection:
    """One AGI conversation, seen from the script's side (ours).

    States of the peer: ``ENV`` (reading the environment block), ``READY`` (replies),
    ``CLOSED``. Our side: ``pending`` holds the command line awaiting its reply; sending
    another before it is answered is a ``LocalProtocolError``.
    """

    def __init__(self, *, max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
                 max_env_lines: int = DEFAULT_MAX_ENV_LINES,
                 environment: Mapping[str, str] | None = None):
        self.max_line_length = max_line_length
        self.max_env_lines = max_env_lines
        self._buf = bytearray()
        self._scan = 0           # no b"\n" in _buf before this offset
        self._events: deque[Event] = deque()
        self._lines: deque[str] = deque()   # complete lines not handled yet
        self._env_lines: dict[str, str] = {}
        self._usage: list[str] | None = None
        self._eof = False
        self._closed_event_sent = False
        self.environment: AgiEnvironment | None = None
        self.their_state = "ENV"
        self.pending: str | None = None
        self.hangup_received = False
        self.commands_sent = 0
        if environment is not None:   # classic AGI: pyst2 already read the block
            self.environment = environment if isinstance(environment, AgiEnvironment) \
                else AgiEnvironment(environment)
            self.their_state = "READY"

    # -- bytes in ------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means end of file."""
        if self.their_state == "CLOSED":
            return
        if not data:
            self._eof = True
            return
        self._buf += data

    def next_event(self) -> Event | _NeedData:
        """The next event, or ``NEED_DATA`` when more bytes are needed."""
        while not self._events:
            if self.their_state == "CLOSED":
                if not self._closed_event_sent:
                    self._closed_event_sent = True
                    return ConnectionClosed("protocol_error")
                return NEED_DATA
            if not self._lines and not self._split_lines():
                if self._events:      # a line was refused (fatal error event)
                    break
                if self._eof and not self._closed_event_sent:
                    self._closed_event_sent = True
                    self.their_state = "CLOSED"
                    self._buf.clear()
                    return ConnectionClosed("eof")
                return NEED_DATA
            self._handle_line(self._lines.popleft())
        return self._events.popleft()

    def events(self) -> Iterable[Event]:
        """Every event available now (stops at ``NEED_DATA``)."""
        while True:
            event = self.next_event()
            if event is NEED_DATA:
                return
            yield event  # type: ignore[misc]
            if isinstance(event, ConnectionClosed):
                return

    def _split_lines(self) -> bool:
        """Move every complete line of the buffer to ``_lines``; False if there was none."""
        buf = self._buf
        last = buf.rfind(b"\n", self._scan)
        if last < 0:
            if len(buf) > self.max_line_length:
                self._fail(f"line longer than {self.max_line_length} bytes")
            else:
                self._scan = len(buf)
            return False
        chunk = bytes(buf[:last])
        del buf[:last + 1]
        self._scan = 0
        limit = self.max_line_length
        for raw in chunk.split(b"\n"):
            if len(raw) > limit:
                self._lines.clear()
                self._fail(f"line longer than {limit} bytes")
                return False
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self._lines.append(raw.decode("utf-8", "replace"))
        return True

    def _fail(self, message: str) -> None:
        self._events.append(RemoteProtocolError(message, fatal=True))
        self.their_state = "CLOSED"
        self._buf.clear()
        self._lines.clear()
        self._scan = 0

    # -- lines ----------------------------------------------------------------------------
    def _handle_line(self, line: str) -> None:
        if self.their_state == "ENV":
            self._handle_env_line(line)
        elif self._usage is not None:
            self._handle_usage_line(line)
        else:
            self._handle_reply_line(line)

    def _handle_env_line(self, line: str) -> None:
        if line == "":
            self.environment = AgiEnvironment(self._env_lines)
            self.their_state = "READY"
            self._events.append(self.environment)
            return
        name, colon, value = line.partition(":")
        if not colon or not _ENV_NAME.fullmatch(name):
            self._events.append(RemoteProtocolError("not an agi_name: value line", line))
            return
        if len(self._env_lines) >= self.max_env_lines:
            self._fail(f"more than {self.max_env_lines} environment lines")
            return
        self._env_lines[name] = value.strip()

    def _handle_usage_line(self, line: str) -> None:
        assert self._usage is not None
        if line.startswith("520 ") or line.endswith(_USAGE_END):
            if not line.startswith("520 "):   # some versions glue it to the last usage line
                self._usage.append(line[: -len(_USAGE_END)])
            message = "\n".join(self._usage)
            self._usage = None
            self._complete(AgiResult(code=520, message=message))
        elif len(self._usage) < MAX_USAGE_LINES:
            self._usage.append(line)

    def _handle_reply_line(self, line: str) -> None:
        if line.strip() == "HANGUP":
            if not self.hangup_received:
                self.hangup_received = True
                self._events.append(CallerHangup("caller_hangup"))
            return
        m = _REPLY.fullmatch(line)
        if m is None:
            self._events.append(RemoteProtocolError("not an AGI reply", line))
            return
        if self.pending is None:
            self._events.append(RemoteProtocolError("reply with no command pending", line))
            return
        code = m.group("code")
        if code == "100":            # "100 result=0 Trying..." (GOSUB): the real reply follows
            return
        if code == "520" and m.group("sep") == "-":
            self._usage = []
            return
        result = parse_reply(line)
        assert result is not None
        self._complete(result)

    def _complete(self, result: AgiResult) -> None:
        self.pending = None
        self._events.append(result)

    # -- commands out ---------------------------------------------------------------------
    def send(self, command: ChannelCommand | str) -> bytes:
        """The bytes to write for ``command``; it becomes ``pending`` until its reply."""
        line = command.agi_line() if isinstance(command, ChannelCommand) else command
        if self.environment is None:
            raise LocalProtocolError(f"cannot send {line!r} before the environment block")
        if self.their_state == "CLOSED":
            raise LocalProtocolError(f"cannot send {line!r}: the connection is closed")
        if self.pending is not None:
            raise LocalProtocolError(
                f"cannot send {line!r}: {self.pending!r} is still waiting for its reply")
        if "\n" in line or "\r" in line:
            raise LocalProtocolError(f"a command is one line: {line!r}")
        self.pending = line
        self.commands_sent += 1
        return line.encode("utf-8") + b"\n"

    def abandon_pending(self) -> None:
        """Forget the pending command (we gave up waiting); a late reply is then a stray line."""
        self.pending = None
        self._usage = None
