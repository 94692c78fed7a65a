"""Sans-I/O AMI codec: bytes in -> ``AmiMessage`` out, actions in -> bytes out.

It knows nothing of sockets or reactors (h11-style), so the Twisted protocol, the
simulator, the trace tests and the benchmark all share it. It is the hot path of the
CTI side (tens of thousands of events per second at peak), hence the shape: complete
messages are found with ``rfind`` over the new bytes, decoded once per read, split on
``"\\r\\n\\r\\n"`` / ``"\\r\\n"`` / ``": "`` with C-level string methods, and a
message is a thin view over its text whose headers are split on first access. Input
Asterisk should never send takes a slower path and is reported, never raised: a block
that does not start with ``Event:``/``Response:``/``Action:`` (e.g. a header-less
line), a message over the size limit or a connection closed mid-message is returned
from ``feed`` as a ``RemoteProtocolError`` item and skipped; a colon-less line inside
an otherwise normal message is dropped and logged (``ami.remote_protocol_error``) when
its headers are first read. LF-only line ends and invalid UTF-8 (U+FFFD) are accepted.
``feed`` never raises and never loses the messages that follow.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Union

from .errors import LocalProtocolError, RemoteProtocolError

log = logging.getLogger(__name__)

__all__ = [
    "AmiMessage", "AmiParser", "ParserItem", "encode_action", "DEFAULT_MAX_MESSAGE_SIZE",
    "RemoteProtocolError", "LocalProtocolError",
]

#: Asterisk's biggest replies (``Command`` output of a large ``core show ...``) stay far
#: below this; a longer message is skipped with a RemoteProtocolError.
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024

_KINDS = {"event": "event", "response": "response", "action": "action"}
#: Blocks starting like this (Asterisk's own spelling) take the lazy fast path.
_FAST_STARTS = ("Event: ", "Response: ", "Action: ")


class AmiMessage(Mapping[str, str]):
    """One AMI message: headers in arrival order, case-insensitive lookup.

    ``kind`` is ``'event'``, ``'response'``, ``'action'`` or ``'other'`` after the first
    header; ``name`` is the event name, the response status (``Success``, ``Error``,
    ``Follows``, ``Goodbye``) or the action name; ``action_id`` the ``ActionID`` header.
    Those three are read at parse time; the other headers are split out of the message
    text on first access (most events a consumer ignores, e.g. ``VarSet``, never pay
    for it). Repeated headers (``Output``, ``Variable``, ``ChanVariable``) are all kept:
    ``get``/``[]`` give the first, ``getall`` every value. Lookups with Asterisk's own
    spelling (``"Uniqueid"``) are a dict hit; another case falls back to a lower-cased
    index built once, on demand.
    """

    __slots__ = ("kind", "name", "action_id", "_text", "_pairs", "_index", "_folded")

    def __init__(self, pairs: list) -> None:
        if not pairs:
            raise LocalProtocolError("an AMI message needs at least one header")
        self._text = None
        self._set_pairs(pairs)
        first_key, first_value = pairs[0]
        kind = _KINDS.get(first_key.lower(), "other")
        self.kind = kind
        self.name = first_value if kind != "other" else ""
        self.action_id = self.get("ActionID")

    @classmethod
    def _from_text(cls, text: str) -> "AmiMessage":
        """A message over one CRLF block whose first line is ``Event: ``/``Response: ``/``Action: ``."""
        self = object.__new__(cls)
        self._text = text
        self._pairs = self._index = self._folded = None
        eol = text.find("\r\n")
        if text[0] == "E":
            self.kind, self.name = "event", text[7:eol] if eol >= 0 else text[7:]
        elif text[0] == "R":
            self.kind, self.name = "response", text[10:eol] if eol >= 0 else text[10:]
        else:
            self.kind, self.name = "action", text[8:eol] if eol >= 0 else text[8:]
        at = text.find("\r\nActionID: ")
        if at < 0:
            self.action_id = None
        else:
            at += 12
            eol = text.find("\r\n", at)
            self.action_id = text[at:eol] if eol >= 0 else text[at:]
        return self

    @classmethod
    def build(cls, headers: Mapping[str, object] | Iterable[tuple[str, object]]) -> "AmiMessage":
        """A message from Python values (tests, the simulator); values become ``str``."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        pairs: list = []
        for key, value in items:
            values = value if isinstance(value, (list, tuple)) else [value]
            pairs.extend((key, _text(v)) for v in values)
        return cls(pairs)

    def _set_pairs(self, pairs: list) -> None:
        self._pairs = pairs
        index = dict(pairs)
        if len(index) != len(pairs):   # repeated headers: the first value wins
            index = dict(reversed(pairs))
        self._index = index
        self._folded = None

    def _materialise(self) -> None:
        text = self._text
        lines = text.split("\r\n")
        pairs = [line.split(": ", 1) for line in lines]
        try:
            if text.count("\n") != len(lines) - 1:
                raise ValueError("a bare LF inside a CRLF message")
            self._set_pairs(pairs)
        except ValueError:   # a line without ": ", a bare LF: the slow, careful path
            errors: list = []
            self._set_pairs(_split_headers_slowly(text, errors))
            for error in errors:
                log.warning("ami.remote_protocol_error error=%r data=%r", str(error), error.data)

    # -- Mapping -------------------------------------------------------------------
    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default=None):  # type: ignore[override]
        index = self._index
        if index is None:
            self._materialise()
            index = self._index
        value = index.get(key)
        if value is not None:
            return value
        folded = self._folded
        if folded is None:
            folded = self._folded = {}
            for k, v in self._pairs:
                folded.setdefault(k.lower(), v)
        return folded.get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for k, _ in self.pairs():
            folded = k.lower()
            if folded not in seen:
                seen.add(folded)
                yield k

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self.pairs()})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AmiMessage):
            return self.pairs() == other.pairs()
        return Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    # -- AMI specifics ---------------------------------------------------------------
    def getall(self, key: str) -> list[str]:
        """Every value of a repeated header, in arrival order (``[]`` if absent)."""
        folded = key.lower()
        return [v for k, v in self.pairs() if k == key or k.lower() == folded]

    def pairs(self) -> list[tuple[str, str]]:
        """All (header, value) pairs in arrival order, repeats included."""
        if self._pairs is None:
            self._materialise()
        return [(k, v) for k, v in self._pairs]

    @property
    def raw(self) -> bytes:
        """The message re-encoded as on the wire (CRLF, blank line); built on demand."""
        return "".join(f"{k}: {v}\r\n" for k, v in self.pairs()).encode("utf-8") + b"\r\n"

    @property
    def is_list_start(self) -> bool:
        """A response opening an EventList (``EventList: start``)."""
        return self.kind == "response" and (self.get("EventList") or "").lower() == "start"

    @property
    def is_list_complete(self) -> bool:
        """The event closing an EventList (``EventList: Complete``)."""
        return self.kind == "event" and (self.get("EventList") or "").lower() == "complete"

    def __repr__(self) -> str:
        return f"AmiMessage({self.kind} {self.name!r}, action_id={self.action_id!r})"


