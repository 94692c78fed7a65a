"""``hotline.toml``: one file configures the whole service, the environment overrides it.

Every key has a type, a default and a one-line doc in ``SCHEMA``; a wrong key or value is
a ``ConfigError`` naming the key and its ``file:line`` with a did-you-mean. Any key can be
set from the environment as ``HOTLINE_<SECTION>_<KEY>`` (``HOTLINE_AMI_SECRET``,
``HOTLINE_DB_URL``), which is where secrets belong. Secrets never leave this module in
clear: ``Config.redacted()`` masks them, and the logging setup never sees them.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "Config", "SCHEMA", "load_config", "parse_listen", "parse_voices", "SECRET_KEYS"]


@dataclass(frozen=True)
class Setting:
    type: type
    default: Any
    doc: str
    secret: bool = False
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None


SCHEMA: dict[str, dict[str, Setting]] = {
    "agi": {
        "enabled": Setting(bool, True, "run the FastAGI server"),
        "listen": Setting(str, "127.0.0.1:4573", "FastAGI listen address host:port"),
        "flows_dir": Setting(str, "flows", "directory of flow YAML files"),
        "command_timeout": Setting(float, 30.0, "seconds to wait for Asterisk's reply to a quick AGI command", minimum=0.1),
        "playback_timeout": Setting(float, 300.0, "seconds a prompt (STREAM FILE, SAY *) may play before Asterisk counts as gone", minimum=1),
        "exec_timeout": Setting(float, 0.0, "seconds an EXEC (Queue, Dial, VoiceMail) may run; 0 = no limit", minimum=0),
        "reload_interval": Setting(float, 2.0, "seconds between checks for edited flow files (0 = off)", minimum=0),
    },
    "ami": {
        "enabled": Setting(bool, True, "connect to the Asterisk Manager Interface"),
        "host": Setting(str, "127.0.0.1", "Asterisk host"),
        "port": Setting(int, 5038, "AMI port", minimum=1, maximum=65535),
        "username": Setting(str, "hotline", "manager.conf user"),
        "secret": Setting(str, "", "manager.conf secret (set HOTLINE_AMI_SECRET)", secret=True),
        "auth": Setting(str, "md5", "login method", choices=("md5", "plain")),
        "events": Setting(str, "on", "Events: header sent at login (on, off, or a class list)"),
        "ping_interval": Setting(float, 20.0, "seconds between keep-alive Pings", minimum=1),
        "action_timeout": Setting(float, 10.0, "seconds before an AMI action fails", minimum=0.1),
        "reconnect_initial": Setting(float, 1.0, "first reconnect delay, seconds", minimum=0.01),
        "reconnect_max": Setting(float, 60.0, "longest reconnect delay, seconds", minimum=0.1),
    },
    "db": {
        "url": Setting(str, "", "SQLAlchemy URL; empty = SQLite in data_dir (set HOTLINE_DB_URL)", secret=True),
        "auto_migrate": Setting(bool, False, "run pending migrations at start instead of refusing"),
        "pool_threads": Setting(int, 4, "threads for database work off the reactor", minimum=1),
    },
    "prompts": {
        "voices": Setting(str, "en=gmw/en-us,zh=sit/cmn",
                          "espeak-ng voice per language, LANG=VOICE[,LANG=VOICE]; names the prompt files"),
        "sounds_prefix": Setting(str, "hotline", "prompt names as Asterisk sees them (<astdatadir>/sounds/<prefix>)"),
        "sounds_dir": Setting(str, "var/sounds", "where `hotline prompts build` writes prompt files"),
    },
    "http": {
        "enabled": Setting(bool, True, "serve /metrics and /healthz"),
        "listen": Setting(str, "127.0.0.1:8080", "HTTP listen address host:port"),
    },
    "service": {
        "data_dir": Setting(str, "var", "where the default SQLite database and runtime files live"),
        "shutdown_grace": Setting(float, 30.0, "seconds calls in progress get to finish on SIGTERM", minimum=0),
    },
    "log": {
        "level": Setting(str, "info", "log level", choices=("debug", "info", "warning", "error")),
        "format": Setting(str, "kv", "one key=value line per event, or JSON", choices=("kv", "json")),
    },
}

SECRET_KEYS = frozenset(f"{s}.{k}" for s, keys in SCHEMA.items() for k, v in keys.items() if v.secret)
_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[^:\s]+):(?P<port>\d{1,5})$")


class ConfigError(Exception):
    """The configuration is wrong; the message names the key and where it was set."""


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:4573"`` -> ``("127.0.0.1", 4573)``; raises ValueError with a hint."""
    m = _LISTEN.match(value.strip())
    if not m or not (0 <= int(m.group("port")) <= 65535):
        raise ValueError(f"expected host:port such as 127.0.0.1:4573, got {value!r}")
    return m.group("host").strip("[]"), int(m.group("port"))


