"""Structured logs: one line per event, ``key=value`` or JSON, from stdlib and Twisted alike.

Parts of Hotline log through ``logging.getLogger(__name__)`` (pure modules) or
``twisted.logger.Logger`` (adapters); both end up here so an admin greps one format.
Give details as ``extra={"fields": {...}}`` (stdlib) or as keyword arguments (Twisted).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Callable, TextIO

from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, formatEvent,
    globalLogBeginner,
)

_TWISTED_LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info,
                   "warning": LogLevel.warn, "error": LogLevel.error}
_RESERVED_TWISTED = {"log_logger", "log_level", "log_namespace", "log_source", "log_format",
                     "log_time", "log_failure", "log_text", "log_io", "log_system",
                     "log_trace", "log_flattened", "format", "message", "isError",
                     "system", "time", "why", "failure", "log_legacy", "log_beginner"}


def format_line(fields: dict[str, Any], fmt: str) -> str:
    """Render one event as ``k=v k2="v 2"`` or a JSON object."""
    if fmt == "json":
        return json.dumps(fields, default=str, ensure_ascii=False)
    parts = []
    for key, value in fields.items():
        text = "" if value is None else str(value)
        if not text or any(c in text for c in ' "=\n\t'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _timestamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


class LineFormatter(logging.Formatter):
    def __init__(self, fmt: str = "kv"):
        super().__init__()
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return format_line(fields, self.fmt)


def twisted_observer(fmt: str, out: TextIO) -> Callable[[dict], None]:
    def observe(event: dict) -> None:
        level = event.get("log_level", LogLevel.info)
        fields: dict[str, Any] = {
            "ts": _timestamp(event.get("log_time", time.time())),
            "level": "warning" if level is LogLevel.warn else getattr(level, "name", "info"),
            "logger": event.get("log_namespace", "twisted"),
            "msg": formatEvent(event) or "",
        }
        for key, value in event.items():
            if key not in _RESERVED_TWISTED and not key.startswith("log_") and key not in fields:
                fields[key] = value
        failure = event.get("log_failure")
        if failure is not None:
            fields["error"] = f"{failure.type.__name__}: {failure.getErrorMessage()}"
        out.write(format_line(fields, fmt) + "\n")
        out.flush()
    return observe


def setup_logging(level: str = "info", fmt: str = "kv", out: TextIO | None = None) -> None:
    """Route stdlib logging and Twisted's logger to one structured stream (stderr)."""
    out = out or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(LineFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic narrates every migration plugin at INFO; the one line that matters is ours.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    predicate = LogLevelFilterPredicate(defaultLogLevel=_TWISTED_LEVELS[level])
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(twisted_observer(fmt, out), [predicate])],
        redirectStandardIO=False, discardBuffer=True)