ParserItem = Union[AmiMessage, RemoteProtocolError]


def _split_headers_slowly(block: str, errors: list) -> list:
    """Header pairs of a block that failed the fast path (missing colon, LF-only, ``Key:``)."""
    pairs = []
    for line in block.replace("\r\n", "\n").split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        colon = line.find(":")
        if colon <= 0:
            errors.append(RemoteProtocolError("AMI line without 'Header: value', skipped", line))
            continue
        value = line[colon + 1:]
        pairs.append((line[:colon], value[1:] if value[:1] == " " else value))
    return pairs


_from_text = AmiMessage._from_text


class AmiParser:
    """Incremental AMI reader: ``feed(bytes)`` returns the messages (and errors) completed.

    ``expect_banner`` (default, client side): the first line is the greeting
    (``Asterisk Call Manager/11.0.0``), stored in ``banner``; it is not followed by a
    blank line. Use ``expect_banner=False`` to read actions on the server side.
    """

    def __init__(self, *, expect_banner: bool = True,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.banner: str | None = None
        self.max_message_size = max_message_size
        self._want_banner = expect_banner
        self._buffer = b""
        self._discarding = False   # inside an over-size message: drop until its blank line

    def feed(self, data: bytes) -> list[ParserItem]:
        """Consume ``data``; return every message completed by it, in order."""
        buffer = self._buffer + data if self._buffer else data
        items: list[ParserItem] = []
        if self._discarding:
            buffer = self._skip_oversize(buffer, items)
            if self._discarding:
                return items
        if self._want_banner:
            newline = buffer.find(b"\n")
            if newline < 0:
                self._buffer = buffer
                if len(buffer) > self.max_message_size:
                    self._buffer = b""
                    self._want_banner = False
                    items.append(RemoteProtocolError("AMI banner line too long, skipped"))
                return items
            self.banner = buffer[:newline].rstrip(b"\r").decode("utf-8", "replace")
            self._want_banner = False
            buffer = buffer[newline + 1:]
        crlf_end = buffer.rfind(b"\n\r\n")
        lf_end = buffer.rfind(b"\n\n")
        end = max(crlf_end + 3 if crlf_end >= 0 else 0, lf_end + 2 if lf_end >= 0 else 0)
        if end:
            self._buffer = buffer[end:]
            self._parse_complete(buffer[:end], items, lf_end >= 0)
        else:
            self._buffer = buffer
        if len(self._buffer) > self.max_message_size:
            items.append(RemoteProtocolError(
                f"AMI message longer than {self.max_message_size} bytes, skipped",
                self._buffer[:200].decode("utf-8", "replace")))
            self._discarding = True
            self._buffer = self._buffer[-2:]   # a blank line may straddle the next read
        return items

    def feed_eof(self) -> list[ParserItem]:
        """The peer closed: a half-received message is reported (and dropped)."""
        rest, self._buffer = self._buffer, b""
        self._discarding = False
        if rest.strip():
            return [RemoteProtocolError(
                f"AMI connection closed mid-message ({len(rest)} bytes dropped)",
                rest.decode("utf-8", "replace"))]
        return []

    # -- internals ---------------------------------------------------------------------
    def _skip_oversize(self, buffer: bytes, items: list) -> bytes:
        """Drop bytes up to the end of the over-size message; return what follows it."""
        ends = [i + n for i, n in ((buffer.find(b"\n\r\n"), 3), (buffer.find(b"\n\n"), 2)) if i >= 0]
        if not ends:
            self._buffer = buffer[-2:]   # a blank line may straddle the next read
            return b""
        self._discarding = False
        self._buffer = b""
        return buffer[min(ends):]

    def _parse_complete(self, complete: bytes, items: list, lf_only_seen: bool) -> None:
        text = complete.decode("utf-8", "replace")
        if lf_only_seen:   # some message ends with "\n\n": normalise the whole read
            text = text.replace("\r\n", "\n")
            blocks = text.split("\n\n")
            slow_only = True
        else:
            blocks = text.split("\r\n\r\n")
            slow_only = False
        limit = self.max_message_size if len(complete) > self.max_message_size else 0
        append = items.append
        for block in blocks:
            if not block:
                continue
            if limit and len(block) > limit:
                append(RemoteProtocolError(
                    f"AMI message longer than {limit} bytes, skipped", block[:200]))
                continue
            # Lazy fast path: a block that starts like Asterisk's own messages is
            # split into headers on first access (a bad line in it is dropped and
            # logged then); anything else is checked line by line right now.
            if not slow_only and block.startswith(_FAST_STARTS):
                append(_from_text(block))
                continue
            errors: list = []
            pairs = _split_headers_slowly(block, errors)
            items.extend(errors)
            if pairs:
                append(AmiMessage(pairs))


# -- encoding ---------------------------------------------------------------------------

def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check(kind: str, text: str) -> str:
    if "\r" in text or "\n" in text:
        raise LocalProtocolError(f"AMI {kind} {text[:40]!r} contains CR/LF (header injection refused)")
    return text


def encode_action(name: str, headers: Mapping[str, object] | Iterable[tuple[str, object]] = (),
                  action_id: str | None = None) -> bytes:
    """The wire bytes of one action: ``Action``, ``ActionID``, then ``headers`` in order.

    A list/tuple value repeats the header (``Variable=["A=1", "B=2"]``); ``None`` values
    are left out; booleans become ``true``/``false``. A CR or LF anywhere, or a header
    name with a colon, raises ``LocalProtocolError``: an untrusted value must never be
    able to end the action and start another one.
    """
    if not name or ":" in name:
        raise LocalProtocolError(f"invalid AMI action name {name!r}")
    lines = [f"Action: {_check('action name', name)}"]
    if action_id is not None:
        lines.append(f"ActionID: {_check('ActionID', _text(action_id))}")
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if not key or ":" in key or key != key.strip():
            raise LocalProtocolError(f"invalid AMI header name {key!r}")
        _check("header name", key)
        values = value if isinstance(value, (list, tuple)) else (value,)
        for item in values:
            if item is None:
                continue
            lines.append(f"{key}: {_check(f'value of {key}', _text(item))}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
