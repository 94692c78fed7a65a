"""Text-to-speech prompts: rendered once, in the format Asterisk plays, found again by hash.

The speech tests use the real espeak-ng (through pyttsx3) on a few short texts; the
resampler is tested with pure tones; the build logic with counting fake synthesizers
where only the bookkeeping is under test.
"""
from __future__ import annotations

import math
import struct
import threading
from array import array
from itertools import pairwise
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from ivr.flow import Flow, Key, SourcePos, Step, StepType
from ivr.prompts import (
    ASTERISK_RATE,
    SYSTEM_PROMPTS,
    EspeakCliSynthesizer,
    FallbackSynthesizer,
    PromptText,
    TtsError,
    TtsUnavailable,
    build_prompts,
    build_system_prompts,
    iter_flow_prompts,
    load_manifest,
    parse_voice_options,
    read_wav,
    render_to_file,
    resample,
    static_parts,
    to_asterisk_pcm,
)

EN, ZH = "gmw/en-us", "sit/cmn"


# ---------------------------------------------------------------- helpers

def tone(freq: float, rate: int, seconds: float = 0.5, amplitude: float = 10000.0) -> list[float]:
    return [amplitude * math.sin(2 * math.pi * freq * i / rate) for i in range(int(rate * seconds))]


def rms(samples) -> float:
    return math.sqrt(sum(v * v for v in samples) / len(samples)) if samples else 0.0


def zero_crossings(samples) -> int:
    return sum(1 for a, b in pairwise(samples) if (a < 0) != (b < 0))


def wav_header(path: Path) -> dict:
    """The fields of a canonical RIFF/WAVE header, read by hand (not through the wave module)."""
    data = path.read_bytes()[:44]
    riff, _, wave_id, fmt, _, audio_format, channels, rate, _, _, bits = struct.unpack(
        "<4sI4s4sIHHIIHH", data[:36])
    return {"riff": riff, "wave": wave_id, "fmt": fmt, "pcm": audio_format == 1,
            "channels": channels, "rate": rate, "bits": bits}


def step(name: str, type_: str, **params) -> Step:
    return Step(name, type_, params, SourcePos("t.yaml", 1, 1))


def flow(*steps: Step, language: str = "en", voice: str | None = None, name: str = "t") -> Flow:
    return Flow(name=name, path=f"flows/{name}.yaml", version="v1", start=steps[0].name,
                steps={s.name: s for s in steps}, language=language, voice=voice)


class CountingSynth:
    """A fake engine: a short 440 Hz tone at 22 050 Hz, counting what it was asked."""

    name = "fake"

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, str]] = []
        self.fail_on = fail_on

    def synthesize(self, text, voice):
        self.calls.append((text, voice))
        if self.fail_on and self.fail_on in text:
            raise TtsError("fake failure")
        return 22050, array("h", (int(v) for v in tone(440, 22050, 0.2)))


@pytest.fixture(scope="module")
def speech():
    """The real engine, or a skip saying how to get it."""
    from ivr.prompts import default_synthesizer
    try:
        return default_synthesizer()
    except TtsUnavailable as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"espeak-ng not installed: {exc}")


# ---------------------------------------------------------------- resampler

def test_resampled_1khz_tone_keeps_its_frequency():
    """A 1 kHz sine at 22 050 Hz is still 1 kHz at 8 kHz: same zero crossings per second."""
    out = resample(tone(1000, 22050, 1.0), 22050, 8000)
    assert len(out) == 8000
    assert zero_crossings(out) == pytest.approx(2000, abs=2)
    assert rms(out[200:-200]) == pytest.approx(rms(tone(1000, 22050, 1.0)), rel=0.01)


def test_6khz_tone_is_removed_before_decimation():
    """6 kHz cannot exist at 8 kHz: it is filtered out instead of folding back to 2 kHz."""
    out = resample(tone(6000, 22050, 0.5), 22050, 8000)
    attenuation_db = 20 * math.log10(rms(out[200:-200]) / rms(tone(6000, 22050, 0.5)))
    assert attenuation_db < -60


