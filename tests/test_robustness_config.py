"""Robustness of the configuration (hotline/config.py, `hotline serve --check-config`)
against odd TOML and odd environment values.

The rule checked: a wrong key or value is a ``ConfigError`` (exit 2 from the CLI) naming
where it was set, never a traceback and never an accepted nonsense value; secrets never
appear in any message.
"""
from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from hotline.cli import main
from hotline.config import ConfigError, load_config

SECRET = "hunter2-Secret-771"


def _load(tmp_path, text: str, environ=None):
    path = tmp_path / "hotline.toml"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return load_config(str(path), environ=environ or {})


@pytest.mark.parametrize("text, where", [
    ("[ami]\nport = [5038]\n", ":2: 'ami.port' expected int"),
    ("[ami]\nport = true\n", ":2: 'ami.port' expected int"),
    ("[agi]\nlisten = 4573\n", ":2: 'agi.listen' expected str"),
    ("[agi]\nlisten = { host = 'x' }\n", ":2: 'agi.listen' expected str"),
    ("[ami.extra]\nx = 1\n", ": unknown key 'ami.extra'"),
    ("[[agi]]\nlisten = 'x'\n", ":1: 'agi' must be a table"),
    ("agi = 5\n", ":1: 'agi' must be a table"),
    ("\"ключ\" = 1\n", ": unknown section [ключ]"),
    ("[ami]\n\"секрет\" = \"x\"\n", ": unknown key 'ami.секрет'"),
    ("[log]\nlevel = 'verbose'\n", ":2: 'log.level' expected one of debug, info, warning, error"),
    ("[agi]\nlisten = 'a b:1'\n", ": 'agi.listen' expected host:port"),
    ("[agi]\nlisten = '127.0.0.1:99999'\n", ": 'agi.listen' expected host:port"),
    ("[ami]\nreconnect_initial = 10.0\nreconnect_max = 1.0\n", "'ami.reconnect_max' must not be smaller"),
    ("[agi]\ncommand_timeout = -1\n", ":2: 'agi.command_timeout' must be at least"),
    (b"\xff\xfe[agi]\x00\n", ":1:1: not valid TOML"),
    ("[agi\n", ":1:5: not valid TOML"),
])
def test_odd_toml_is_refused_with_file_and_line(tmp_path, text, where):
    """Arrays, tables, booleans where scalars go, unicode keys, binary: one clear problem
    naming hotline.toml and the line."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert "hotline.toml" in str(caught.value) or "reconnect" in where
    assert where in str(caught.value)


@pytest.mark.parametrize("name, value, where", [
    ("HOTLINE_AMI_PORT", "0x10", "environment HOTLINE_AMI_PORT: 'ami.port' expected int"),
    ("HOTLINE_AMI_PORT", "", "environment HOTLINE_AMI_PORT: 'ami.port' expected int"),
    ("HOTLINE_AGI_ENABLED", "maybe", "environment HOTLINE_AGI_ENABLED: 'agi.enabled' expected true or false"),
    ("HOTLINE_AMI_SECRT", "x", "environment HOTLINE_AMI_SECRT: unknown key 'ami.secrt' (did you mean 'secret'?)"),
    ("HOTLINE_AGI_LISTEN", "nowhere", "env HOTLINE_AGI_LISTEN: 'agi.listen' expected host:port"),
    ("HOTLINE_SERVICE_SHUTDOWN_GRACE", "-1", "'service.shutdown_grace' must be at least 0"),
])
def test_odd_environment_values_are_refused_naming_the_variable(tmp_path, name, value, where):
    """A bad HOTLINE_* value names the variable."""
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={name: value})
    assert where in str(caught.value)


def test_other_hotline_variables_are_left_alone():
    """HOTLINE_TEST_PG_URL, HOTLINE_FLOWS_DIR... are not config keys and are not judged."""
    config = load_config(None, environ={"HOTLINE_TEST_PG_URL": "x", "HOTLINE_FLOWS_DIR": "y",
                                        "HOTLINE_": "", "HOTLINE_X": "1"})
    assert config.agi.flows_dir == "flows"


@pytest.mark.parametrize("text", [f"[ami]\nsecret = {SECRET!r}\nport = 'x'\n",
                                  f"[db]\nurl = 'postgresql://u:{SECRET}@h/db'\npool_threads = 0\n"])
def test_a_secret_next_to_a_bad_value_is_not_shown(tmp_path, text):
    """Errors about other keys never print the secret."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("text", ["[ami]\nsecret = 7710042\n", "[ami]\nsecret = ['hunter2-Secret-771']\n",
                                  "[db]\nurl = ['postgresql://u:hunter2-Secret-771@h/db']\n"])
def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path, text):
    """`secret = 7710042` (quotes forgotten, a common slip with numeric passwords) is refused
    without printing the value."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert "7710042" not in str(caught.value) and SECRET not in str(caught.value)


@pytest.mark.parametrize("text", ["[agi]\ncommand_timeout = nan\n", "[service]\nshutdown_grace = inf\n",
                                  "[ami]\nping_interval = nan\n", "[agi]\nreload_interval = inf\n"])
def test_non_finite_numbers_are_refused_in_the_file(tmp_path, text):
    """TOML's nan and inf are not durations."""
    with pytest.raises(ConfigError):
        _load(tmp_path, text)


def test_non_finite_numbers_are_refused_from_the_environment():
    """`nan` from the environment is refused like any other bad number."""
    with pytest.raises(ConfigError):
        load_config(None, environ={"HOTLINE_AGI_COMMAND_TIMEOUT": "nan"})


def test_an_ami_port_above_65535_is_refused(tmp_path):
    """A TCP port is at most 65535."""
    with pytest.raises(ConfigError):
        _load(tmp_path, "[ami]\nport = 99999\nsecret = 'x'\n")


# ---------------------------------------------------------------- the CLI

def _check_config(tmp_path, monkeypatch, text, env=None):
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("HOTLINE_")]:
        monkeypatch.delenv(name)
    (tmp_path / "hotline.toml").write_text(text, encoding="utf-8")
    return CliRunner().invoke(main, ["serve", "--check-config", "--config", "hotline.toml"], env=env or {})


def test_check_config_with_a_bad_file_is_exit_2_with_hotline_lines(tmp_path, monkeypatch):
    """Every problem on its own `hotline:` line on stderr, exit 2, no traceback."""
    result = _check_config(tmp_path, monkeypatch, "[ami]\nsecrt = 'x'\nport = [1]\n[nope]\n")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 3 and all(line.startswith("hotline: hotline.toml:") for line in lines)


def test_check_config_prints_the_secret_masked(tmp_path, monkeypatch):
    """--check-config shows where values come from, never the secret itself."""
    result = _check_config(tmp_path, monkeypatch, "[agi]\nlisten = '127.0.0.1:4573'\n",
                           env={"HOTLINE_AMI_SECRET": SECRET,
                                "HOTLINE_DB_URL": f"postgresql://u:{SECRET}@db/hotline"})
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert 'secret = "********"  # env HOTLINE_AMI_SECRET' in result.output


def test_check_config_with_a_missing_file_is_one_line_exit_2(tmp_path, monkeypatch):
    """--config pointing nowhere: one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["serve", "--check-config", "--config", "missing.toml"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "hotline: missing.toml: cannot read config file: No such file or directory"
