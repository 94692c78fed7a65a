"""The ``hotline`` command. Sub-commands live one per module in ``hotline.commands``
and are imported only when used, so ``hotline flows check`` starts fast and never
pays for Twisted or SQLAlchemy it does not need."""
from __future__ import annotations

import importlib

import click

# name -> (module, attribute, one-line help shown by `hotline --help`)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "flows": ("hotline.commands.flows", "flows", "Check and graph IVR flow files."),
    "simulate": ("hotline.commands.simulate", "simulate", "Run a flow in the terminal, as a caller would hear it."),
    "prompts": ("hotline.commands.prompts", "prompts", "Build text-to-speech prompts ahead of time."),
    "db": ("hotline.commands.db", "db", "Database schema (Alembic) and sample data."),
    "serve": ("hotline.commands.serve", "serve", "Run FastAGI + AMI tracker + metrics as one service."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hotline")
def main() -> None:
    """Hotline: an Asterisk IVR and CTI server."""


if __name__ == "__main__":  # pragma: no cover
    main()
