"""Sans-I/O AMI codec: bytes in -> ``AmiMessage`` out, actions in -> bytes out.

It knows nothing of sockets or reactors (h11-style), so the Twisted protocol, the
simulator, the trace tests and the benchmark all share it. It is the hot path of the
CTI side (tens of thousands of events per second at peak), hence the shape: complete
messages are found with ``rfind`` over the new bytes, decoded once per read (per
64 KiB window of a bigger one) and split on ``"\\r\\n\\r\\n"`` with C-level string
methods; a message is a thin view over its text (kind and name read from the first
line, ``action_id`` searched for when asked) whose headers are split into a dict on
first access (most events a consumer ignores, e.g. ``VarSet``, never pay for it).
Input Asterisk should never send takes a slower path and is reported, never raised: a
block that does not start with ``Event:``/``Response:``/``Action:`` (e.g. a header-less
line), a message over the size limit or a connection closed mid-message is returned
from ``feed`` as a ``RemoteProtocolError`` item and skipped; a colon-less line inside
an otherwise normal message is dropped and logged (``ami.remote_protocol_error``) when
its headers are first read. LF-only line ends and invalid UTF-8 (U+FFFD) are accepted.
``feed`` never raises and never loses the messages that follow. Figures:
``bench/ami_ingest.py``.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
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

#: Reads longer than this are parsed in pieces of about this size (see ``feed``).
_WINDOW = 64 * 1024

_KINDS = {"event": "event", "response": "response", "action": "action"}
#: Blocks starting like this (Asterisk's own spelling) take the lazy fast path.
_FAST_STARTS = ("Event: ", "Response: ", "Action: ")


class AmiMessage(Mapping[str, str]):
    """One AMI message: headers in arrival order, case-insensitive lookup.

    ``kind`` is ``'event'``, ``'response'``, ``'action'`` or ``'other'`` after the first
    header; ``name`` is the event name, the response status (``Success``, ``Error``,
    ``Follows``, ``Goodbye``) or the action name; ``action_id`` the ``ActionID`` header.
    ``kind`` and ``name`` are read at parse time; ``action_id`` is looked up in the text
    when asked; the other headers are split out of the text on first access (most
    events a consumer ignores, e.g. ``VarSet``, never pay for it). Repeated
    headers (``Output``, ``Variable``, ``ChanVariable``) are all kept: ``get``/``[]`` give
    the first, ``getall`` every value. Lookups with Asterisk's own spelling
    (``"Uniqueid"``) are a dict hit; another case falls back to a lower-cased index
    built once, on demand.
    """

    # _text: the CRLF block a parsed message is a view of (None when built from pairs);
    # _index: header -> first value, None until the headers are split;
    # _pairs: every (header, value) in order, None when no header repeats (the
    # index, in insertion order, then says it all); _folded: lower-cased index.
    __slots__ = ("kind", "name", "_text", "_pairs", "_index", "_folded")

    def __init__(self, pairs: list) -> None:
        if not pairs:
            raise LocalProtocolError("an AMI message needs at least one header")
        self._text = None
        self._set_pairs(pairs)
        first_key, first_value = pairs[0]
        kind = _KINDS.get(first_key.lower(), "other")
        self.kind = kind
        self.name = first_value if kind != "other" else ""

    @classmethod
    def build(cls, headers: Mapping[str, object] | Iterable[tuple[str, object]]) -> "AmiMessage":
        """A message from Python values (tests, the simulator); values become ``str``."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        pairs: list = []
        for key, value in items:
            values = value if isinstance(value, (list, tuple)) else [value]
            pairs.extend((key, _text(v)) for v in values)
        return cls(pairs)

    @property
    def action_id(self) -> str | None:
        """The ``ActionID`` header, or None.

        Looked up when asked, not at parse time: only responses and the events that
        arrive while an action is pending need it, and searching every event's text for
        it cost ~10% of the lazy parse.
        """
        text = self._text
        if text is None:
            return self.get("ActionID")
        at = text.find("\r\nActionID: ")
        if at < 0:
            return None
        at += 12
        eol = text.find("\r\n", at)
        return text[at:eol] if eol >= 0 else text[at:]

    def _set_pairs(self, pairs: list) -> None:
        pairs = [(k, v) for k, v in pairs]
        index = dict(pairs)
        if len(index) != len(pairs):   # repeated headers: the first value wins
            index = dict(reversed(pairs))
            self._pairs = pairs
        else:
            self._pairs = None
        self._index = index
        self._folded = None

    def _materialise(self) -> None:
        """Split the text into headers: one dict built in C for a well-formed message."""
        text = self._text
        lines = text.split("\r\n")
        if text.count("\n") == len(lines) - 1:   # else a bare LF: the careful path
            try:
                # dict() over C-level map(): no Python loop, and no list per line that
                # outlives the call (fewer allocations for the GC to track). A line
                # without ": " splits into one item and makes dict() raise ValueError.
                index = dict(map(str.split, lines, _COLON_SPACE, _ONCE))
            except ValueError:
                pass
            else:
                self._folded = None
                if len(index) == len(lines):
                    self._index, self._pairs = index, None
                else:   # a repeated header (Output, ChanVariable): keep every pair
                    self._set_pairs([line.split(": ", 1) for line in lines])
                return
        # A line without ": " or a bare LF: the slow, careful path.
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
            # Built on the first miss (an absent header, or another spelling), in C:
            # pairs are inserted last to first so that the first value of a header wins.
            pairs = self._pairs
            if pairs is None:
                folded = dict(zip(map(str.lower, reversed(index)), reversed(index.values())))
            else:
                folded = {k.lower(): v for k, v in reversed(pairs)}
            self._folded = folded
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
        if self._index is None:
            self._materialise()
        pairs = self._pairs
        return list(self._index.items()) if pairs is None else list(pairs)

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