def test_telephone_band_passes_and_4khz_is_stopped():
    """3.3 kHz passes within 0.1 dB; 4.2 kHz (just above the new Nyquist) is at least 60 dB down."""
    for freq, check in ((3300, lambda db: abs(db) < 0.1), (4200, lambda db: db < -60)):
        out = resample(tone(freq, 22050, 0.5), 22050, 8000)[200:-200]
        db = 20 * math.log10(rms(out) / rms(tone(freq, 22050, 0.5)))
        assert check(db), (freq, db)


def test_constant_signal_stays_constant():
    """The filter's gain at 0 Hz is exactly 1, whatever the phase."""
    out = resample([1000.0] * 2205, 22050, 8000)
    assert all(abs(v - 1000.0) < 1e-6 for v in out[100:-100])


def test_upsampling_keeps_the_frequency_too():
    """8 kHz -> 16 kHz also works (a rational ratio in the other direction)."""
    out = resample(tone(1000, 8000, 0.5), 8000, 16000)
    assert len(out) == 8000
    assert zero_crossings(out) == pytest.approx(1000, abs=2)


def test_asterisk_pcm_is_normalised_and_never_wraps():
    """Quiet speech is raised to about -3 dBFS (at most 4x); overshoot saturates instead of wrapping."""
    quiet = to_asterisk_pcm([int(v) for v in tone(500, 22050, 0.2, amplitude=8000)], 22050)
    assert 0.68 * 32767 < max(quiet) <= 0.71 * 32767
    near_silence = to_asterisk_pcm([int(v) for v in tone(500, 22050, 0.2, amplitude=100)], 22050)
    assert max(near_silence) <= 4 * 100 + 1
    # A full-scale square wave overshoots after band-limiting (Gibbs): it must clip, not wrap.
    square = [32767 if (i // 11) % 2 else -32768 for i in range(4410)]
    loud = to_asterisk_pcm(square, 22050, normalise=False)
    assert loud.typecode == "h" and max(loud) == 32767 and min(loud) == -32768


# ---------------------------------------------------------------- real speech

@pytest.mark.parametrize("text, voice", [
    ("Thank you for calling.", EN),
    ("感谢您的来电。", ZH),
])
def test_text_renders_to_asterisk_wav(tmp_path, speech, text, voice):
    """English and Chinese text become RIFF WAV, 8000 Hz mono 16-bit PCM, audible speech."""
    target = tmp_path / "p.wav"
    duration = render_to_file(text, voice, target, speech)
    header = wav_header(target)
    assert header == {"riff": b"RIFF", "wave": b"WAVE", "fmt": b"fmt ", "pcm": True,
                      "channels": 1, "rate": 8000, "bits": 16}
    rate, samples = read_wav(target)
    assert rate == ASTERISK_RATE and len(samples) / rate == pytest.approx(duration)
    assert 0.5 < duration < 10
    assert rms(samples) > 1000     # speech, not silence (-30 dBFS and above)
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_pyttsx3_renders_a_long_text_to_its_end():
    """pyttsx3's runAndWait returns before espeak finishes: the whole text must still be there."""
    from ivr.prompts import Pyttsx3Synthesizer
    try:
        pyttsx3_synth, cli = Pyttsx3Synthesizer(), EspeakCliSynthesizer()
    except TtsUnavailable:  # pragma: no cover
        pytest.skip("pyttsx3 or espeak-ng not available")
    for text, voice in (
        ("For your balance, press 1. For your last payment, press 2. For your ticket, press 3.", EN),
        ("查询余额请按1，查询最近一次缴费请按2，查询报修进度请按3，故障报修请按4，人工服务请按0。", ZH),
    ):
        rate, samples = pyttsx3_synth.synthesize(text, voice)
        cli_rate, cli_samples = cli.synthesize(text, voice)
        assert len(samples) / rate == pytest.approx(len(cli_samples) / cli_rate, rel=0.02), voice
        assert len(samples) / rate > 4


def test_unknown_voice_is_an_error_not_silence(speech, tmp_path):
    """A misspelt voice fails the prompt instead of writing a file in some other voice."""
    with pytest.raises(TtsError):
        render_to_file("Hello.", "nosuch/voice", tmp_path / "x.wav", speech)
    assert not (tmp_path / "x.wav").exists()


def test_espeak_command_fallback_renders_the_same_format(tmp_path):
    """The espeak-ng command path (used when pyttsx3 cannot) also gives 8 kHz mono speech."""
    try:
        cli = EspeakCliSynthesizer()
    except TtsUnavailable:  # pragma: no cover
        pytest.skip("no espeak-ng command")
    render_to_file("Goodbye.", EN, tmp_path / "g.wav", cli)
    rate, samples = read_wav(tmp_path / "g.wav")
    assert rate == 8000 and rms(samples) > 1000


def test_fallback_synthesizer_tries_the_next_engine():
    """When the first engine fails a text, the second one renders it."""
    broken, working = CountingSynth(fail_on="Hello"), CountingSynth()
    rate, samples = FallbackSynthesizer([broken, working]).synthesize("Hello", EN)
    assert rate == 22050 and samples and broken.calls and working.calls


# ---------------------------------------------------------------- which texts a flow has

def test_static_parts_split_out_variables():
    """`${var}` pieces are said at run time; the fixed text around them is rendered."""
    assert static_parts("Your ticket ${ticket_reference} is closed.") == ["Your ticket", "is closed."]
    assert static_parts("${a}${b}") == []
    assert static_parts("Welcome.") == ["Welcome."]


def test_flow_prompts_cover_languages_nested_keys_and_skip_files():
    """Per-language mappings give one text per language; survey questions count; files and sounds do not."""
    f = flow(
        step("welcome", "say", prompt={"en": "Hello.", "zh": "你好。"}),
        step("menu", "menu", prompt={"text": "Press 1."}, invalid_prompt={"sound": "invalid"},
             timeout_prompt={"file": "recorded"}, choices={"1": "welcome"}),
        step("survey", "survey", questions=[{"id": "q1", "prompt": {"en": "Rate us.", "zh": "请评分。"}}],
             thanks_prompt="Thanks ${caller_name}!"),
    )
    found = {(p.language, p.text) for p in iter_flow_prompts(f, registry={})}
    assert found == {("en", "Hello."), ("zh", "你好。"), ("en", "Press 1."), ("en", "Rate us."),
                     ("zh", "请评分。"), ("en", "Thanks")}


def test_declared_prompt_keys_are_found_whatever_their_name():
    """A key a step type declares as kind `prompt` is a prompt even if not named *prompt."""
    class Greeter(StepType):
        type_name = "greeter"
        keys: ClassVar = {"greeting": Key("prompt"), "note": Key("str")}

    f = flow(step("g", "greeter", greeting="Good morning.", note="not spoken"))
    assert [p.text for p in iter_flow_prompts(f, registry={"greeter": Greeter()})] == ["Good morning."]


def test_flow_voice_speaks_its_own_language_only():
    """`voice:` of an English flow is not used for its Chinese texts."""
    f = flow(step("w", "say", prompt={"en": "Hi.", "zh": "嗨。"}), voice="gmw/en-gb")
    voices = {p.language: p.voice for p in iter_flow_prompts(f, {"en": EN, "zh": ZH}, registry={})}
    assert voices == {"en": "gmw/en-gb", "zh": ZH}


# ---------------------------------------------------------------- building and caching

def build(flows, sounds_dir, voices, **kwargs):
    """build_prompts on hand-made flows: prompt keys found by name, the engine's own words left out."""
    kwargs.setdefault("registry", {})
    kwargs.setdefault("engine_words", False)
    return build_prompts(flows, sounds_dir, voices, **kwargs)



def test_build_renders_every_text_once_under_its_hash_name(tmp_path):
    """Each (text, voice, language) becomes sounds/hotline/tts/<hash>.wav, plus a manifest entry."""
    from ivr.prompt_refs import tts_prompt_name
    synth = CountingSynth()
    f1 = flow(step("a", "say", prompt={"en": "Hello.", "zh": "你好。"}), name="one")
    f2 = flow(step("b", "say", prompt="Hello."), name="two")          # same text: rendered once
    report = build([f1, f2], tmp_path, {"en": EN, "zh": ZH}, synthesizer=synth)
    assert report.ok and len(report.rendered) == 2 and len(synth.calls) == 2
    for text, voice, language in (("Hello.", EN, "en"), ("你好。", ZH, "zh")):
        name = tts_prompt_name(text, voice, language)
        assert name.startswith("hotline/tts/")
        assert wav_header(tmp_path / f"{name}.wav")["rate"] == 8000
    manifest = load_manifest(tmp_path / "hotline" / "tts")
    assert {(e["text"], e["voice"], e["language"]) for e in manifest.values()} == {
        ("Hello.", EN, "en"), ("你好。", ZH, "zh")}
    assert all(e["duration"] == pytest.approx(0.2, abs=0.01) for e in manifest.values())


def test_second_build_is_all_cache_hits_and_touches_nothing(tmp_path):
    """Running the build again renders nothing and leaves every file's mtime alone."""
    f = flow(step("a", "say", prompt={"en": "Hello.", "zh": "你好。"}))
    build([f], tmp_path, {"en": EN, "zh": ZH}, synthesizer=CountingSynth())
    files = sorted((tmp_path / "hotline" / "tts").glob("*.wav"))
    before = {p: p.stat().st_mtime_ns for p in files}
    again = CountingSynth()
    report = build([f], tmp_path, {"en": EN, "zh": ZH}, synthesizer=again)
    assert (len(report.rendered), len(report.cached), again.calls) == (0, 2, [])
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_nothing_to_render_needs_no_speech_engine(tmp_path, monkeypatch):
    """A fully cached build never starts espeak (so it works on a machine without it)."""
    f = flow(step("a", "say", prompt="Hello."))
    build([f], tmp_path, {"en": EN}, synthesizer=CountingSynth())

    def no_engine(*args, **kwargs):
        raise TtsUnavailable("not installed")
    monkeypatch.setattr("ivr.prompts.default_synthesizer", no_engine)
    assert len(build([f], tmp_path, {"en": EN}).cached) == 1


def test_another_voice_is_another_file(tmp_path):
    """The same text in another voice gets its own file; the first stays."""
    f = flow(step("a", "say", prompt="Hello."))
    build([f], tmp_path, {"en": EN}, synthesizer=CountingSynth())
    build([f], tmp_path, {"en": "gmw/en-gb"}, synthesizer=CountingSynth())
    assert len(list((tmp_path / "hotline" / "tts").glob("*.wav"))) == 2
    assert PromptText("Hello.", "en", EN).name != PromptText("Hello.", "en", "gmw/en-gb").name


def test_failures_are_reported_and_others_still_render(tmp_path):
    """A text that fails, or a language without a voice, is listed; the rest of the build goes on."""
    f = flow(step("a", "say", prompt={"en": "Broken text.", "fr": "Bonjour.", "zh": "你好。"}))
    report = build([f], tmp_path, {"en": EN, "zh": ZH}, synthesizer=CountingSynth(fail_on="Broken"))
    assert [p.text for p in report.rendered] == ["你好。"]
    reasons = {p.language: reason for p, reason in report.failed}
    assert set(reasons) == {"en", "fr"} and "--voice fr=" in reasons["fr"]
    assert not report.ok


def test_concurrent_builders_keep_every_manifest_entry(tmp_path):
    """Two builders writing at once: every file complete, no entry lost, no temp file left."""
    flows = [flow(step("a", "say", prompt=f"Text number {i}."), name=f"f{i}") for i in range(8)]
    threads = [threading.Thread(target=build, args=([fl], tmp_path, {"en": EN}),
                                kwargs={"synthesizer": CountingSynth()}) for fl in flows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    manifest = load_manifest(tmp_path / "hotline" / "tts")
    assert sorted(e["text"] for e in manifest.values()) == sorted(f"Text number {i}." for i in range(8))
    assert not list((tmp_path / "hotline" / "tts").glob(".*"))


def test_engine_words_are_rendered_under_the_names_the_engine_plays(tmp_path):
    """Currency words the engine says after an amount (money_words) exist after a build."""
    from ivr.prompt_refs import money_words
    voices = {"en": EN, "zh": ZH}
    report = build([], tmp_path, voices, synthesizer=CountingSynth(), engine_words=True)
    assert report.ok and report.rendered
    for currency, language in (("yuan", "zh"), ("yuan", "en"), ("euros", "zh")):
        for part in money_words(currency, language, voices):
            assert (tmp_path / f"{part.value}.wav").is_file(), (currency, language, part)


def test_sounds_prefix_changes_where_prompts_go(tmp_path):
    """With [agi] sounds_prefix = acme, prompts are acme/tts/<hash>, as the engine names them."""
    from ivr.prompt_refs import tts_prompt_name
    f = flow(step("a", "say", prompt="Hello."))
    build([f], tmp_path, {"en": EN}, synthesizer=CountingSynth(), prefix="acme")
    assert (tmp_path / f"{tts_prompt_name('Hello.', EN, 'en', 'acme')}.wav").is_file()
    assert load_manifest(tmp_path / "acme" / "tts")


def test_system_prompts_render_once_and_again_when_their_text_changes(tmp_path, monkeypatch):
    """The dialplan's fixed-name prompts are cached by the manifest, re-rendered when edited."""
    synth = CountingSynth()
    first = build_system_prompts(tmp_path, {"en": EN, "zh": ZH}, synthesizer=synth)
    assert len(first.rendered) == len(SYSTEM_PROMPTS) and first.ok
    for name in SYSTEM_PROMPTS:
        assert wav_header(tmp_path / f"{name}.wav")["rate"] == 8000
    assert build_system_prompts(tmp_path, {"en": EN, "zh": ZH}, synthesizer=synth).rendered == []
    edited = dict(SYSTEM_PROMPTS)
    name = next(iter(edited))
    edited[name] = (edited[name][0], "A new apology.")
    monkeypatch.setattr("ivr.prompts.SYSTEM_PROMPTS", edited)
    again = build_system_prompts(tmp_path, {"en": EN, "zh": ZH}, synthesizer=synth)
    assert [p.text for p in again.rendered] == ["A new apology."]


def test_voice_options_override_defaults_and_reject_junk():
    """--voice zh=sit/yue replaces one language's voice; a value without '=' is refused."""
    assert parse_voice_options(["zh=sit/yue"])["zh"] == "sit/yue"
    assert parse_voice_options([])["en"] == EN
    with pytest.raises(ValueError, match="LANGUAGE=VOICE"):
        parse_voice_options(["sit/yue"])


# ---------------------------------------------------------------- the CLI

def test_cli_say_writes_a_playable_file(tmp_path, speech):
    """`hotline prompts say TEXT --lang zh -o out.wav` writes an 8 kHz prompt."""
    from hotline.commands.prompts import prompts
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(prompts, ["say", "你好", "--lang", "zh", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert wav_header(out)["rate"] == 8000 and "sit/cmn" in result.output


def test_cli_without_espeak_says_how_to_install_it(tmp_path, monkeypatch):
    """No speech engine: one line naming `apt-get install espeak-ng`, and a non-zero exit."""
    from hotline.commands.prompts import prompts

    def no_engine(*args, **kwargs):
        raise TtsUnavailable("pyttsx3 cannot load espeak-ng; no espeak-ng command on PATH")
    monkeypatch.setattr("ivr.prompts.default_synthesizer", no_engine)
    result = CliRunner().invoke(prompts, ["say", "Hello", "-o", str(tmp_path / "x.wav")])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "apt-get install espeak-ng" in lines[0]


def test_cli_build_renders_the_example_flows(tmp_path, monkeypatch):
    """`hotline prompts build flows --sounds DIR` loads the real flows and reports counts."""
    pytest.importorskip("ivr.steps")
    from hotline.commands.prompts import prompts
    synth = CountingSynth()
    monkeypatch.setattr("ivr.prompts.default_synthesizer", lambda *a, **k: synth)
    flows_dir = Path(__file__).resolve().parents[1] / "flows"
    result = CliRunner().invoke(prompts, ["build", str(flows_dir), "--sounds", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"{len(synth.calls)} rendered, 0 cached, 0 failed" in result.output
    assert synth.calls and {voice for _, voice in synth.calls} == {EN, ZH}
    result = CliRunner().invoke(prompts, ["build", str(flows_dir), "--sounds", str(tmp_path)])
    assert "0 rendered" in result.output and " 0 failed" in result.output
