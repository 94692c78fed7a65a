"""How a flow's ``prompt`` value becomes the sounds Asterisk plays.

One module decides every sound name, because two parts must agree on them byte for
byte: ``hotline prompts build`` renders text prompts ahead of time
(``ivr.prompts``), and the engine plays them by the same names at run time.

- ``{sound: beep}`` plays Asterisk's stock sound ``beep`` as is.
- ``{file: welcome}`` plays the recording ``<sounds_prefix>/welcome`` (``hotline/welcome``;
  Asterisk sees ``<flows dir>/sounds`` as ``<astdatadir>/sounds/<sounds_prefix>``).
- Text (``Welcome.`` or ``{text: Welcome.}``) plays ``<sounds_prefix>/tts/<key>``, where
  ``key`` hashes (text, voice, language): an edited text gets a new name, so a stale
  rendering is never played.
- ``{en: ..., zh: ...}`` picks the session language, else the flow's language, else the
  first entry; the chosen entry is any of the above. A plain text is in the language of
  the flow file it is written in (that is how the builder renders it).

Text with ``${var}`` cannot be rendered ahead of time, so it is cut into its static
pieces (each rendered like any text; blank or punctuation-only pieces are dropped)
and the variables between them are *said* by Asterisk: a number (int, or a float
with no fraction) with SAY NUMBER, a string of digits (account, ticket number) with
SAY DIGITS, anything else with SAY ALPHA (spelt out, ASCII letters, digits and a few
signs only, at most 64 characters; a value with nothing sayable is skipped).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from ivr.expr import compile_template

__all__ = [
    "DEFAULT_SOUNDS_PREFIX", "PROMPT_FORMS", "PromptPart", "tts_key", "tts_prompt_name",
    "static_parts", "template_pieces", "voice_for", "pick_language", "resolve_prompt",
    "value_parts", "money_words", "ENGINE_TEXTS", "MAX_ALPHA",
]

DEFAULT_SOUNDS_PREFIX = "hotline"
PROMPT_FORMS = ("text", "file", "sound")
MAX_ALPHA = 64
_DIGIT_STRING = re.compile(r"[0-9]+\Z")
_SAYABLE = re.compile(r"[^A-Za-z0-9 .,@+\-_/*#]")


@dataclass(frozen=True)
class PromptPart:
    """One thing to play: ``file`` (a sound name), ``number`` (int), ``digits`` or ``alpha``."""

    kind: str
    value: Any


# ---------------------------------------------------------------- names

def tts_key(text: str, voice: str | None, language: str) -> str:
    """The cache key of one rendered text: 16 hex digits of sha1(text|voice|language)."""
    raw = f"{text}|{voice or ''}|{language}".encode("utf-8")
    return hashlib.sha1(raw).hexdigest()[:16]


def tts_prompt_name(text: str, voice: str | None, language: str,
                    prefix: str = DEFAULT_SOUNDS_PREFIX) -> str:
    """The sound name of a rendered text, as STREAM FILE takes it (``hotline/tts/<key>``)."""
    return f"{prefix}/tts/{tts_key(text, voice, language)}"


def voice_for(language: str, flow_language: str, flow_voice: str | None,
              voices: Mapping[str, str]) -> str | None:
    """The voice of ``language`` in a flow: the flow's ``voice:`` speaks its own language only."""
    if flow_voice and language == flow_language:
        return flow_voice
    return voices.get(language)


# ---------------------------------------------------------------- ${var} texts

def _has_words(piece: str) -> bool:
    return any(ch.isalnum() for ch in piece)


def template_pieces(text: str) -> list[tuple[bool, str]]:
    """``text`` as (is_variable, static text or variable name), static pieces stripped.

    Static pieces with nothing to say (blank, punctuation only) are dropped, exactly as
    ``static_parts`` drops them. Raises ``ivr.expr.ExprError`` for a malformed ``${``.
    """
    template = compile_template(text)
    if not template.names:
        stripped = text.strip()
        return [(False, stripped)] if _has_words(stripped) else []
    marks = {name: f"\x00{name}\x00" for name in template.names}
    chunks = template.render(marks).split("\x00")
    pieces: list[tuple[bool, str]] = []
    for index, chunk in enumerate(chunks):
        if index % 2:                       # odd chunks are variable names
            pieces.append((True, chunk))
        elif _has_words(chunk):
            pieces.append((False, chunk.strip()))
    return pieces


def static_parts(text: str) -> list[str]:
    """The fixed pieces of a prompt text, each rendered as its own TTS prompt.

    ``Your ticket ${ref} is closed.`` -> ``["Your ticket", "is closed."]``.
    """
    return [piece for is_var, piece in template_pieces(text) if not is_var]


def value_parts(value: Any) -> list[PromptPart]:
    """How a variable's value is said inside a text prompt (see the module docstring)."""
    if value is None:
        return []
    if isinstance(value, bool):
        return [PromptPart("alpha", "yes" if value else "no")]
    if isinstance(value, int):
        return [PromptPart("number", value)]
    if isinstance(value, (float, Decimal)):
        if value == int(value):
            return [PromptPart("number", int(value))]
        text = format(value, "f").rstrip("0")
        return [PromptPart("alpha", text[:MAX_ALPHA])]
    text = str(value).strip()
    if _DIGIT_STRING.match(text):
        return [PromptPart("digits", text[:MAX_ALPHA])]
    sayable = _SAYABLE.sub("", text).strip()[:MAX_ALPHA]
    return [PromptPart("alpha", sayable)] if _has_words(sayable) else []


