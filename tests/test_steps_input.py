"""The menu, collect and language steps: keys, wrong keys, timeouts, retries, hangups."""
from __future__ import annotations

from engine_helpers import HANGUP, TIMEOUT, Phone, make_flow, make_step
from ivr.commands import Exec, GetData, Outcome, SetVariable, StreamFile, WaitForDigit
from ivr.engine import MASK
from ivr.flow import STEP_TYPES

ENDS = {
    "one": {"type": "hangup", "prompt": {"sound": "one"}},
    "two": {"type": "hangup", "prompt": {"sound": "two"}},
    "gave_up": {"type": "hangup", "prompt": {"sound": "gave-up"}},
    "sorry": {"type": "say", "prompt": {"sound": "sorry"}, "next": "m"},
}


def menu(**params):
    base = {"type": "menu", "prompt": {"sound": "menu"}, "choices": {1: "one", 2: "two"}, "retries": 3}
    return make_flow({"m": {**base, **params}, **ENDS}, start="m")


def sounds(phone):
    return [c.filename for c in phone.commands if isinstance(c, StreamFile)]


# ---------------------------------------------------------------- menu

def test_menu_key_during_the_prompt_picks_the_choice():
    """A valid key interrupts the prompt (escape digits = the choices) and leads to its step."""
    phone = Phone(menu(), inputs=["2"])
    assert phone.run() == Outcome("completed", step="two")
    assert phone.commands[2] == StreamFile("menu", "12")
    assert phone.session.variables["menu_choice"] == "2"
    assert phone.session.inputs == [{"step": "m", "var": "menu_choice", "value": "2"}]


def test_menu_waits_for_a_key_after_the_prompt():
    """With no key during the prompt, WAIT FOR DIGIT <timeout ms> reads one."""
    phone = Phone(menu(timeout=4), inputs=[">1"])     # ">": typed once the prompt has ended
    assert phone.run().step == "one"
    assert WaitForDigit(4000) in phone.commands


def test_menu_wrong_key_plays_the_invalid_prompt_and_asks_again():
    """A key not in choices: {sound: invalid}, then the menu again."""
    phone = Phone(menu(), inputs=["9", "1"])
    assert phone.run().step == "one"
    assert sounds(phone)[:3] == ["menu", "invalid", "menu"]


def test_menu_timeout_plays_the_timeout_prompt_and_asks_again():
    """No key: timeout_prompt (if any), then the menu again; no invalid prompt."""
    phone = Phone(menu(timeout_prompt={"sound": "still-there"}), inputs=[TIMEOUT, "1"])
    assert phone.run().step == "one"
    assert sounds(phone)[:3] == ["menu", "still-there", "menu"]


def test_menu_on_invalid_and_on_timeout_go_to_their_steps():
    """on_invalid / on_timeout replace the replay with a jump."""
    phone = Phone(menu(on_invalid="two"), inputs=["7"])
    assert phone.run().step == "two"
    phone = Phone(menu(on_timeout="two"), inputs=[TIMEOUT])
    assert phone.run().step == "two"


def test_menu_retries_exhausted_goes_to_on_exhausted():
    """After `retries` wrong keys or timeouts the menu goes to on_exhausted."""
    phone = Phone(menu(retries=2, on_exhausted="gave_up"), inputs=["9", TIMEOUT])
    assert phone.run().step == "gave_up"
    assert sounds(phone).count("menu") == 2


def test_menu_retries_exhausted_without_on_exhausted_is_the_error_fallback():
    """No on_exhausted: the caller goes to the operator (outcome error)."""
    phone = Phone(menu(retries=1), inputs=[TIMEOUT])
    outcome = phone.run()
    assert outcome.kind == "error" and "no valid choice" in outcome.detail
    assert Exec("Queue", "operator,t") in phone.commands


def test_menu_tries_count_across_an_on_invalid_loop():
    """Going round through on_invalid back to the menu still runs out of tries."""
    phone = Phone(menu(retries=2, on_invalid="sorry", on_exhausted="gave_up"), inputs=["9", "8", "1"])
    assert phone.run().step == "gave_up"
    assert [e["step"] for e in phone.session.trace] == ["m", "sorry", "m", "gave_up"]