def parse_voices(text: str) -> dict[str, str]:
    """``"en=gmw/en-us,zh=sit/cmn"`` -> ``{"en": "gmw/en-us", "zh": "sit/cmn"}``."""
    voices: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        language, sep, voice = item.partition("=")
        if not sep or not language.strip() or not voice.strip():
            raise ValueError(f"expected LANG=VOICE items such as en=gmw/en-us, got {item!r}")
        voices[language.strip()] = voice.strip()
    if not voices:
        raise ValueError("needs at least one LANG=VOICE item")
    return voices


@dataclass
class Config:
    """The effective configuration: ``config.ami.secret`` style access by section."""

    values: dict[str, dict[str, Any]]
    source: str | None = None
    origins: dict[str, str] = field(default_factory=dict)  # "ami.secret" -> "env HOTLINE_AMI_SECRET"
    notes: list[str] = field(default_factory=list)         # things worth a warning at start

    def __getattr__(self, section: str) -> Any:
        try:
            return _Section(self.values[section])
        except KeyError:
            raise AttributeError(section) from None

    def db_url(self) -> str:
        return self.values["db"]["url"] or "sqlite:///" + os.path.join(
            self.values["service"]["data_dir"], "hotline.db")

    def redacted(self) -> dict[str, dict[str, Any]]:
        """The values with secrets masked: safe to print or log."""
        out: dict[str, dict[str, Any]] = {}
        for section, keys in self.values.items():
            out[section] = {}
            for key, value in keys.items():
                if f"{section}.{key}" in SECRET_KEYS and value:
                    value = _mask_url(value) if key == "url" else "********"
                out[section][key] = value
        return out

    def to_toml(self) -> str:
        """The redacted effective config as TOML, with where each value came from."""
        lines = []
        for section, keys in self.redacted().items():
            lines.append(f"[{section}]")
            for key, value in keys.items():
                origin = self.origins.get(f"{section}.{key}", "default")
                lines.append(f"{key} = {_toml_value(value)}  # {origin}")
            lines.append("")
        return "\n".join(lines)


class _Section:
    def __init__(self, values: Mapping[str, Any]):
        self._values = values

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None


