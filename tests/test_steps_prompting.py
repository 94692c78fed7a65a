"""The say and hangup steps: what the caller hears, in which language, and how values are said."""
from __future__ import annotations

from datetime import datetime, timezone

from engine_helpers import HANGUP, Phone, make_flow, make_step
from ivr.commands import Hangup, Outcome, SayDate, SayDigits, SayNumber, StreamFile
from ivr.engine import ALL_KEYS
from ivr.flow import STEP_TYPES
from ivr.prompt_refs import tts_prompt_name

EN_VOICE = "gmw/en-us"
ZH_VOICE = "sit/cmn"


def say(**params):
    return make_flow({"s": {"type": "say", **params}})


def played(phone):
    return [c for c in phone.commands if isinstance(c, (StreamFile, SayNumber, SayDigits, SayDate))]


def test_say_plays_a_recorded_file_under_the_sounds_prefix():
    """{file: welcome} plays hotline/welcome."""
    phone = Phone(say(prompt={"file": "welcome"}))
    phone.run()
    assert played(phone) == [StreamFile("hotline/welcome", "")]


def test_say_plays_a_stock_sound_as_named():
    """{sound: beep} plays Asterisk's own beep."""
    phone = Phone(say(prompt={"sound": "beep"}))
    phone.run()
    assert played(phone) == [StreamFile("beep", "")]


def test_say_text_plays_the_prebuilt_tts_file():
    """A text prompt plays hotline/tts/<hash of text, voice, language>."""
    phone = Phone(say(prompt="Welcome to Example Telecom."))
    phone.run()
    assert played(phone) == [StreamFile(tts_prompt_name("Welcome to Example Telecom.", EN_VOICE, "en"), "")]


def test_per_language_prompt_follows_the_session_language():
    """After a language step chose zh, {en:..., zh:...} plays the zh text with the zh voice."""
    flow = make_flow({"lang": {"type": "language", "set": "zh", "next": "s"},
                      "s": {"type": "say", "prompt": {"en": "Hello.", "zh": "你好。"}}})
    phone = Phone(flow)
    phone.run()
    assert played(phone) == [StreamFile(tts_prompt_name("你好。", ZH_VOICE, "zh"), "")]


def test_per_language_prompt_without_the_language_falls_back_to_the_flow_language():
    """A language missing from the mapping falls back to the flow's language."""
    flow = make_flow({"lang": {"type": "language", "set": "fr", "next": "s"},
                      "s": {"type": "say", "prompt": {"zh": "你好。", "en": "Hello."}}})
    phone = Phone(flow)
    phone.run()
    assert played(phone) == [StreamFile(tts_prompt_name("Hello.", EN_VOICE, "en"), "")]


def test_text_with_variables_says_the_values_between_static_pieces():
    """'Your ticket ${ref} ...' plays the static TTS pieces and says the digits in between."""
    flow = make_flow({"s": {"type": "say", "prompt": "Your ticket ${ref} is ready, ${n} items."}},
                     variables={"ref": "000123", "n": 3})
    phone = Phone(flow)
    phone.run()
    assert played(phone) == [
        StreamFile(tts_prompt_name("Your ticket", EN_VOICE, "en"), ""),
        SayDigits("000123", ""),
        StreamFile(tts_prompt_name("is ready,", EN_VOICE, "en"), ""),
        SayNumber(3, ""),
        StreamFile(tts_prompt_name("items.", EN_VOICE, "en"), ""),
    ]


def test_say_digits_keeps_only_phone_keys():
    """digits: ${caller_id} is said digit by digit."""
    phone = Phone(say(digits="${caller_id}"))
    phone.run()
    assert played(phone) == [SayDigits("13800000001", "")]


def test_say_number():
    """number: 42 is SAY NUMBER 42."""
    phone = Phone(say(number="42"))
    phone.run()
    assert played(phone) == [SayNumber(42, "")]


def test_say_money_in_dollars_says_units_and_cents():
    """money: 12345 (cents) in English is 123 dollars 45 cents, with the stock words."""
    phone = Phone(say(money="12345"))
    phone.run()
    assert played(phone) == [SayNumber(123, ""), StreamFile("dollars", ""), SayNumber(45, ""),
                             StreamFile("cents", "")]