def test_menu_valid_choice_resets_the_tries():
    """A valid key starts the count again for the next visit."""
    flow = make_flow({
        "m": {"type": "menu", "prompt": {"sound": "menu"}, "choices": {1: "again", 2: "two"}, "retries": 2,
              "on_exhausted": "gave_up"},
        "again": {"type": "say", "prompt": {"sound": "ok"}, "next": "m"}, **ENDS}, start="m")
    phone = Phone(flow, inputs=["9", "1", "9", "2"])
    assert phone.run().step == "two"


def test_menu_direct_dial_dials_a_matching_extension():
    """direct_dial: a key outside choices starts an extension, dialled as Local/<n>@<context>."""
    flow = menu(direct_dial={"pattern": "^[3-9][0-9]{3}$", "max_digits": 4, "context": "from-internal"})
    phone = Phone(flow, inputs=["3", "001"])
    outcome = phone.run()
    assert outcome == Outcome("transferred", step="m", target="Local/3001@from-internal")
    assert GetData("", 5000, 3) in phone.commands
    assert Exec("Dial", "Local/3001@from-internal,30") in phone.commands


def test_menu_direct_dial_that_does_not_match_counts_as_a_wrong_key():
    """Digits that do not match the pattern are an invalid choice."""
    flow = menu(direct_dial={"pattern": "^[3-9][0-9]{3}$", "max_digits": 4, "context": "from-internal"})
    phone = Phone(flow, inputs=["3", "0#", "1"])
    assert phone.run().step == "one"
    assert not phone.of_type(Exec)


def test_menu_caller_hangup():
    """A hangup while the menu plays ends the call at the menu."""
    phone = Phone(menu(), inputs=[HANGUP])
    assert phone.run() == Outcome("caller_hangup", step="m")


def test_menu_check_refuses_a_bad_direct_dial():
    """direct_dial needs a valid pattern and a context."""
    step = make_step("m", {"type": "menu", "prompt": "x", "choices": {1: "a"},
                           "direct_dial": {"pattern": "([", "max_digits": 4}})
    messages = " ".join(p.message for p in STEP_TYPES["menu"].check(step))
    assert "regular expression" in messages and "context" in messages


# ---------------------------------------------------------------- collect

def collect(**params):
    base = {"type": "collect", "var": "ticket", "prompt": {"sound": "enter"}, "next": "one",
            "on_exhausted": "gave_up"}
    return make_flow({"c": {**base, **params}, **ENDS}, start="c")


def test_collect_reads_digits_with_get_data_and_keeps_leading_zeros():
    """GET DATA <prompt> <timeout ms> <max_digits>; '0042' stays text."""
    phone = Phone(collect(max_digits=6, timeout=7), inputs=["0042#"])
    assert phone.run().step == "one"
    assert GetData("enter", 7000, 6) in phone.commands
    assert phone.session.variables["ticket"] == "0042"
    assert phone.session.inputs == [{"step": "c", "var": "ticket", "value": "0042"}]


def test_collect_plays_a_prompt_with_variables_before_reading():
    """A prompt with ${var}: the spoken parts play first, then GET DATA reads."""
    flow = make_flow({"c": {"type": "collect", "var": "x", "prompt": "Enter ${n} digits", "next": "one"},
                      **ENDS}, start="c", variables={"n": 4})
    phone = Phone(flow, inputs=["1234#"])
    phone.run()
    kinds = [type(c).__name__ for c in phone.commands[2:5]]
    assert kinds == ["StreamFile", "SayNumber", "GetData"]


def test_collect_too_short_plays_invalid_and_asks_again():
    """Fewer than min_digits: the invalid prompt, then the question again."""
    phone = Phone(collect(min_digits=4), inputs=["12#", "1234#"])
    assert phone.run().step == "one"
    assert sounds(phone)[:1] == ["invalid"]
    assert phone.session.variables["ticket"] == "1234"


def test_collect_pattern_and_luhn_must_both_hold():
    """pattern is matched against the whole input, and luhn checks the check digit."""
    phone = Phone(collect(pattern="4[0-9]{15}", luhn=True, max_digits=16),
                  inputs=["5555555555554444#", "4111111111111112#", "4111111111111111#"])
    assert phone.run().step == "one"
    assert sounds(phone).count("invalid") == 2


