"""Classic AGI entry point: ``hotline-agi <flow> [args...]`` run by Asterisk, one process per call.

For sites that cannot open a FastAGI port: the dialplan runs ``AGI(hotline-agi,main)``
and Asterisk talks to this process over stdin/stdout. The call runs through the same
``CallDriver`` and engine as FastAGI, in a plain synchronous loop (send a line, read the
reply, feed it; service calls run inline). The price is a Python start-up (~100-300 ms
with imports) and a process (~40 MB) per concurrent call: prefer FastAGI beyond a few
calls at a time (see docs/agi.md).

pyst2's ``asterisk.agi.AGI`` reads the environment block and installs the SIGHUP handler
(Asterisk signals a classic script when the caller hangs up; the default action would kill
us before the outcome is written). Its reply reading is not used, because on Python 3 it
is broken for what we need: ``get_result`` raises on ``result=-1`` (a normal reply when a
caller hangs up mid-prompt), fails with ``ValueError`` on a bare ``HANGUP`` line, drops the
``(timeout)`` data of ``200 result= (timeout)`` and writes debug text to stderr on every
command. Replies go through ``ivr.agi.AgiConnection`` instead, like FastAGI's. Its
environment reader decodes strictly as UTF-8; we hand it lines decoded with replacement
so an odd byte in a caller name cannot crash the call.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from typing import Any, BinaryIO, Sequence

from ivr.agi import AgiConnection, AgiEnvironment, ConnectionClosed, RemoteProtocolError
from ivr.commands import AgiResult, CallerHangup, Exit, ServiceCall
from ivr.driver import CallDriver, SessionFactory, SessionSink, run_service_call

__all__ = ["run_call", "main"]

log = logging.getLogger(__name__)


class _TextLines:
    """What pyst2 reads the environment from: text lines, undecodable bytes replaced."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw

    def readline(self) -> str:
        return self.raw.readline().decode("utf-8", "replace")


def read_environment(stdin: BinaryIO) -> tuple[AgiEnvironment, Any]:
    """The env block via pyst2 (and its SIGHUP handler); returns (env, the pyst2 AGI object)."""
    from asterisk.agi import AGI
    agi = AGI(stdin=_TextLines(stdin), stdout=io.StringIO(), stderr=io.StringIO())
    return AgiEnvironment(agi.env), agi


def run_call(stdin: BinaryIO, stdout: BinaryIO, session_factory: SessionFactory, *,
             sink: SessionSink | None = None, services: Any = None, flow: str | None = None,
             args: Sequence[str] | None = None, fetch_linkedid: bool = True,
             fallback_queue: str = "operator") -> dict:
    """Run one call on a classic AGI channel; returns the ``ivr_sessions`` record (also saved).

    ``flow``/``args`` come from the script's argv (the request is just the script path).
    """
    env, agi = read_environment(stdin)
    if flow is not None:
        env.flow = flow
    if args is not None:
        env.args = list(args)
    conn = AgiConnection(environment=env)
    driver = CallDriver(env, session_factory, fetch_linkedid=fetch_linkedid,
                        fallback_queue=fallback_queue)
    if services is None:
        services = getattr(session_factory, "services", None)
    action = driver.start()
    while not isinstance(action, Exit):
        if isinstance(action, ServiceCall):
            action = driver.on_service_result(run_service_call(services, action))
            continue
        try:
            stdout.write(conn.send(action))
            stdout.flush()
        except (BrokenPipeError, OSError, ValueError):
            action = driver.on_channel_gone("caller_hangup")
            continue
        action = _await_reply(stdin, conn, driver, agi)
    record = driver.record()
    if sink is not None:
        try:
            sink.save(record)
        except Exception:
            log.exception("cannot store IVR session", extra={"fields": {
                "event": "ivr_session_save_error", "session": record["id"]}})
    return record


def _await_reply(stdin: BinaryIO, conn: AgiConnection, driver: CallDriver, agi: Any) -> Any:
    while True:
        try:
            line = stdin.readline()
        except OSError:
            line = b""
        conn.receive_data(line)
        for event in conn.events():
            if isinstance(event, AgiResult):
                if getattr(agi, "_got_sighup", False):   # Asterisk's SIGHUP = the caller hung up
                    driver.on_hangup_line()
                return driver.on_reply(event)
            if isinstance(event, CallerHangup):
                driver.on_hangup_line()
            elif isinstance(event, RemoteProtocolError):
                log.warning("bad line from Asterisk", extra={"fields": {
                    "event": "agi_remote_protocol_error", "error": str(event), "fatal": event.fatal}})
            elif isinstance(event, ConnectionClosed):
                return driver.on_channel_gone("caller_hangup")


def _build(flows_dir: str, db_url: str | None) -> tuple[SessionFactory, SessionSink | None, Any]:
    import ivr.steps  # noqa: F401  (registers every step type)
    from ivr.driver import DatabaseSink, FlowLibrarySessionFactory
    from ivr.library import FlowLibrary
    services: Any = None
    sink: SessionSink | None = None
    if db_url:
        from db.database import Database
        from db.ivr_services import DatabaseServices
        database = Database(db_url, pool_threads=1)
        services = DatabaseServices(database)
        sink = DatabaseSink(database, sync=True)
    else:   # no database: the demo customers, records only logged (a lab setup)
        from ivr.memory_services import InMemoryServices
        services = InMemoryServices()
    return FlowLibrarySessionFactory(FlowLibrary(flows_dir), services), sink, services


def main(argv: Sequence[str] | None = None) -> int:
    """``hotline-agi <flow> [args...]`` (flows from ``--flows`` or ``HOTLINE_FLOWS_DIR``;
    database from ``HOTLINE_DB_URL``, else in-memory demo customers and records only logged)."""
    parser = argparse.ArgumentParser(prog="hotline-agi", description=__doc__.splitlines()[0])
    parser.add_argument("flow", help="name of the flow file (flows/<flow>.yaml)")
    parser.add_argument("args", nargs="*", help="passed to the flow as arg_1..arg_N")
    parser.add_argument("--flows", default=os.environ.get("HOTLINE_FLOWS_DIR", "flows"),
                        help="directory of flow files [HOTLINE_FLOWS_DIR or ./flows]")
    parser.add_argument("--no-linkedid", action="store_true",
                        help="do not ask Asterisk for CHANNEL(linkedid) at start")
    options = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="hotline-agi %(levelname)s %(message)s")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        factory, sink, services = _build(options.flows, os.environ.get("HOTLINE_DB_URL") or None)
    except Exception as exc:   # e.g. database unreachable: still never dead air
        log.error("cannot set up, sending the caller to the operator: %s", exc)
        factory, sink, services = _broken_factory, None, None
    record = run_call(stdin, stdout, factory, sink=sink, services=services, flow=options.flow,
                      args=options.args, fetch_linkedid=not options.no_linkedid)
    if sink is None:
        log.warning("ivr session not stored (no HOTLINE_DB_URL): id=%s flow=%s outcome=%s steps=%s",
                    record["id"], record["flow"], record["outcome"], ",".join(record["steps"]))
    return 0


def _broken_factory(env: AgiEnvironment) -> Any:
    raise RuntimeError("hotline-agi could not start (see the error above)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
