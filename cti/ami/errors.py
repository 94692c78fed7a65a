"""Every AMI failure is one of these, and its class says whose fault it is.

``RemoteProtocolError`` — Asterisk (or whatever sits on port 5038) sent something we
cannot read: it is reported, logged and skipped; the stream goes on.
``LocalProtocolError`` — our own code tried to send something illegal (a CR/LF inside a
header value would inject a second action): it raises at once, loudly.
The ``Ami*`` errors are what an action's Deferred fails with.
"""
from __future__ import annotations

__all__ = [
    "AmiError", "RemoteProtocolError", "LocalProtocolError", "AmiActionError",
    "AmiActionTimeout", "AmiConnectionLost", "AmiAuthError", "AmiNotConnected",
]


class AmiError(Exception):
    """Base of every AMI error."""


class RemoteProtocolError(AmiError):
    """The peer sent bytes that are not valid AMI (peer's fault; skipped, never raised by the parser).

    ``data`` holds (a prefix of) the offending text so a log line can show it.
    """

    def __init__(self, message: str, data: str = "") -> None:
        super().__init__(message)
        self.data = data[:200]

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and self.args == other.args  # type: ignore[attr-defined]
                and self.data == other.data)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.args, self.data))


class LocalProtocolError(AmiError, ValueError):
    """Our code asked to send something that is not valid AMI (our fault; raised)."""


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error``; ``response`` is the whole reply."""

    def __init__(self, action: str, message: str, response: object = None) -> None:
        super().__init__(f"AMI {action} failed: {message}")
        self.action = action
        self.message = message
        self.response = response


class AmiAuthError(AmiActionError):
    """Login refused (wrong user/secret/key): fix the credentials in the config."""


class AmiActionTimeout(AmiError):
    """No (complete) reply to an action in time; names the action and its ActionID."""

    def __init__(self, action: str, action_id: str, timeout: float) -> None:
        super().__init__(f"AMI {action} (ActionID {action_id}) got no reply within {timeout:g} s")
        self.action = action
        self.action_id = action_id
        self.timeout = timeout


class AmiConnectionLost(AmiError):
    """The AMI connection closed before the action's reply arrived."""


class AmiNotConnected(AmiError):
    """An action was sent while no logged-in AMI connection exists."""