# ---------------------------------------------------------------- prompt values

def pick_language(value: Mapping[str, Any], language: str | None,
                  flow_language: str) -> tuple[str, Any]:
    """The entry of a per-language prompt for ``language``, else the flow's, else the first."""
    for candidate in (language, flow_language):
        if candidate and candidate in value:
            return candidate, value[candidate]
    first = next(iter(value))
    return str(first), value[first]


def resolve_prompt(value: Any, *, language: str | None, flow_language: str,
                   flow_voice: str | None = None, voices: Mapping[str, str] | None = None,
                   variables: Mapping[str, Any] | None = None,
                   prefix: str = DEFAULT_SOUNDS_PREFIX) -> list[PromptPart]:
    """What to play for one prompt value, in order. ``None`` plays nothing.

    ``variables`` fills ``${var}``; an undefined one raises ``ivr.expr.ExprRuntimeError``.
    """
    if value is None:
        return []
    voices = voices or {}
    if isinstance(value, str):
        return _text_parts(value, flow_language, flow_language, flow_voice, voices, variables, prefix)
    if isinstance(value, list):
        # A sequence of prompts, played in order: how one prompt mixes voices, e.g.
        # [{en: "For English, press 1."}, {zh: "中文服务请按2。"}] says each in its own.
        return [part for item in value
                for part in resolve_prompt(item, language=language, flow_language=flow_language,
                                           flow_voice=flow_voice, voices=voices,
                                           variables=variables, prefix=prefix)]
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"not a prompt: {value!r}")
    if "sound" in value:
        return [PromptPart("file", str(value["sound"]))]
    if "file" in value:
        return [PromptPart("file", f"{prefix}/{value['file']}")]
    if "text" in value:
        return _text_parts(str(value["text"]), flow_language, flow_language, flow_voice, voices,
                           variables, prefix)
    chosen_language, chosen = pick_language(value, language, flow_language)
    if isinstance(chosen, str):
        return _text_parts(chosen, chosen_language, flow_language, flow_voice, voices, variables, prefix)
    if isinstance(chosen, Mapping) and "text" in chosen:
        return _text_parts(str(chosen["text"]), chosen_language, flow_language, flow_voice, voices,
                           variables, prefix)
    return resolve_prompt(chosen, language=chosen_language, flow_language=flow_language,
                          flow_voice=flow_voice, voices=voices, variables=variables, prefix=prefix)


def _text_parts(text: str, text_language: str, flow_language: str, flow_voice: str | None,
                voices: Mapping[str, str], variables: Mapping[str, Any] | None,
                prefix: str) -> list[PromptPart]:
    voice = voice_for(text_language, flow_language, flow_voice, voices)
    parts: list[PromptPart] = []
    for is_var, piece in template_pieces(text):
        if not is_var:
            parts.append(PromptPart("file", tts_prompt_name(piece, voice, text_language, prefix)))
            continue
        if variables is None or piece not in variables:
            from ivr.expr import ExprRuntimeError
            raise ExprRuntimeError(f"undefined variable '{piece}' in prompt {text[:60]!r}")
        parts.extend(value_parts(variables[piece]))
    return parts


# ---------------------------------------------------------------- money

# Words the engine says on its own (say step, money): (language, currency) -> (units, cents).
# A word is a stock sound (``sound:``) or a text rendered like any prompt, with the
# language's default voice; ``hotline prompts build`` renders ``ENGINE_TEXTS``.
_MONEY_WORDS: Mapping[tuple[str, str], tuple[str, str]] = {
    ("en", "dollars"): ("sound:dollars", "sound:cents"),
    ("en", "yuan"): ("yuan", "fen"),
    ("en", "euros"): ("euros", "cents"),
    ("zh", "yuan"): ("元", "分"),
    ("zh", "dollars"): ("美元", "美分"),
    ("zh", "euros"): ("欧元", "欧分"),
}

ENGINE_TEXTS: Mapping[str, tuple[str, ...]] = {
    language: tuple(sorted({w for (lang, _), words in _MONEY_WORDS.items() if lang == language
                            for w in words if not w.startswith("sound:")}))
    for language in sorted({lang for lang, _ in _MONEY_WORDS})
}


def money_words(currency: str, language: str, voices: Mapping[str, str] | None = None,
                prefix: str = DEFAULT_SOUNDS_PREFIX) -> tuple[PromptPart, PromptPart | None]:
    """The sounds after the units and after the cents of an amount in ``currency``.

    An unknown currency is said as its own name (a text prompt) with no word after the cents.
    """
    voices = voices or {}
    words = _MONEY_WORDS.get((language, currency)) or _MONEY_WORDS.get(("en", currency))
    word_language = language if (language, currency) in _MONEY_WORDS else "en"
    if words is None:
        name = tts_prompt_name(currency, voices.get(language), language, prefix)
        return PromptPart("file", name), None

    def part(word: str) -> PromptPart:
        if word.startswith("sound:"):
            return PromptPart("file", word[len("sound:"):])
        return PromptPart("file", tts_prompt_name(word, voices.get(word_language), word_language, prefix))

    return part(words[0]), part(words[1])