def test_say_money_in_chinese_defaults_to_yuan():
    """In zh the currency defaults to yuan, said with the 元 and 分 prompts."""
    flow = make_flow({"lang": {"type": "language", "set": "zh", "next": "s"},
                      "s": {"type": "say", "money": "${amount}"}}, variables={"amount": 205})
    phone = Phone(flow)
    phone.run()
    assert played(phone) == [SayNumber(2, ""), StreamFile(tts_prompt_name("元", ZH_VOICE, "zh"), ""),
                             SayNumber(5, ""), StreamFile(tts_prompt_name("分", ZH_VOICE, "zh"), "")]


def test_say_money_without_cents_and_negative_amounts():
    """-1200 cents is minus 12 dollars, with no cents part."""
    phone = Phone(say(money="-1200"))
    phone.run()
    assert played(phone) == [SayNumber(-12, ""), StreamFile("dollars", "")]


def test_say_date_says_the_written_day_at_noon_utc():
    """date: 2026-11-24 (or a date-time from the database) is SAY DATE of that day at 12:00 UTC."""
    noon = int(datetime(2026, 11, 24, 12, tzinfo=timezone.utc).timestamp())
    for written in ("2026-11-24", "2026-11-24T23:30:00+08:00"):
        phone = Phone(say(date=written))
        phone.run()
        assert played(phone) == [SayDate(noon, "")]


def test_say_date_from_epoch_seconds_is_said_as_given():
    """date: 1795388889 goes to SAY DATE unchanged."""
    phone = Phone(say(date="1795388889"))
    phone.run()
    assert played(phone) == [SayDate(1795388889, "")]


def test_say_of_an_empty_value_says_nothing():
    """A variable that is none (no payment yet) says nothing instead of failing."""
    flow = make_flow({"s": {"type": "say", "money": "${last}"}}, variables={"last": None})
    phone = Phone(flow)
    assert phone.run().kind == "completed"
    assert played(phone) == []


def test_say_of_a_non_number_is_a_flow_error():
    """number: abc cannot be said: the error path takes over."""
    phone = Phone(say(number="abc"))
    outcome = phone.run()
    assert outcome.kind == "error" and "number" in outcome.detail


def test_interruptible_say_stops_at_a_key():
    """interruptible: true passes every key as escape digits; a key stops the rest."""
    phone = Phone(say(money="12345", interruptible=True), inputs=["5"])
    phone.run()
    assert played(phone) == [SayNumber(123, ALL_KEYS)]


def test_caller_hangup_during_say():
    """A hangup while the prompt plays ends the session at the say step."""
    phone = Phone(say(prompt={"sound": "long"}), inputs=[HANGUP])
    assert phone.run() == Outcome("caller_hangup", step="s")
    assert not phone.of_type(Hangup)


def test_say_check_wants_exactly_one_thing_to_say():
    """A say step with two (or no) things to say is refused by its check."""
    step_type = STEP_TYPES["say"]
    assert step_type.check(make_step("s", {"type": "say", "number": "1"})) == []
    problems = step_type.check(make_step("s", {"type": "say", "number": "1", "digits": "2"}))
    assert len(problems) == 1 and "exactly one" in problems[0].message
    assert step_type.check(make_step("s", {"type": "say"}))


def test_hangup_step_plays_its_prompt_then_hangs_up():
    """hangup: prompt first, then HOTLINE_OUTCOME completed and HANGUP."""
    phone = Phone(make_flow({"bye": {"type": "hangup", "prompt": {"sound": "goodbye"}}}))
    assert phone.run() == Outcome("completed", step="bye")
    assert phone.lines()[-4:-1] == ['STREAM FILE goodbye ""', 'SET VARIABLE HOTLINE_OUTCOME "completed"',
                                    "HANGUP"]


def test_hangup_step_without_prompt_hangs_up_at_once():
    """A bare hangup step sends no playback."""
    phone = Phone(make_flow({"bye": {"type": "hangup"}}))
    phone.run()
    assert not played(phone)
