"""Typed AMI actions: the call-control vocabulary of Hotline, one documented method each.

Each method builds the headers Asterisk 22 expects (shapes checked against the
recordings in ``asterisk-traces/ami_actions``), sends them through an ``AmiClient``
(or anything with the same ``send_action``) and returns a Deferred. Values are
validated by the encoder: a CR or LF in any value (an agent-typed number, a
caller-supplied name) raises ``LocalProtocolError`` instead of injecting an action.
``Response: Error`` replies fail the Deferred with ``AmiActionError``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from twisted.internet import defer

from .parser import AmiMessage
from .protocol import ActionResult

__all__ = ["AmiActions", "OriginateResult", "SPY_MODES"]

#: ChanSpy option letters per supervisor mode: q = no beep/announcement,
#: w = whisper (talk to the agent only), B = barge (talk to both), E = leave when the
#: spied-on channel hangs up.
SPY_MODES = {"listen": "q", "whisper": "qw", "barge": "qB"}


@dataclass(frozen=True)
class OriginateResult:
    """Outcome of an ``Async: true`` Originate, from its ``OriginateResponse`` event.

    ``reason`` is Asterisk's dial outcome (4 = answered, 0 = failed/no such
    destination, 5 = busy, 3 = no answer, 8 = congestion); ``uniqueid`` is None when
    Asterisk says ``<unknown>`` (no channel was created).
    """

    success: bool
    reason: int
    channel: str
    uniqueid: str | None
    event: AmiMessage

    @classmethod
    def from_result(cls, result: ActionResult) -> "OriginateResult":
        event = next(e for e in reversed(result.events) if e.name == "OriginateResponse")
        uniqueid = event.get("Uniqueid")
        try:
            reason = int(event.get("Reason", "0"))
        except ValueError:
            reason = 0
        return cls(success=event.get("Response") == "Success", reason=reason,
                   channel=event.get("Channel", ""),
                   uniqueid=None if uniqueid in (None, "", "<unknown>") else uniqueid,
                   event=event)


def _without_none(pairs: list[tuple[str, object]]) -> list[tuple[str, object]]:
    return [(k, v) for k, v in pairs if v is not None]


def _items(result: ActionResult) -> list[AmiMessage]:
    return result.items


class AmiActions:
    """Call control over one ``AmiClient``: ``AmiActions(client).hangup(channel)``."""

    def __init__(self, client) -> None:
        self.client = client

    def _send(self, name: str, pairs: list[tuple[str, object]], **options) -> defer.Deferred:
        return self.client.send_action(name, _without_none(pairs), **options)

    # -- calls -----------------------------------------------------------------------
    def originate(self, channel: str, *, context: str | None = None, exten: str | None = None,
                  priority: int | str | None = None, application: str | None = None,
                  data: str | None = None, caller_id: str | None = None,
                  timeout_ms: int = 30000, variables: Mapping[str, object] | None = None,
                  account: str | None = None, channel_id: str | None = None) -> defer.Deferred:
        """Place a call (``Async: true``) -> Deferred[OriginateResult].

        Either ``context``/``exten``/``priority`` or ``application``/``data``. The
        Deferred fires when the ``OriginateResponse`` with our ActionID arrives (after
        the callee answers or the attempt fails), not at the "successfully queued"
        reply; a failed originate is a result with ``success=False``, not an error.
        """
        if (application is None) == (exten is None):
            raise ValueError("originate needs either exten (+context) or application")
        if exten is not None and priority is None:
            priority = 1
        pairs: list[tuple[str, object]] = [
            ("Channel", channel), ("Context", context), ("Exten", exten),
            ("Priority", priority), ("Application", application), ("Data", data),
            ("CallerID", caller_id), ("Timeout", timeout_ms), ("Account", account),
            ("ChannelId", channel_id), ("Async", True)]
        if variables:
            pairs.extend(("Variable", f"{name}={value}") for name, value in variables.items())
        wait = timeout_ms / 1000.0 + self.client.action_timeout
        d = self._send("Originate", pairs, completion_event="OriginateResponse", timeout=wait)
        return d.addCallback(OriginateResult.from_result)

    def redirect(self, channel: str, context: str, exten: str, priority: int | str = 1, *,
                 extra_channel: str | None = None) -> defer.Deferred:
        """Send ``channel`` (and optionally its bridged peer) to a dialplan location."""
        pairs: list[tuple[str, object]] = [("Channel", channel), ("Context", context),
                                           ("Exten", exten), ("Priority", priority)]
        if extra_channel is not None:
            pairs += [("ExtraChannel", extra_channel), ("ExtraContext", context),
                      ("ExtraExten", exten), ("ExtraPriority", priority)]
        return self._send("Redirect", pairs)

    def hangup(self, channel: str, cause: int | None = None) -> defer.Deferred:
        """Hang up a channel (``No such channel`` -> AmiActionError)."""
        return self._send("Hangup", [("Channel", channel), ("Cause", cause)])

    def blind_transfer(self, channel: str, exten: str, context: str) -> defer.Deferred:
        """Blind-transfer the party bridged to ``channel`` to ``exten@context``."""
        return self._send("BlindTransfer", [("Channel", channel), ("Exten", exten),
                                            ("Context", context)])

    def atxfer(self, channel: str, exten: str, context: str | None = None) -> defer.Deferred:
        """Start an attended transfer from ``channel`` (the transferer) to ``exten``."""
        return self._send("Atxfer", [("Channel", channel), ("Exten", exten), ("Context", context)])

    def play_dtmf(self, channel: str, digit: str, duration_ms: int | None = None,
                  receive: bool | None = None) -> defer.Deferred:
        """Play one DTMF digit on ``channel``.

        A long ``duration_ms`` holds this AMI session on Asterisk's side (replies and
        events wait) for the whole tone; we never block, but events are delayed.
        """
        if len(digit) != 1:
            raise ValueError("play_dtmf sends exactly one digit")
        return self._send("PlayDTMF", [("Channel", channel), ("Digit", digit),
                                       ("Duration", duration_ms), ("Receive", receive)])

    def chanspy(self, spy_channel: str, target: str, *, mode: str = "listen",
                caller_id: str | None = None, exit_with_target: bool = True,
                timeout_ms: int = 30000) -> defer.Deferred:
        """Ring a supervisor phone (``spy_channel``) into ``ChanSpy(target)``.

        ``mode``: ``listen`` (q), ``whisper`` (w, agent hears the supervisor) or
        ``barge`` (B, both parties hear). -> Deferred[OriginateResult].
        """
        if mode not in SPY_MODES:
            raise ValueError(f"unknown spy mode {mode!r}; use one of {sorted(SPY_MODES)}")
        if "," in target:
            raise ValueError("ChanSpy target must not contain ','")
        options = SPY_MODES[mode] + ("E" if exit_with_target else "")
        return self.originate(spy_channel, application="ChanSpy", data=f"{target},{options}",
                              caller_id=caller_id, timeout_ms=timeout_ms)

    # -- queues ----------------------------------------------------------------------
    def queue_pause(self, interface: str, paused: bool = True, *, queue: str | None = None,
                    reason: str | None = None) -> defer.Deferred:
        """Pause/unpause a member in one queue (or all its queues), with a reason."""
        return self._send("QueuePause", [("Interface", interface), ("Paused", paused),
                                         ("Queue", queue), ("Reason", reason)])

    def queue_add(self, queue: str, interface: str, *, penalty: int | None = None,
                  member_name: str | None = None, state_interface: str | None = None,
                  paused: bool | None = None) -> defer.Deferred:
        """Add a member (``Already there`` -> AmiActionError)."""
        return self._send("QueueAdd", [("Queue", queue), ("Interface", interface),
                                       ("Penalty", penalty), ("MemberName", member_name),
                                       ("StateInterface", state_interface), ("Paused", paused)])

    def queue_remove(self, queue: str, interface: str) -> defer.Deferred:
        """Remove a member (``Not there`` -> AmiActionError)."""
        return self._send("QueueRemove", [("Queue", queue), ("Interface", interface)])

    def queue_status(self, queue: str | None = None, member: str | None = None) -> defer.Deferred:
        """-> Deferred[ActionResult]; ``.items``: QueueParams/QueueMember/QueueEntry events.

        An unknown queue is a Success with an empty list.
        """
        return self._send("QueueStatus", [("Queue", queue), ("Member", member)])

    def queue_summary(self, queue: str | None = None) -> defer.Deferred:
        """-> Deferred[list of QueueSummary events]."""
        return self._send("QueueSummary", [("Queue", queue)]).addCallback(_items)

    # -- channels & variables ------------------------------------------------------------
    def core_show_channels(self) -> defer.Deferred:
        """-> Deferred[list of CoreShowChannel events] (every live channel)."""
        return self._send("CoreShowChannels", []).addCallback(_items)

    def status(self, channel: str | None = None) -> defer.Deferred:
        """-> Deferred[list of Status events] (one channel or all)."""
        return self._send("Status", [("Channel", channel)]).addCallback(_items)

    def getvar(self, variable: str, channel: str | None = None) -> defer.Deferred:
        """-> Deferred[str]: the value ('' when unset; Asterisk does not tell them apart)."""
        d = self._send("Getvar", [("Channel", channel), ("Variable", variable)])
        return d.addCallback(lambda result: result.get("Value", ""))

    def setvar(self, variable: str, value: object, channel: str | None = None) -> defer.Deferred:
        """Set a channel variable (or a global one without ``channel``)."""
        return self._send("Setvar", [("Channel", channel), ("Variable", variable),
                                     ("Value", value)])

    # -- system ----------------------------------------------------------------------
    def command(self, command: str) -> defer.Deferred:
        """Run a CLI command -> Deferred[list of output lines] (``Output:`` headers).

        An unknown CLI command fails with AmiActionError; its ``response`` still
        holds the ``Output:`` lines.
        """
        return self._send("Command", [("Command", command)]).addCallback(
            lambda result: result.response.getall("Output"))

    def ping(self) -> defer.Deferred:
        return self._send("Ping", [])

    def logoff(self) -> defer.Deferred:
        """Asterisk answers ``Response: Goodbye`` and closes the connection."""
        return self._send("Logoff", [])