#: Endless argument streams for ``map(str.split, lines, _COLON_SPACE, _ONCE)`` in
#: ``_materialise`` (an ``itertools.repeat`` never runs out, so one pair serves every call).
_COLON_SPACE = repeat(": ")
_ONCE = repeat(1)
_new_object = object.__new__


def _lazy_message(text: str) -> AmiMessage:
    """A message over one CRLF block whose first line is ``Event: ``/``Response: ``/``Action: ``.

    Called once per message on the hot path, so it does the least it can: four slot
    stores, one ``find`` for the end of the first line, no ``__init__`` call.
    """
    message = _new_object(AmiMessage)
    message._text = text
    message._index = None
    eol = text.find("\r\n")
    if eol < 0:
        eol = len(text)
    first = text[0]
    if first == "E":
        message.kind, message.name = "event", text[7:eol]
    elif first == "R":
        message.kind, message.name = "response", text[10:eol]
    else:
        message.kind, message.name = "action", text[8:eol]
    return message


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
        # An LF-only message may end after the last CRLF one: only the tail can hold
        # its blank line (an LF-only one further back is looked for in the decoded text,
        # where the search is faster).
        lf_end = buffer.rfind(b"\n\n", crlf_end + 1 if crlf_end >= 0 else 0)
        end = max(crlf_end + 3 if crlf_end >= 0 else 0, lf_end + 2 if lf_end >= 0 else 0)
        if end:
            self._buffer = buffer[end:]
            # memoryview slices: decoded without first copying the read. A big read
            # (a reader that fell behind) is parsed a window at a time, cut on blank
            # lines: its text, blocks and messages then stay in the CPU cache (a
            # 256 KiB read parsed whole ran ~20% slower per message than 64 KiB ones).
            view, start = memoryview(buffer), 0
            while end - start > _WINDOW:
                cut = buffer.rfind(b"\r\n\r\n", start, start + _WINDOW)
                if cut < 0:   # one message longer than a window: the rest at once
                    break
                self._parse_complete(view[start:cut + 4], items, False)
                start = cut + 4
            self._parse_complete(view[start:end], items, lf_end >= 0)
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

    def _parse_complete(self, complete: bytes | memoryview, items: list,
                        lf_only_seen: bool) -> None:
        """Parse whole messages; ``lf_only_seen``: the last one is known to end in "\\n\\n"."""
        text = str(complete, "utf-8", "replace")
        # rfind, not ``in``: on this text (a "\n" every few dozen characters) CPython's
        # reverse search is about twice as fast as its forward one.
        lf_only_seen = lf_only_seen or text.rfind("\n\n") >= 0
        if lf_only_seen or len(complete) > self.max_message_size:
            self._parse_carefully(text, items, lf_only_seen)
            return
        # The hot loop (one pass per read of ~64 KiB): a block that starts like
        # Asterisk's own messages becomes a lazy message, split into headers on first
        # access (a bad line in it is dropped and logged then); anything else,
        # including the empty block after the last blank line, is checked line by line
        # right now.
        append = items.append
        for block in text.split("\r\n\r\n"):
            if block.startswith("Event: "):
                # _lazy_message inlined for the ~99% of messages that are events: the
                # call was ~15% of the per-message cost.
                message = _new_object(AmiMessage)
                message._text = block
                message._index = None
                message.kind = "event"
                eol = block.find("\r\n")
                message.name = block[7:eol] if eol >= 0 else block[7:]
                append(message)
            elif block.startswith(_FAST_STARTS):
                append(_lazy_message(block))
            elif block:
                _parse_slowly(block, items)

    def _parse_carefully(self, text: str, items: list, lf_only_seen: bool) -> None:
        """The rare reads: an LF-only message in them, or one that may be over the limit."""
        if lf_only_seen:   # some message ends with "\n\n": normalise the whole read
            blocks = text.replace("\r\n", "\n").split("\n\n")
        else:
            blocks = text.split("\r\n\r\n")
        limit = self.max_message_size
        for block in blocks:
            if len(block) > limit:
                items.append(RemoteProtocolError(
                    f"AMI message longer than {limit} bytes, skipped", block[:200]))
            elif not lf_only_seen and block.startswith(_FAST_STARTS):
                items.append(_lazy_message(block))
            elif block:
                _parse_slowly(block, items)


def _parse_slowly(block: str, items: list) -> None:
    """Check a block line by line now: its bad lines, then its message, go to ``items``."""
    errors: list = []
    pairs = _split_headers_slowly(block, errors)
    items.extend(errors)
    if pairs:
        items.append(AmiMessage(pairs))


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