def test_collect_accepts_valid_digits_that_end_in_a_timeout():
    """A caller who typed enough digits but no # is not made to type them again."""
    phone = Phone(collect(min_digits=4), inputs=["1234"])
    assert phone.run().step == "one"


def test_collect_timeouts_exhaust_to_on_exhausted_without_invalid_prompts():
    """No input at all, `retries` times: on_exhausted, and no 'invalid' sound."""
    phone = Phone(collect(retries=2), inputs=[TIMEOUT, TIMEOUT])
    assert phone.run().step == "gave_up"
    assert "invalid" not in sounds(phone)


def test_collect_exhausted_without_on_exhausted_is_the_error_fallback():
    """No on_exhausted: the operator fallback."""
    flow = make_flow({"c": {"type": "collect", "var": "x", "prompt": {"sound": "enter"}, "retries": 1}})
    assert Phone(flow, inputs=[TIMEOUT]).run().kind == "error"


def test_collect_with_another_terminator():
    """terminator '*' ends the input where it is typed."""
    phone = Phone(collect(terminator="*"), inputs=["12*"])
    phone.run()
    assert phone.session.variables["ticket"] == "12"


def test_collect_masked_value_is_recorded_as_dots():
    """mask: true keeps the value for the flow but records ••••."""
    phone = Phone(collect(mask=True), inputs=["9876#"])
    phone.run()
    assert phone.session.inputs[0]["value"] == MASK


def test_collect_caller_hangup():
    """A hangup while reading digits ends the call at the collect step."""
    phone = Phone(collect(), inputs=[HANGUP])
    assert phone.run() == Outcome("caller_hangup", step="c")


def test_collect_check_refuses_min_above_max():
    """min_digits above max_digits is reported by the step's check."""
    step = make_step("c", {"type": "collect", "var": "x", "prompt": "x", "min_digits": 5, "max_digits": 3})
    assert any("above" in p.message for p in STEP_TYPES["collect"].check(step))


# ---------------------------------------------------------------- language

def test_language_set_switches_channel_language():
    """set: zh writes language and SET VARIABLE CHANNEL(language) zh."""
    flow = make_flow({"l": {"type": "language", "set": "zh", "next": "one"}, **ENDS}, start="l")
    phone = Phone(flow)
    phone.run()
    assert SetVariable("CHANNEL(language)", "zh") in phone.commands
    assert phone.session.language == "zh" and phone.session.variables["language"] == "zh"


def choose_language(**params):
    base = {"type": "language", "prompt": {"sound": "lang"}, "choices": {"1": "en", "2": "zh"},
            "next": "one"}
    return make_flow({"l": {**base, **params}, **ENDS}, start="l")


def test_language_choice_by_key():
    """The caller's key picks the language from choices."""
    phone = Phone(choose_language(), inputs=["2"])
    phone.run()
    assert phone.commands[2] == StreamFile("lang", "12")
    assert phone.session.language == "zh"
    assert {"step": "l", "var": "language", "value": "zh"} in phone.session.inputs


def test_language_timeout_or_other_key_keeps_the_language():
    """No key, or a key not in choices: the language stays, next step follows."""
    for inputs in ([TIMEOUT], ["7"]):
        phone = Phone(choose_language(timeout=3), inputs=inputs)
        assert phone.run().step == "one"
        assert phone.session.language == "en"
        assert not [c for c in phone.commands if isinstance(c, SetVariable) and c.name == "CHANNEL(language)"]


def test_language_caller_hangup():
    """A hangup during the language prompt ends the call there."""
    assert Phone(choose_language(), inputs=[HANGUP]).run() == Outcome("caller_hangup", step="l")


def test_language_check_wants_set_or_prompt_and_choices():
    """A language step needs exactly one way of choosing, with real language codes."""
    check = STEP_TYPES["language"].check
    assert check(make_step("l", {"type": "language", "next": "x"}))
    assert check(make_step("l", {"type": "language", "set": "english", "next": "x"}))
    assert check(make_step("l", {"type": "language", "set": "en", "next": "x"})) == []
