"""ivr.prompt_refs: the sound names the engine plays, shared with `hotline prompts build`."""
from __future__ import annotations

import hashlib

import pytest

from ivr.expr import ExprRuntimeError
from ivr.prompt_refs import (
    ENGINE_TEXTS, PromptPart, money_words, resolve_prompt, static_parts, template_pieces, tts_key,
    tts_prompt_name, value_parts,
)

VOICES = {"en": "gmw/en-us", "zh": "sit/cmn"}


def test_tts_key_hashes_text_voice_and_language():
    """The key is the first 16 hex digits of sha1('text|voice|language')."""
    assert tts_key("Hello.", "gmw/en-us", "en") == hashlib.sha1(b"Hello.|gmw/en-us|en").hexdigest()[:16]
    assert tts_key("Hello.", None, "en") == hashlib.sha1(b"Hello.||en").hexdigest()[:16]


def test_tts_prompt_name_changes_with_any_of_its_inputs():
    """Another text, voice or language is another file: a stale rendering is never played."""
    base = tts_prompt_name("Hello.", "gmw/en-us", "en")
    assert base.startswith("hotline/tts/") and len(base) == len("hotline/tts/") + 16
    others = {tts_prompt_name("Hello!", "gmw/en-us", "en"), tts_prompt_name("Hello.", "x", "en"),
              tts_prompt_name("Hello.", "gmw/en-us", "zh")}
    assert base not in others and len(others) == 3
    assert tts_prompt_name("Hello.", None, "en", prefix="acme").startswith("acme/tts/")


def test_static_parts_split_on_variables_and_drop_empty_pieces():
    """Static pieces are stripped; blank or punctuation-only pieces are not rendered."""
    assert static_parts("Your ticket ${ref} is closed.") == ["Your ticket", "is closed."]
    assert static_parts("${a}, ${b}.") == []
    assert static_parts("  Hello.  ") == ["Hello."]
    assert template_pieces("Hi ${name}!") == [(False, "Hi"), (True, "name")]


@pytest.mark.parametrize("value, parts", [
    (42, [PromptPart("number", 42)]),
    (12.0, [PromptPart("number", 12)]),
    ("0042", [PromptPart("digits", "0042")]),
    ("T-0001", [PromptPart("alpha", "T-0001")]),
    ("王芳", []),
    (None, []),
    (True, [PromptPart("alpha", "yes")]),
])
def test_values_are_said_by_kind(value, parts):
    """Numbers with SAY NUMBER, digit strings with SAY DIGITS, other text spelt, unsayable skipped."""
    assert value_parts(value) == parts


def test_long_text_values_are_capped():
    """A value from the database is never spelt out for more than 64 characters."""
    (part,) = value_parts("A" * 500)
    assert len(part.value) == 64


def test_resolve_per_language_prompt_picks_session_then_flow_then_first():
    """{en, zh} follows the session language, else the flow language, else the first entry."""
    value = {"zh": "你好。", "en": "Hello."}
    zh = resolve_prompt(value, language="zh", flow_language="en", voices=VOICES)
    fr = resolve_prompt(value, language="fr", flow_language="en", voices=VOICES)
    first = resolve_prompt({"zh": "你好。"}, language="fr", flow_language="en", voices=VOICES)
    assert zh == [PromptPart("file", tts_prompt_name("你好。", "sit/cmn", "zh"))]
    assert fr == [PromptPart("file", tts_prompt_name("Hello.", "gmw/en-us", "en"))]
    assert first == zh


def test_plain_text_is_in_the_flows_language_and_voice():
    """A plain string is rendered in the flow's language, with the flow's voice if it has one."""
    parts = resolve_prompt("Hello.", language="zh", flow_language="en", flow_voice="mb/en1", voices=VOICES)
    assert parts == [PromptPart("file", tts_prompt_name("Hello.", "mb/en1", "en"))]


def test_file_and_sound_prompts():
    """{file} is under the sounds prefix, {sound} is as written, also inside a language mapping."""
    assert resolve_prompt({"file": "welcome"}, language="en", flow_language="en") == \
        [PromptPart("file", "hotline/welcome")]
    assert resolve_prompt({"en": {"sound": "beep"}}, language="en", flow_language="en") == \
        [PromptPart("file", "beep")]


def test_undefined_variable_in_a_prompt_is_a_runtime_error():
    """${x} with no x raises ExprRuntimeError (the engine routes it to on_error)."""
    with pytest.raises(ExprRuntimeError):
        resolve_prompt("Hi ${x}", language="en", flow_language="en", variables={})


def test_money_words_and_engine_texts_agree():
    """Every TTS word money_words may play is listed in ENGINE_TEXTS for prompts build."""
    units, cents = money_words("yuan", "zh", VOICES)
    assert units == PromptPart("file", tts_prompt_name("元", "sit/cmn", "zh"))
    assert "元" in ENGINE_TEXTS["zh"] and "分" in ENGINE_TEXTS["zh"]
    assert money_words("dollars", "en") == (PromptPart("file", "dollars"), PromptPart("file", "cents"))
    unknown_units, unknown_cents = money_words("rupees", "en", VOICES)
    assert unknown_cents is None and unknown_units.value == tts_prompt_name("rupees", "gmw/en-us", "en")


def test_prompts_builder_uses_the_same_split():
    """ivr.prompts.static_parts defers to ours, so builder and engine name the same files."""
    prompts = pytest.importorskip("ivr.prompts")
    text = "Your ticket ${ticket_reference} has been received."
    assert prompts.static_parts(text) == static_parts(text)


def test_a_list_of_prompts_plays_each_in_order_in_its_own_voice():
    """[{en: ...}, {zh: ...}] says the English part in the English voice, then the Chinese
    part in the Chinese voice, whatever the session language: how a language menu sounds right."""
    value = [{"en": "For English, press 1."}, {"zh": "中文服务请按2。"}, {"sound": "beep"}]
    parts = resolve_prompt(value, language="en", flow_language="en", voices=VOICES)
    assert parts == [PromptPart("file", tts_prompt_name("For English, press 1.", "gmw/en-us", "en")),
                     PromptPart("file", tts_prompt_name("中文服务请按2。", "sit/cmn", "zh")),
                     PromptPart("file", "beep")]


def test_the_prompt_builder_renders_every_part_of_a_prompt_list():
    """`hotline prompts build` finds each text of a list prompt with its own language."""
    from ivr.prompts import _texts_of_prompt
    value = [{"en": "For English, press 1."}, {"zh": "中文服务请按2。"}]
    assert list(_texts_of_prompt(value, "en")) == [("en", "For English, press 1."),
                                                   ("zh", "中文服务请按2。")]
