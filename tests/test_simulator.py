"""``hotline simulate`` and the simulated Asterisk behind it (ivr.simulator)."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hotline.cli import main
from ivr.commands import AgiResult, GetData, StreamFile, WaitForDigit
from ivr.simulator import (
    FakeAsterisk, Heard, PromptCatalogue, ScriptedCaller, parse_digit_groups, parse_now,
)

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "flows" / "main.yaml")
OPEN = "2026-11-24T10:00"   # naive: Asia/Shanghai, the time zone of the flow's hours step


def simulate(*args: str):
    return CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)


# ------------------------------------------------------------------ the command

def test_scripted_call_shows_the_path_and_masks_the_pin():
    """A scripted VIP call prints the prompts, the path to the vip queue and a masked PIN."""
    result = simulate(MAIN, "--now", OPEN, "--digits", "1,100001#,1234#,0")
    assert result.exit_code == 0, result.output
    out = result.output
    assert '🔊 "Please enter your PIN, followed by the hash key."' in out
    assert "📞 Queue vip (priority 10)" in out
    assert "auth → load_account → main_menu → agent_by_tier → vip_queue" in out
    assert "auth: pin = ••••" in out
    assert "outcome: queued → vip" in out
    assert "1234#" not in out.split("⌨️  pressed 1234#")[-1]   # typed once, never shown again
    assert "pin = 1234" not in out


def test_money_and_dates_are_shown_as_the_caller_hears_them():
    """Numbers and dates said by Asterisk are shown as such."""
    out = simulate(MAIN, "--now", OPEN, "--digits", "1,100001#,1234#,2").output
    assert "🔢 says number 200" in out
    assert "📅 says date 2026-11-20" in out


def test_running_out_of_digits_times_out_then_hangs_up():
    """With no terminal and no digits left, inputs time out and the caller hangs up: it never blocks."""
    result = simulate(MAIN, "--now", OPEN, "--digits", "1", "--max-timeouts", "2")
    assert result.exit_code == 0
    assert result.output.count("⌛ no key (timeout)") == 2
    assert "📴 caller hangs up" in result.output
    assert "outcome: caller_hangup" in result.output


def test_h_hangs_up_at_once():
    """A digit group 'h' is the caller hanging up."""
    result = simulate(MAIN, "--now", OPEN, "--digits", "1,h")
    assert "outcome: caller_hangup (at step auth)" in result.output


def test_queue_result_timeout_leads_to_the_callback_offer():
    """--queue-result timeout: nobody answers, the flow offers a callback."""
    result = simulate(MAIN, "--now", OPEN, "--digits", "1,100002#,2345#,0,1", "--queue-result", "timeout")
    assert "⏳ left the queue without an agent (TIMEOUT)" in result.output
    assert "outcome: callback → regular" in result.output


def test_answered_queue_runs_the_survey():
    """By default the agent answers; the survey answers are shown as inputs."""
    out = simulate(MAIN, "--now", OPEN, "--digits", "1,100001#,1234#,0,5,4").output
    assert "🎧 an agent answers" in out
    assert "survey_questions: survey_agent_satisfaction = 5" in out


def test_lang_option_starts_in_chinese():
    """--lang zh is passed as ?lang=zh: the flow skips its language menu."""
    out = simulate(MAIN, "--now", OPEN, "--lang", "zh", "--digits", "h").output
    assert "感谢您致电示例电信" in out
    assert "For English, press 1" not in out


def test_now_decides_opening_hours():
    """--now on a Sunday reaches the out-of-hours menu."""
    out = simulate(MAIN, "--now", "2026-11-29T11:00", "--digits", "1,1").output
    assert "outcome: voicemail → 1000@default" in out


def test_customers_file_replaces_the_demo_customers(tmp_path):
    """--customers loads your own customers (JSON or YAML)."""
    path = tmp_path / "customers.json"
    path.write_text(json.dumps([{"account": "555000", "pin": "9876", "name": "Zoe", "tier": "key"}]))
    out = simulate(MAIN, "--now", OPEN, "--customers", str(path), "--digits", "1,555000#,9876#,0").output
    assert "📞 Queue key (priority 5)" in out


def test_flow_by_name_from_the_project_directory(monkeypatch):
    """``hotline simulate main`` finds flows/main.yaml."""
    monkeypatch.chdir(ROOT)
    result = simulate("main", "--now", OPEN, "--digits", "h")
    assert result.exit_code == 0
    assert "calls main (flows/main.yaml" in result.output


def test_bad_digits_are_a_usage_error():
    """A key that is not on a phone is refused before the call starts."""
    result = simulate(MAIN, "--digits", "1,x")
    assert result.exit_code == 2
    assert "digit group 'x'" in result.output


def test_bad_time_is_a_usage_error():
    """An unreadable --now says how to write it."""
    result = simulate(MAIN, "--now", "tuesday")
    assert result.exit_code == 2
    assert "2026-11-24T10:00" in result.output


def test_broken_flow_prints_its_problems(tmp_path):
    """A flow with errors is not run; its problems are printed with file:line."""
    (tmp_path / "bad.yaml").write_text("steps:\n  a:\n    type: say\n    promt: hi\n")
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 1
    assert "bad.yaml:4:5" in result.stderr


def test_help_lists_the_demo_accounts():
    """--help documents the demo accounts and PINs."""
    out = simulate("--help").output
    assert "100001 / PIN 1234" in out and "vip" in out


# ------------------------------------------------------------------ the simulated Asterisk

def _asterisk() -> FakeAsterisk:
    return FakeAsterisk(PromptCatalogue([]))


def test_get_data_stops_at_hash_and_keeps_no_terminator():
    """GET DATA returns the keys before '#', like Asterisk."""
    result = _asterisk().keys(GetData("x", 5000, 16), "100001#")
    assert result == AgiResult(200, "100001")


def test_get_data_without_hash_times_out_with_what_was_typed():
    """Keys with no '#' below max_digits end by timeout: ``result=12 (timeout)``."""
    result = _asterisk().keys(GetData("x", 5000, 16), "12")
    assert (result.result, result.data) == ("12", "timeout")


def test_keys_beyond_max_digits_are_typed_ahead():
    """Keys past max_digits stay buffered and answer the next input, as in Asterisk."""
    asterisk = _asterisk()
    assert asterisk.keys(GetData("x", 5000, 1), "12").result == "1"
    assert asterisk.keys(WaitForDigit(5000), "").digit == "2"


def test_wait_for_digit_reads_one_key():
    """WAIT FOR DIGIT answers the ASCII code of the first key; no key is result=0."""
    asterisk = _asterisk()
    assert asterisk.keys(WaitForDigit(5000), "5").result == str(ord("5"))
    assert asterisk.keys(WaitForDigit(5000), "").result == "0"


def test_prompts_are_only_interrupted_by_keys_typed_ahead():
    """STREAM FILE with escape digits plays to the end unless a key is already typed."""
    asterisk = _asterisk()
    assert asterisk.answer(StreamFile("beep", "0123")).digit is None
    asterisk.typeahead = "3"
    assert asterisk.answer(StreamFile("beep", "0123")).digit == "3"


def test_catalogue_names_tts_files_and_sounds():
    """TTS prompt names map back to their text; stock sounds and recordings are named."""
    from ivr.prompt_refs import tts_prompt_name
    catalogue = PromptCatalogue([])
    catalogue.add_text("Hello there.", "en", "gmw/en-us")
    assert catalogue.describe(tts_prompt_name("Hello there.", "gmw/en-us", "en")) == Heard("text", "Hello there.")
    assert catalogue.describe("beep") == Heard("sound", "beep")
    assert catalogue.describe("hotline/welcome") == Heard("file", "welcome")


def test_digit_groups_and_times_parse():
    """--digits keeps empty groups as timeouts; --now without offset uses the given zone."""
    assert parse_digit_groups("1,,100001#,h") == ["1", "", "100001#", "h"]
    assert parse_now("2026-11-24T10:00", "Asia/Shanghai") == parse_now("2026-11-24T02:00+00:00")


def test_scripted_caller_hangs_up_after_its_timeouts():
    """After the script: max_timeouts timeouts, then a hangup."""
    caller = ScriptedCaller(groups=["1"], max_timeouts=2)
    assert [caller.next_input() for _ in range(4)] == ["1", "", "", "h"]


def test_masked_collect_is_shown_as_dots(tmp_path):
    """A ``mask: true`` value is •••• in the inputs and the variables printed."""
    (tmp_path / "card.yaml").write_text(
        "steps:\n"
        "  card:\n    type: collect\n    var: card_number\n    prompt: Your card number.\n"
        "    mask: true\n    next: bye\n"
        "  bye:\n    type: hangup\n")
    out = simulate(str(tmp_path / "card.yaml"), "--digits", "4111222233334444#").output
    assert "card: card_number = ••••" in out
    assert "card_number = ••••" in out.split("📋 variables:")[1]
    assert "4111222233334444" not in out.split("⌨️  pressed 4111222233334444#")[1]
