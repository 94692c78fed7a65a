"""``hotline prompts``: render the flows' text-to-speech prompts before callers need them.

``hotline prompts build`` after every flow edit (cached prompts are skipped, so it is
cheap to re-run); ``hotline prompts say`` to hear how a text will sound.
"""
from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import click

EXIT_FAILED = 1     # some prompts failed, or no speech engine
EXIT_USAGE = 2


def _prompt_settings(config_path: str | None) -> dict:
    """The [prompts] section of hotline.toml (+ HOTLINE_PROMPTS_* from the environment)."""
    import os

    from hotline.config import ConfigError, load_config, parse_voices
    if config_path is None and os.path.exists("hotline.toml"):
        config_path = "hotline.toml"
    try:
        config = load_config(config_path, overrides={"ami.enabled": False})
    except ConfigError as exc:
        for line in str(exc).splitlines():
            click.echo(f"hotline: {line}", err=True)
        sys.exit(2)
    section = dict(config.values["prompts"])
    section["voices"] = parse_voices(section["voices"])
    return section


def _voices(options: tuple[str, ...], base: dict[str, str] | None = None) -> dict[str, str]:
    from ivr.prompts import DEFAULT_VOICES, parse_voice_options
    try:
        return parse_voice_options(options, base if base is not None else DEFAULT_VOICES)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--voice") from None


def _engine_missing(exc: Exception) -> None:
    from ivr.prompts import TtsUnavailable
    click.echo(f"hotline prompts: no speech engine ({exc}); {TtsUnavailable.hint}", err=True)
    sys.exit(EXIT_FAILED)


def _load_flows(flows_dir: Path) -> tuple[list, list[str]]:
    """Every flow in ``flows_dir`` that loads cleanly, and one line per refused file."""
    try:
        importlib.import_module("ivr.steps")   # registers the step types
    except ModuleNotFoundError as exc:
        if exc.name != "ivr.steps":
            raise
        click.echo("hotline prompts: the step types (ivr.steps) are not installed", err=True)
        sys.exit(EXIT_USAGE)
    from ivr.library import FlowLibrary
    quiet = logging.getLogger("hotline.prompts.flows")   # refusals are printed below, once
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    library = FlowLibrary(flows_dir, log=quiet)
    flows = [library.get(name) for name in library.names()]
    refused = [str(p) for p in library.problems if p.severity == "error"]
    return flows, refused


class _LazySynthesizer:
    """The default speech engine, created on the first text to render, then reused."""

    name = "default"

    def __init__(self):
        self._synth = None

    def synthesize(self, text: str, voice: str):
        from ivr.prompts import default_synthesizer
        if self._synth is None:
            self._synth = default_synthesizer()
        return self._synth.synthesize(text, voice)


@click.group()
def prompts() -> None:
    """Build text-to-speech prompts ahead of time."""


@prompts.command("build")
@click.argument("flows_dir", required=False, default="flows",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="HOTLINE_CONFIG",
              help="hotline.toml whose [prompts] voices/sounds_prefix/sounds_dir to use "
                   "[default: ./hotline.toml when it exists]; `hotline serve` reads the same")
@click.option("--sounds", "sounds_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="where prompt files go (default [prompts] sounds_dir, var/sounds; Asterisk must "
                   "see it as <astdatadir>/sounds/<prefix>, e.g. through a symlink)")
@click.option("--voice", "voice_options", multiple=True, metavar="LANG=VOICE",
              help="espeak-ng voice per language, e.g. --voice zh=sit/cmn (repeatable; over "
                   "[prompts] voices — set them there so `hotline serve` plays the same files)")
@click.option("--prefix", default=None,
              help="prompt names as Asterisk sees them (default [prompts] sounds_prefix, hotline)")
@click.option("--system/--no-system", default=True,
              help="also render the dialplan's own prompts (hotline/system/...)")
def build(flows_dir: Path, config_path: str | None, sounds_dir: Path | None,
          voice_options: tuple[str, ...], prefix: str | None, system: bool) -> None:
    """Render every static prompt text of the flows in FLOWS_DIR (default: flows)."""
    from ivr.prompts import (
        DEFAULT_SOUNDS_DIR,
        TtsUnavailable,
        build_prompts,
        build_system_prompts,
    )
    settings = _prompt_settings(config_path)
    voices = _voices(voice_options, settings["voices"])
    prefix = prefix or settings["sounds_prefix"]
    if not flows_dir.is_dir():
        raise click.BadParameter(f"no such directory: {flows_dir}", param_hint="FLOWS_DIR")
    sounds = sounds_dir or Path(settings["sounds_dir"] or DEFAULT_SOUNDS_DIR)
    flows, refused = _load_flows(flows_dir)
    for line in refused:
        click.echo(line, err=True)
    try:
        synth = _LazySynthesizer()      # started only if something must be rendered
        report = build_prompts(flows, sounds, voices, prefix=prefix, synthesizer=synth)
        if system:
            extra = build_system_prompts(sounds, voices, synthesizer=synth)
            report.rendered += extra.rendered
            report.cached += extra.cached
            report.failed += extra.failed
            report.seconds += extra.seconds
    except TtsUnavailable as exc:
        _engine_missing(exc)
    for prompt, reason in report.failed:
        click.echo(f"{prompt.where}: [{prompt.language}] {prompt.text[:60]!r}: {reason}", err=True)
    click.echo(f"{len(flows)} flows: {report.summary()} -> {sounds}")
    if refused:
        click.echo(f"hotline prompts: flows with errors were skipped: run `hotline flows check {flows_dir}`",
                   err=True)
    if report.failed or refused:
        sys.exit(EXIT_FAILED)


@prompts.command("say")
@click.argument("text")
@click.option("--lang", "language", default="en", show_default=True, help="language of the text")
@click.option("--voice", "voice", default=None, help="espeak-ng voice (default: the language's voice)")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="WAV file to write (8 kHz mono, as Asterisk plays it)")
def say(text: str, language: str, voice: str | None, output: Path) -> None:
    """Render TEXT to a WAV file, exactly as a flow prompt would sound."""
    from ivr.prompts import (
        DEFAULT_VOICES,
        TtsError,
        TtsUnavailable,
        default_synthesizer,
        render_to_file,
    )
    chosen = voice or DEFAULT_VOICES.get(language)
    if not chosen:
        raise click.BadParameter(f"no default voice for '{language}': pass --voice", param_hint="--lang")
    try:
        duration = render_to_file(text, chosen, output, default_synthesizer())
    except TtsUnavailable as exc:
        _engine_missing(exc)
    except TtsError as exc:
        click.echo(f"hotline prompts say: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"{output}: {duration:.2f} s, voice {chosen}")