def _mask_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1********@", url)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key_lines(text: str) -> dict[str, int]:
    """Map ``section.key`` (and ``section``) to the line where the file sets it.

    tomllib keeps no positions; our config is flat tables of scalars, so a line scan
    is exact enough to point an admin at the right line.
    """
    where: dict[str, int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            section = header.group(1)
            where.setdefault(section, number)
            continue
        key = re.match(r"^([A-Za-z0-9_-]+)\s*=", stripped)
        if key:
            where.setdefault(f"{section}.{key.group(1)}" if section else key.group(1), number)
    return where


def _did_you_mean(name: str, candidates) -> str:
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _coerce(setting: Setting, value: Any, *, from_env: bool) -> Any:
    """``value`` checked against ``setting``; a ValueError says what is wrong.

    The message of a secret setting never contains its value (a numeric password
    written without quotes must not end up in a log or a terminal scroll-back).
    """
    def shown(text: Any) -> str:
        return "" if setting.secret else f", got {text!r}"

    if from_env and setting.type is not str:
        text = str(value).strip()
        if setting.type is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false{shown(text)}")
        try:
            value = setting.type(text)
        except ValueError:
            raise ValueError(f"expected {setting.type.__name__}{shown(text)}") from None
    if setting.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, setting.type) or (setting.type is int and isinstance(value, bool)):
        if setting.secret:
            hint = " (put it in quotes)" if setting.type is str and isinstance(value, (int, float)) else ""
            raise ValueError(f"expected {_TYPE_WORDS.get(setting.type, setting.type.__name__)}, "
                             f"not {type(value).__name__}{hint}")
        raise ValueError(f"expected {setting.type.__name__}, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    if setting.choices and value not in setting.choices:
        raise ValueError(f"expected one of {', '.join(setting.choices)}{shown(value)}"
                         + ("" if setting.secret else _did_you_mean(str(value), setting.choices)))
    if setting.minimum is not None and value < setting.minimum:
        raise ValueError(f"must be at least {setting.minimum}{shown(value)}")
    if setting.maximum is not None and value > setting.maximum:
        raise ValueError(f"must be at most {setting.maximum}{shown(value)}")
    return value


_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then ``HOTLINE_*`` environment variables,
    then command-line ``overrides`` (``{"ami.enabled": False}``).

    Raises ``ConfigError`` listing every problem, each with file:line when it came from
    the file and with the variable name when it came from the environment.
    """
    environ = os.environ if environ is None else environ
    values = {s: {k: v.default for k, v in keys.items()} for s, keys in SCHEMA.items()}
    origins: dict[str, str] = {}
    problems: list[str] = []

    def assign(section: str, key: str, value: Any, *, from_env: bool, origin: str, where: str) -> None:
        """Set one key from one source, or note the problem with where it was set."""
        try:
            values[section][key] = _coerce(SCHEMA[section][key], value, from_env=from_env)
            origins[f"{section}.{key}"] = origin
        except ValueError as exc:
            problems.append(f"{where}: '{section}.{key}' {exc}")

    if path is not None:
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
        text = raw.decode("utf-8", errors="replace")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            where = f"{path}:{m.group(1)}:{m.group(2)}" if m else path
            reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            raise ConfigError(f"{where}: not valid TOML: {reason}") from None
        lines = _key_lines(text)
        for section, keys in data.items():
            at = f"{path}:{lines.get(section, 1)}"
            if section not in SCHEMA:
                problems.append(f"{at}: unknown section [{section}]{_did_you_mean(section, SCHEMA)}")
                continue
            if not isinstance(keys, dict):
                problems.append(f"{at}: '{section}' must be a table [{section}]")
                continue
            for key, value in keys.items():
                at = f"{path}:{lines.get(f'{section}.{key}', lines.get(section, 1))}"
                if key not in SCHEMA[section]:
                    problems.append(f"{at}: unknown key '{section}.{key}'"
                                    f"{_did_you_mean(key, SCHEMA[section])}")
                    continue
                assign(section, key, value, from_env=False, origin=at, where=at)

    for name, value in environ.items():
        if not name.startswith("HOTLINE_"):
            continue
        rest = name[len("HOTLINE_"):].lower()
        section, _, key = rest.partition("_")
        if section not in SCHEMA or key not in SCHEMA[section]:
            # Only names that look like config keys are ours to judge; others
            # (HOTLINE_TEST_PG_URL, HOTLINE_FLOWS_DIR for hotline-agi) are left alone.
            if section in SCHEMA:
                problems.append(f"environment {name}: unknown key '{section}.{key}'"
                                f"{_did_you_mean(key, SCHEMA[section])}")
            continue
        assign(section, key, value, from_env=True, origin=f"env {name}", where=f"environment {name}")

    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        assign(section, key, value, from_env=isinstance(value, str), origin="command line",
               where="command line")

    for section, key in (("agi", "listen"), ("http", "listen")):
        try:
            parse_listen(values[section][key])
        except ValueError as exc:
            problems.append(f"{origins.get(f'{section}.{key}', 'default')}: '{section}.{key}' {exc}")
    try:
        parse_voices(values["prompts"]["voices"])
    except ValueError as exc:
        problems.append(f"{origins.get('prompts.voices', 'default')}: 'prompts.voices' {exc}")
    if values["ami"]["reconnect_max"] < values["ami"]["reconnect_initial"]:
        problems.append("'ami.reconnect_max' must not be smaller than 'ami.reconnect_initial'")
    notes: list[str] = []
    if values["ami"]["enabled"] and not values["ami"]["secret"]:
        if "ami.enabled" in origins:
            problems.append(f"{origins['ami.enabled']}: 'ami.enabled' is on but 'ami.secret' is "
                            "empty: set HOTLINE_AMI_SECRET (or [ami] secret), or use --no-ami")
        else:
            # Nobody asked for AMI explicitly: run the rest, and say why AMI is off.
            values["ami"]["enabled"] = False
            origins["ami.enabled"] = "off: no secret"
            notes.append("AMI client off: 'ami.secret' is empty (set HOTLINE_AMI_SECRET "
                         "to track calls)")
    if problems:
        raise ConfigError("\n".join(problems))
    return Config(values=values, source=path, origins=origins, notes=notes)
