"""hotline.toml: defaults, file values, environment overrides, errors with file:line."""
import pytest

from hotline.config import ConfigError, load_config, parse_listen

ENV = {"HOTLINE_AMI_SECRET": "s3cret"}


def write(tmp_path, text):
    path = tmp_path / "hotline.toml"
    path.write_text(text)
    return str(path)


def test_defaults_need_only_the_ami_secret():
    """With no file, the defaults plus an AMI secret from the environment are a valid config."""
    config = load_config(None, environ=ENV)
    assert config.agi.listen == "127.0.0.1:4573"
    assert config.ami.secret == "s3cret"
    assert config.db_url() == "sqlite:///var/hotline.db"


def test_file_values_override_defaults(tmp_path):
    """Values from the TOML file win over defaults, with their types."""
    path = write(tmp_path, '[ami]\nhost = "pbx.local"\nport = 5039\n[agi]\ncommand_timeout = 5\n')
    config = load_config(path, environ=ENV)
    assert (config.ami.host, config.ami.port) == ("pbx.local", 5039)
    assert config.agi.command_timeout == 5.0


def test_environment_overrides_the_file(tmp_path):
    """HOTLINE_<SECTION>_<KEY> beats the file and is converted to the key's type."""
    path = write(tmp_path, '[ami]\nport = 5039\n')
    config = load_config(path, environ={**ENV, "HOTLINE_AMI_PORT": "6000",
                                        "HOTLINE_DB_URL": "postgresql+psycopg://h/db"})
    assert config.ami.port == 6000
    assert config.db_url() == "postgresql+psycopg://h/db"
    assert config.origins["ami.port"] == "env HOTLINE_AMI_PORT"


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    """A misspelt key is refused with file:line and a did-you-mean."""
    path = write(tmp_path, '[ami]\nhost = "x"\nsecrt = "y"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=ENV)
    assert f"{path}:3: unknown key 'ami.secrt' (did you mean 'secret'?)" in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path):
    """All wrong keys and values are listed, not just the first."""
    path = write(tmp_path, '[agi]\nlisten = "nowhere"\n[ami]\nport = "abc"\n[dbb]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=ENV)
    lines = str(err.value).splitlines()
    assert f"{path}:4: 'ami.port' expected int, got str 'abc'" in lines
    assert f"{path}:5: unknown section [dbb] (did you mean 'db'?)" in lines
    assert any(line.startswith(f"{path}:2: 'agi.listen' expected host:port") for line in lines)


def test_toml_syntax_error_points_at_line_and_column(tmp_path):
    """Broken TOML is one message with file:line:col, never a traceback."""
    path = write(tmp_path, '[ami]\nhost = "x\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=ENV)
    assert str(err.value).startswith(f"{path}:2:")


def test_bad_environment_value_names_the_variable():
    """A bad value from the environment names the variable it came from."""
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={**ENV, "HOTLINE_AMI_ENABLED": "maybe"})
    assert "environment HOTLINE_AMI_ENABLED: 'ami.enabled' expected true or false" in str(err.value)


def test_missing_ami_secret_turns_ami_off_with_a_note():
    """With no secret and nobody asking for AMI, the service runs without it and says why."""
    config = load_config(None, environ={})
    assert config.ami.enabled is False
    assert any("HOTLINE_AMI_SECRET" in note for note in config.notes)


def test_ami_asked_for_without_secret_is_an_error(tmp_path):
    """[ami] enabled = true with an empty secret names the line and the variable to set."""
    path = write(tmp_path, "[ami]\nenabled = true\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value).startswith(f"{path}:2: 'ami.enabled' is on but 'ami.secret' is empty")
    assert "HOTLINE_AMI_SECRET" in str(err.value)


def test_ami_secret_not_needed_when_ami_is_off():
    """--no-ami (an override) lifts the need for a secret."""
    config = load_config(None, environ={}, overrides={"ami.enabled": False})
    assert config.ami.enabled is False


def test_redacted_config_hides_secrets():
    """The printable config masks the AMI secret and the DB password."""
    config = load_config(None, environ={**ENV, "HOTLINE_DB_URL": "postgresql+psycopg://u:pw@h/db"})
    text = config.to_toml()
    assert "s3cret" not in text and ":pw@" not in text
    assert 'secret = "********"  # env HOTLINE_AMI_SECRET' in text


@pytest.mark.parametrize("value,expected", [
    ("127.0.0.1:4573", ("127.0.0.1", 4573)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("[::1]:8080", ("::1", 8080)),
])
def test_listen_addresses_parse(value, expected):
    """host:port listen addresses, IPv6 in brackets."""
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["4573", "host:", "host:99999", "a b:1"])
def test_bad_listen_addresses_are_refused(value):
    """Anything but host:port is refused with a hint."""
    with pytest.raises(ValueError, match="host:port"):
        parse_listen(value)


def test_example_config_documents_every_key_and_loads():
    """hotline.example.toml names every key (secrets commented out) and is a valid config."""
    from pathlib import Path

    from hotline.config import SCHEMA
    path = Path(__file__).resolve().parents[1] / "hotline.example.toml"
    text = path.read_text()
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"{key} = " in text, f"{section}.{key} missing from the example"
    config = load_config(str(path), environ=ENV)
    assert config.agi.listen == "127.0.0.1:4573"


def test_default_prompt_voices_are_the_ones_prompts_are_built_with():
    """[prompts] voices defaults to the builder's voices: serve and prompts build name the same files."""
    from hotline.config import parse_voices
    from ivr.prompts import DEFAULT_VOICES
    assert parse_voices(load_config(None, environ=ENV).prompts.voices) == dict(DEFAULT_VOICES)


def test_bad_voice_list_is_refused_with_its_origin():
    """A malformed voices value names where it came from and the expected shape."""
    with pytest.raises(ConfigError, match="env HOTLINE_PROMPTS_VOICES: 'prompts.voices' expected LANG=VOICE"):
        load_config(None, environ={**ENV, "HOTLINE_PROMPTS_VOICES": "en"})
