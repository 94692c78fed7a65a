"""``hotline serve``: run the core next to Asterisk with one command and one config file."""
from __future__ import annotations

import io
import os
import sys
from typing import TextIO

import click

from hotline.config import ConfigError, load_config


def _fail(message: str, code: int) -> None:
    for line in message.splitlines():
        click.echo(f"hotline: {line}", err=True)
    sys.exit(code)


class _StartupLog(io.TextIOBase):
    """The log stream while the service starts: held back, then written out once it runs.

    A start that fails is told in one ``hotline: ...`` line; the info lines of the parts
    that came up before the failure (schema upgraded, flows loaded) would bury it, so
    they are dropped (kept with ``--log-level debug``).
    """

    def __init__(self, out: TextIO):
        super().__init__()
        self.out = out
        self.held: list[str] | None = []

    def write(self, text: str) -> int:
        if self.held is None:
            written = self.out.write(text)
            return len(text) if written is None else written
        self.held.append(text)
        return len(text)

    def flush(self) -> None:
        if self.held is None:
            self.out.flush()

    def release(self) -> None:
        held, self.held = self.held or [], None
        self.out.write("".join(held))
        self.out.flush()

    def discard(self) -> None:
        self.held = None


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              envvar="HOTLINE_CONFIG",
              help="TOML config file [default: ./hotline.toml when it exists].")
@click.option("--agi", "agi_listen", metavar="HOST:PORT", help="FastAGI listen address (turns AGI on).")
@click.option("--http", "http_listen", metavar="HOST:PORT", help="/metrics and /healthz listen address.")
@click.option("--flows", "flows_dir", type=click.Path(file_okay=False), help="Flows directory.")
@click.option("--no-agi", is_flag=True, help="Do not run the FastAGI server.")
@click.option("--no-ami", is_flag=True, help="Do not connect to AMI (no call tracking).")
@click.option("--no-http", is_flag=True, help="Do not serve /metrics and /healthz.")
@click.option("--auto-migrate", is_flag=True, help="Upgrade the database schema at start.")
@click.option("--log-format", type=click.Choice(["kv", "json"]), help="Log line format.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--check-config", is_flag=True,
              help="Validate the config, print it (secrets masked) and exit.")
def serve(config_path, agi_listen, http_listen, flows_dir, no_agi, no_ami, no_http,
          auto_migrate, log_format, log_level, check_config) -> None:
    """Run FastAGI + the AMI call tracker + /metrics as one service.

    Every config key can come from the environment as HOTLINE_<SECTION>_<KEY>
    (HOTLINE_AMI_SECRET, HOTLINE_DB_URL, ...). SIGTERM/SIGINT stop gracefully.
    """
    if config_path is None and os.path.exists("hotline.toml"):
        config_path = "hotline.toml"
    overrides: dict[str, object] = {}
    for flag, key, value in ((agi_listen, "agi.listen", agi_listen), (agi_listen, "agi.enabled", True),
                             (http_listen, "http.listen", http_listen), (flows_dir, "agi.flows_dir", flows_dir),
                             (no_agi, "agi.enabled", False), (no_ami, "ami.enabled", False),
                             (no_http, "http.enabled", False), (auto_migrate, "db.auto_migrate", True),
                             (log_format, "log.format", log_format), (log_level, "log.level", log_level)):
        if flag:
            overrides[key] = value
    try:
        config = load_config(config_path, overrides=overrides)
    except ConfigError as exc:
        _fail(str(exc), 2)
        return
    if check_config:
        click.echo(f"# effective configuration ({config_path or 'no file: defaults and environment'})")
        for note in config.notes:
            click.echo(f"# note: {note}")
        click.echo(config.to_toml())
        return

    from twisted.internet import reactor

    from hotline.logs import setup_logging
    from hotline.service import HotlineService, StartupError

    startup_log = _StartupLog(sys.stderr)
    setup_logging(config.log.level, config.log.format, out=startup_log)
    import logging
    for note in config.notes:
        logging.getLogger("hotline.serve").warning(note)
    service = HotlineService(config, reactor)
    try:
        service.start()
    except StartupError as exc:
        if config.log.level == "debug":
            startup_log.release()
        else:
            startup_log.discard()
        _fail(str(exc), 1)
        return
    except BaseException:
        startup_log.release()
        raise
    startup_log.release()
    reactor.addSystemEventTrigger("before", "shutdown", service.stop)
    reactor.run()
