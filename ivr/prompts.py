"""Text-to-speech prompts rendered ahead of time, as files Asterisk can play at once.

A flow's ``prompt: Welcome to Example Telecom.`` must not wait for a speech engine
while the caller listens, so ``hotline prompts build`` renders every static prompt
text of every flow once, into ``<sounds_dir>/hotline/tts/<hash>.wav``, where the hash
covers (text, voice, language): the engine computes the same name at run time
(``ivr.prompt_refs.tts_prompt_name``) and plays it with ``STREAM FILE``. An edited
text gets a new hash, so a stale file is never played and a cache hit is simply "the
file exists".

Speech comes from pyttsx3 driving the espeak-ng library (voices ``gmw/en-us`` and
``sit/cmn`` for Mandarin). pyttsx3 2.99 in one process is not reliable enough: several
``save_to_file`` before one ``runAndWait`` render only the last (the "loop hangs /
speaks once" reports upstream, e.g. nateshmbhat/pyttsx3#194, #126), and ``runAndWait``
does not always wait for espeak's asynchronous synthesis to end (empty or stray
files). So each text is rendered by pyttsx3 in a fresh child process that waits for
the end itself (``Pyttsx3Synthesizer``); when that fails, the ``espeak-ng`` command
(``espeak-ng -w``) is the fallback.

espeak speaks at 22 050 Hz; Asterisk's ``.wav`` format is 8 kHz mono 16-bit signed
linear. The resampler below is a Kaiser-windowed sinc, polyphase, in pure Python:
numpy/scipy would be faster but are not dependencies of Hotline, and ``audioop`` is
deprecated (removed in 3.13) and its ``ratecv`` does not low-pass. Everything above
3.4 kHz is cut (-6 dB at 3.7 kHz, at least 70 dB down from 4 kHz on), so nothing
folds back into the telephone band; a 4-second prompt resamples in about 0.2 s.

Several builders may run at once (two admins, a deploy script): every file is written
under a temporary name and renamed into place, and the manifest is merged under a
file lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import mul
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ivr import prompt_refs
from ivr.flow import STEP_TYPES, Flow, StepType
from ivr.prompt_refs import (
    DEFAULT_SOUNDS_PREFIX,
    ENGINE_TEXTS,
    tts_key,
    tts_prompt_name,
)

__all__ = [
    "ASTERISK_RATE",
    "DEFAULT_RATE_WPM",
    "DEFAULT_SOUNDS_DIR",
    "DEFAULT_VOICES",
    "SYSTEM_PROMPTS",
    "BuildReport",
    "EspeakCliSynthesizer",
    "FallbackSynthesizer",
    "PromptText",
    "Pyttsx3Synthesizer",
    "Synthesizer",
    "TtsError",
    "TtsUnavailable",
    "build_prompts",
    "build_system_prompts",
    "default_synthesizer",
    "iter_engine_prompts",
    "iter_flow_prompts",
    "iter_prompt_values",
    "load_manifest",
    "parse_voice_options",
    "read_wav",
    "render_to_file",
    "resample",
    "static_parts",
    "to_asterisk_pcm",
    "voice_for",
    "write_wav",
]

log = logging.getLogger("hotline.prompts")

ASTERISK_RATE = 8000                 # Asterisk's .wav: 8 kHz, mono, 16-bit signed linear
DEFAULT_SOUNDS_DIR = "var/sounds"
DEFAULT_VOICES: Mapping[str, str] = {"en": "gmw/en-us", "zh": "sit/cmn"}
DEFAULT_RATE_WPM = 165               # espeak's 175 is brisk over a phone line
_PEAK_TARGET = 0.7 * 32767           # about -3 dBFS: telephone codecs clip hard above 0
_MAX_GAIN = 4.0                      # never amplify near-silence into noise
_CLI_TIMEOUT = 60.0                  # seconds for one espeak-ng command

# Fixed prompts the dialplan plays itself (dialplan/extensions.conf, agi_fail path):
# prompt name -> (language, text). Rendered by ``build_system_prompts``.
SYSTEM_PROMPTS: Mapping[str, tuple[str, str]] = {
    "hotline/system/agi-fail-en": (
        "en", ("We are sorry, our automated service is not available right now. "
               "Please hold, and an operator will take your call.")),
    "hotline/system/agi-fail-zh": ("zh", "很抱歉，自助语音服务暂时无法使用。请稍候，正在为您转接人工服务。"),
}


class TtsUnavailable(RuntimeError):
    """No speech engine at all on this machine: the administrator must install espeak-ng."""

    hint = "install the speech engine: apt-get install espeak-ng"


class TtsError(RuntimeError):
    """One text could not be rendered (unknown voice, engine error); others may still work."""


# ---------------------------------------------------------------- audio: WAV files

def read_wav(path: str | Path) -> tuple[int, array]:
    """(sample rate, mono 16-bit samples) of a PCM WAV file; stereo is mixed down."""
    with wave.open(str(path), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise TtsError(f"{path}: {8 * width}-bit audio, expected 16-bit PCM")
    samples = array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    if channels > 1:
        samples = array("h", (sum(samples[i:i + channels]) // channels
                              for i in range(0, len(samples), channels)))
    return rate, samples


def write_wav(path: str | Path | BinaryIO, samples: Sequence[int], rate: int = ASTERISK_RATE) -> None:
    """Write mono 16-bit signed linear PCM (what Asterisk's ``wav`` format reads) to a path or file."""
    data = samples if isinstance(samples, array) and samples.typecode == "h" else array("h", samples)
    if sys.byteorder == "big":  # pragma: no cover
        data = array("h", data)
        data.byteswap()
    with wave.open(path if hasattr(path, "write") else str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())


# ---------------------------------------------------------------- audio: resampling

def _bessel_i0(x: float) -> float:
    """Modified Bessel function of the first kind, order 0 (power series), for the Kaiser window."""
    total = term = 1.0
    half = x / 2.0
    k = 1
    while term > 1e-12 * total:
        term *= (half / k) ** 2
        total += term
        k += 1
    return total


@lru_cache(maxsize=8)
def _polyphase_kernel(up: int, in_rate: int, cutoff_hz: float, half_width: int,
                      beta: float) -> tuple[tuple[float, ...], ...]:
    """One low-pass FIR per output phase: phase p sits p/up of an input sample past it.

    Each phase is normalised to a DC gain of exactly 1, so a constant stays constant.
    """
    fc = cutoff_hz / in_rate                     # cycles per input sample
    i0_beta = _bessel_i0(beta)
    phases = []
    for p in range(up):
        frac = p / up
        taps = []
        for k in range(-half_width + 1, half_width + 1):
            t = k - frac                         # input sample's distance from the output instant
            x = t / half_width
            window = _bessel_i0(beta * math.sqrt(1.0 - x * x)) / i0_beta if abs(x) < 1.0 else 0.0
            arg = 2.0 * math.pi * fc * t
            taps.append(2.0 * fc * (math.sin(arg) / arg if t else 1.0) * window)
        gain = sum(taps)
        phases.append(tuple(tap / gain for tap in taps))
    return tuple(phases)


def resample(samples: Sequence[float], in_rate: int, out_rate: int, *,
             transition_hz: float | None = None, attenuation_db: float = 70.0) -> list[float]:
    """``samples`` at ``in_rate`` resampled to ``out_rate`` (any rational ratio), band-limited.

    The low-pass ends its pass band ``transition_hz`` below the lower Nyquist frequency
    and reaches ``attenuation_db`` at it (default transition: 15 % of that Nyquist,
    600 Hz when going to 8 kHz). The filter length follows from the Kaiser formula.
    """
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError("sample rates must be positive")
    if in_rate == out_rate:
        return [float(s) for s in samples]
    g = math.gcd(int(in_rate), int(out_rate))
    up, down = out_rate // g, in_rate // g
    nyquist = min(in_rate, out_rate) / 2.0
    transition = 0.15 * nyquist if transition_hz is None else float(transition_hz)
    cutoff = nyquist - transition / 2.0          # -6 dB point of the windowed sinc
    taps = (attenuation_db - 7.95) / (2.285 * 2.0 * math.pi * transition / in_rate)
    half = max(2, math.ceil(taps / 2.0))
    beta = 0.1102 * (attenuation_db - 8.7) if attenuation_db > 50 else 5.0
    phases = _polyphase_kernel(up, in_rate, round(cutoff, 6), half, round(beta, 6))
    n_out = (len(samples) * up + down - 1) // down
    padded = [0.0] * half + [float(s) for s in samples] + [0.0] * (half + 1)
    width = 2 * half
    out = [0.0] * n_out
    for n in range(n_out):
        base, phase = divmod(n * down, up)
        start = base + 1                         # padded index of input sample base-half+1
        out[n] = sum(map(mul, phases[phase], padded[start:start + width]))
    return out


def to_asterisk_pcm(samples: Sequence[int], rate: int, *, normalise: bool = True) -> array:
    """Speech at any rate -> 8 kHz 16-bit samples at a steady level, ready for Asterisk."""
    out = resample(samples, rate, ASTERISK_RATE)
    if normalise and out:
        peak = max(max(out), -min(out))
        if peak > 0:
            gain = min(_PEAK_TARGET / peak, _MAX_GAIN)
            out = [v * gain for v in out]
    return array("h", (32767 if v >= 32767 else -32768 if v <= -32768 else round(v)
                       for v in out))


# ---------------------------------------------------------------- speech engines

class Synthesizer(Protocol):
    """Something that turns text into speech samples."""

    name: str

    def synthesize(self, text: str, voice: str) -> tuple[int, array]:
        """(sample rate, mono 16-bit samples); raises TtsError or TtsUnavailable."""
        ...


# The child process that runs pyttsx3 for one text (see Pyttsx3Synthesizer). Only
# pyttsx3 and the standard library: it does not depend on where Hotline is installed.
# Exit codes: 0 rendered, 3 unknown voice, 4 pyttsx3/espeak-ng unusable, 5 engine error.
_PYTTSX3_CHILD = r"""
import contextlib, io, json, sys
job = json.loads(sys.stdin.read())
try:
    with contextlib.redirect_stdout(io.StringIO()):
        import pyttsx3
        engine = pyttsx3.init("espeak")
except Exception as exc:
    sys.stderr.write(f"{type(exc).__name__}: {exc}")
    sys.exit(4)
voices = sorted(v.id.lower() for v in engine.getProperty("voices"))
if job.get("probe"):
    sys.stdout.write(json.dumps(voices))
    sys.exit(0)
if job["voice"].lower() not in voices:
    sys.stderr.write(f"espeak-ng has no voice {job['voice']!r} (list them: espeak-ng --voices)")
    sys.exit(3)
errors = []
engine.connect("error", lambda name=None, exception=None, **_: errors.append(exception))
import time
driver = engine.proxy._driver
with contextlib.redirect_stdout(io.StringIO()):   # the driver prints "Audio saved to ..."
    engine.setProperty("voice", job["voice"])
    engine.setProperty("rate", job["rate"])
    engine.save_to_file(job["text"], job["out"])
    engine.runAndWait()
    # The first runAndWait of a process returns ~10 ms after synthesis STARTS (espeak
    # runs asynchronously); the file is written on the end-of-message callback, which
    # clears the driver's _speaking flag. Wait for it.
    deadline = time.monotonic() + job["timeout"]
    while getattr(driver, "_speaking", False):
        if time.monotonic() > deadline:
            sys.stderr.write("espeak-ng did not finish in time")
            sys.exit(5)
        time.sleep(0.005)
if errors:
    sys.stderr.write(str(errors[0]))
    sys.exit(5)
"""


class Pyttsx3Synthesizer:
    """pyttsx3's espeak driver, one short-lived child process per text.

    pyttsx3 2.99 starts espeak-ng in AUDIO_OUTPUT_RETRIEVAL mode, which synthesises on
    espeak's own thread, and its ``runAndWait`` does not always wait for the end: the
    first call in a process returns about 10 ms after synthesis starts (every text
    longer than a few words came out empty), later calls mostly wait, and a late
    end-of-message callback may then write the previous text's file. In one long-lived
    process that gave empty or stray files a few times per hundred texts. A child
    process per text renders exactly one text, waits for the driver's end-of-message
    flag, and exits; it costs about 0.09 s, keeps espeak's process-global state out of
    Hotline, and bounds a hung engine with a timeout.
    """

    name = "pyttsx3"

    def __init__(self, rate_wpm: int = DEFAULT_RATE_WPM, python: str | None = None):
        self._python = python or sys.executable
        self._rate = int(rate_wpm)
        done = self._run({"probe": True})
        if done.returncode != 0:
            raise TtsUnavailable(f"pyttsx3 cannot load espeak-ng: {_tail(done.stderr)}")
        try:
            self._voices = frozenset(json.loads(done.stdout))
        except ValueError:
            raise TtsUnavailable(f"pyttsx3 probe gave no voice list: {_tail(done.stdout)}") from None

    def _run(self, job: Mapping[str, Any]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self._python, "-c", _PYTTSX3_CHILD], input=json.dumps(job).encode(),
                                  capture_output=True, timeout=_CLI_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise TtsError(f"pyttsx3 took longer than {_CLI_TIMEOUT:.0f} s") from None
        except OSError as exc:
            raise TtsUnavailable(f"cannot start {self._python}: {exc}") from exc

    def has_voice(self, voice: str) -> bool:
        return voice.lower() in self._voices

    def synthesize(self, text: str, voice: str) -> tuple[int, array]:
        if not self.has_voice(voice):
            raise TtsError(f"espeak-ng has no voice {voice!r} (list them: espeak-ng --voices)")
        with tempfile.TemporaryDirectory(prefix="hotline-tts-") as tmp:
            out = os.path.join(tmp, "speech.wav")
            done = self._run({"text": text, "voice": voice, "rate": self._rate, "out": out,
                              "timeout": _CLI_TIMEOUT - 5})
            if done.returncode == 4:
                raise TtsUnavailable(f"pyttsx3 cannot load espeak-ng: {_tail(done.stderr)}")
            if done.returncode != 0:
                raise TtsError(f"pyttsx3 failed (exit {done.returncode}): {_tail(done.stderr) or 'no message'}")
            if not os.path.exists(out) or os.path.getsize(out) <= 44:
                raise TtsError("pyttsx3 produced no audio")
            return read_wav(out)


def _tail(data: bytes | str, limit: int = 300) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(text.strip().splitlines()[-3:])
    return text[-limit:]


class EspeakCliSynthesizer:
    """The ``espeak-ng`` command: one process per prompt, used when pyttsx3 cannot."""

    name = "espeak-ng"

    def __init__(self, rate_wpm: int = DEFAULT_RATE_WPM, executable: str | None = None):
        self.executable = executable or shutil.which("espeak-ng") or shutil.which("espeak")
        if not self.executable:
            raise TtsUnavailable("no espeak-ng command on PATH")
        self._rate = int(rate_wpm)

    def synthesize(self, text: str, voice: str) -> tuple[int, array]:
        with tempfile.TemporaryDirectory(prefix="hotline-tts-") as tmp:
            out = os.path.join(tmp, "speech.wav")
            # Text on stdin (-b 1: UTF-8), so a text starting with "-" is never an option.
            cmd = [self.executable, "-v", voice, "-s", str(self._rate), "-b", "1", "-w", out, "--stdin"]
            try:
                done = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True,
                                      timeout=_CLI_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                raise TtsError(f"espeak-ng took longer than {_CLI_TIMEOUT:.0f} s") from None
            stderr = done.stderr.decode("utf-8", "replace").strip()
            if done.returncode != 0 or not os.path.exists(out) or os.path.getsize(out) <= 44:
                raise TtsError(f"espeak-ng failed (exit {done.returncode}): {stderr or 'no audio'}")
            if stderr:  # espeak-ng exits 0 on an unknown voice, saying so on stderr
                raise TtsError(f"espeak-ng: {stderr}")
            return read_wav(out)


class FallbackSynthesizer:
    """Try the first synthesizer; on a failure, the next (pyttsx3, then the espeak-ng command)."""

    def __init__(self, synthesizers: Sequence[Synthesizer]):
        if not synthesizers:
            raise TtsUnavailable("no speech engine")
        self.synthesizers = list(synthesizers)
        self.name = "+".join(s.name for s in self.synthesizers)

    def synthesize(self, text: str, voice: str) -> tuple[int, array]:
        errors = []
        for synth in self.synthesizers:
            try:
                return synth.synthesize(text, voice)
            except TtsError as exc:
                errors.append(f"{synth.name}: {exc}")
                log.warning("event=tts_engine_failed engine=%s voice=%s error=%s", synth.name, voice, exc)
        raise TtsError("; ".join(errors))


def default_synthesizer(rate_wpm: int = DEFAULT_RATE_WPM) -> Synthesizer:
    """pyttsx3 first, the espeak-ng command second; ``TtsUnavailable`` if neither exists."""
    found: list[Synthesizer] = []
    reasons = []
    for cls in (Pyttsx3Synthesizer, EspeakCliSynthesizer):
        try:
            found.append(cls(rate_wpm))
        except TtsUnavailable as exc:
            reasons.append(str(exc))
    if not found:
        raise TtsUnavailable("; ".join(reasons))
    return found[0] if len(found) == 1 else FallbackSynthesizer(found)


def render_to_file(text: str, voice: str, path: str | Path, synthesizer: Synthesizer) -> float:
    """Speak ``text`` into the Asterisk WAV ``path`` atomically; returns its duration (s).

    The file appears complete or not at all: it is written under a temporary name in
    the same directory and renamed, so a concurrent builder or a playing Asterisk never
    sees half a file.
    """
    rate, samples = synthesizer.synthesize(text, voice)
    pcm = to_asterisk_pcm(samples, rate)
    if not pcm:
        raise TtsError("the speech engine returned no samples")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write_wav(handle, pcm)
        os.chmod(tmp, 0o644)  # Asterisk usually runs as another user
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(pcm) / ASTERISK_RATE


# ---------------------------------------------------------------- prompts of a flow

def static_parts(text: str) -> list[str]:
    """The fixed pieces of a prompt text, each rendered as its own TTS prompt.

    ``Your ticket ${ref} is closed.`` -> ``["Your ticket", "is closed."]``; the variables
    are said by Asterisk at run time. The rule is the engine's own
    (``ivr.prompt_refs.static_parts``), so builder and engine can never disagree.
    """
    return prompt_refs.static_parts(text)


def voice_for(flow: Flow, language: str, voices: Mapping[str, str]) -> str | None:
    """The voice for ``language`` in ``flow`` (the flow's ``voice:`` speaks its own language only)."""
    return prompt_refs.voice_for(language, flow.language, flow.voice, voices)


_PROMPT_FORMS = ("text", "file", "sound")


def _looks_like_prompt_key(key: str) -> bool:
    return key == "prompt" or key.endswith("_prompt")


def iter_prompt_values(params: Mapping[str, Any], step_type: StepType | None) -> Iterator[tuple[str, Any]]:
    """(key path, value) of every prompt-kind value among a step's keys, nested ones included.

    Keys the step type declares of kind ``prompt`` are prompts; inside ``list``/``map``
    keys (survey ``questions``) a nested ``prompt`` / ``*_prompt`` key is one too. For a
    step type not registered in this process, keys named like prompts are taken.
    """
    declared = dict(step_type.keys) if step_type is not None else {}
    for key, value in params.items():
        if value is None:
            continue
        spec = declared.get(key)
        if (spec is not None and spec.kind == "prompt") or (spec is None and _looks_like_prompt_key(key)):
            yield key, value
        elif isinstance(value, (list, dict)) and (spec is None or spec.kind in ("list", "map")):
            yield from _nested_prompts(key, value)


def _nested_prompts(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        sub = f"{path}.{key}"
        if isinstance(key, str) and _looks_like_prompt_key(key):
            yield sub, item
        elif isinstance(item, (list, dict)):
            yield from _nested_prompts(sub, item)


def _texts_of_prompt(value: Any, default_language: str) -> Iterator[tuple[str, str]]:
    """(language, text) of every TTS text in one prompt value (files and sounds skipped)."""
    if isinstance(value, str):
        yield default_language, value
        return
    if isinstance(value, list):   # a sequence of prompts played in order
        for item in value:
            yield from _texts_of_prompt(item, default_language)
        return
    if not isinstance(value, dict):
        return
    if any(form in value for form in _PROMPT_FORMS):
        if isinstance(value.get("text"), str):
            yield default_language, value["text"]
        return
    for language, item in value.items():
        if isinstance(item, str):
            yield str(language), item
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            yield str(language), item["text"]


@dataclass(frozen=True)
class PromptText:
    """One text to render, with where it was written (``main.yaml:welcome.prompt.en``)."""

    text: str
    language: str
    voice: str | None
    where: str = ""
    prefix: str = DEFAULT_SOUNDS_PREFIX

    @property
    def key(self) -> str:
        return tts_key(self.text, self.voice, self.language)

    @property
    def name(self) -> str:
        """The prompt name the engine plays (``hotline/tts/<hash>``)."""
        return tts_prompt_name(self.text, self.voice, self.language, self.prefix)


def iter_flow_prompts(flow: Flow, voices: Mapping[str, str] = DEFAULT_VOICES, *,
                      registry: Mapping[str, StepType] | None = None,
                      prefix: str = DEFAULT_SOUNDS_PREFIX) -> Iterator[PromptText]:
    """Every static TTS text of ``flow``, one entry per language and ``${var}``-free piece."""
    registry = STEP_TYPES if registry is None else registry
    source = Path(flow.path).name if flow.path else flow.name
    for step in flow.steps.values():
        for path, value in iter_prompt_values(step.params, registry.get(step.type)):
            for language, text in _texts_of_prompt(value, flow.language):
                for piece in static_parts(text):
                    yield PromptText(piece, language, voice_for(flow, language, voices),
                                     f"{source}:{step.name}.{path}", prefix)


def iter_engine_prompts(voices: Mapping[str, str] = DEFAULT_VOICES, *,
                        prefix: str = DEFAULT_SOUNDS_PREFIX) -> Iterator[PromptText]:
    """Words the engine says on its own (currency names after an amount), per language,
    in the language's default voice, as ``ivr.prompt_refs.money_words`` names them."""
    for language, words in ENGINE_TEXTS.items():
        for word in words:
            yield PromptText(word, language, voices.get(language), "engine words", prefix)


# ---------------------------------------------------------------- the build

@dataclass
class BuildReport:
    """What a build did; ``failed`` holds (prompt, reason)."""

    rendered: list[PromptText] = field(default_factory=list)
    cached: list[PromptText] = field(default_factory=list)
    failed: list[tuple[PromptText, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (f"{len(self.rendered)} rendered, {len(self.cached)} cached, "
                f"{len(self.failed)} failed ({self.seconds:.1f} s)")


def load_manifest(directory: str | Path) -> dict[str, dict[str, Any]]:
    """The ``manifest.json`` of a prompt directory (empty if absent or unreadable)."""
    path = Path(directory) / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _merge_manifest(directory: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Add ``entries`` to the directory's manifest, safely against concurrent builders."""
    if not entries:
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "manifest.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            merged = load_manifest(directory)
            merged.update(entries)
            fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(merged, handle, ensure_ascii=False, indent=1, sort_keys=True)
                handle.write("\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, directory / "manifest.json")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is_rendered(path: Path) -> bool:
    try:
        return path.stat().st_size > 44   # more than a WAV header
    except OSError:
        return False


def _wanted_prompts(flows: Iterable[Flow], voices: Mapping[str, str], *,
                    registry: Mapping[str, StepType] | None, prefix: str, engine_words: bool
                    ) -> tuple[dict[str, PromptText], list[tuple[PromptText, str]]]:
    """Every distinct prompt the flows (and the engine's own words) need, by file name;
    and those that cannot be rendered (no voice for their language), with why."""
    todo: dict[str, PromptText] = {}
    failed: list[tuple[PromptText, str]] = []
    wanted = [p for flow in flows for p in iter_flow_prompts(flow, voices, registry=registry, prefix=prefix)]
    if engine_words:
        wanted += [p for p in iter_engine_prompts(voices, prefix=prefix) if p.voice is not None]
    for prompt in wanted:
        if prompt.voice is None:
            failed.append((prompt, f"no voice for language '{prompt.language}' "
                                   f"(add --voice {prompt.language}=<espeak-ng voice>)"))
        elif prompt.name not in todo:
            todo[prompt.name] = prompt
    return todo, failed


def missing_prompts(flows: Iterable[Flow], sounds_dir: str | Path = DEFAULT_SOUNDS_DIR,
                    voices: Mapping[str, str] = DEFAULT_VOICES, *,
                    prefix: str = DEFAULT_SOUNDS_PREFIX) -> list[PromptText]:
    """The text prompts the flows need that are not rendered in ``sounds_dir`` yet: what a
    caller would not hear (Asterisk plays nothing for a missing file)."""
    todo, failed = _wanted_prompts(flows, voices, registry=None, prefix=prefix, engine_words=True)
    sounds = Path(sounds_dir)
    return [p for p in todo.values() if not _is_rendered(sounds / f"{p.name}.wav")] + \
        [p for p, _ in failed]


def build_prompts(flows: Iterable[Flow], sounds_dir: str | Path = DEFAULT_SOUNDS_DIR,
                  voices: Mapping[str, str] = DEFAULT_VOICES, *,
                  synthesizer: Synthesizer | None = None,
                  registry: Mapping[str, StepType] | None = None,
                  prefix: str = DEFAULT_SOUNDS_PREFIX, engine_words: bool = True) -> BuildReport:
    """Render every static prompt text of ``flows`` (and the engine's own words) not rendered yet.

    A text already on disk (same text, voice and language -> same file name) is a cache
    hit and is not touched. The speech engine is only started when something is
    missing; if none is installed, ``TtsUnavailable`` is raised. ``prefix`` is the
    ``[agi] sounds_prefix`` the engine plays names under.
    """
    started = time.monotonic()
    sounds = Path(sounds_dir)
    report = BuildReport()
    todo, report.failed = _wanted_prompts(flows, voices, registry=registry, prefix=prefix,
                                           engine_words=engine_words)
    missing = []
    for prompt in todo.values():
        if _is_rendered(sounds / f"{prompt.name}.wav"):
            report.cached.append(prompt)
        else:
            missing.append(prompt)
    entries: dict[Path, dict[str, dict[str, Any]]] = {}
    if missing:
        synth = synthesizer or default_synthesizer()
        for prompt in missing:
            target = sounds / f"{prompt.name}.wav"
            try:
                duration = render_to_file(prompt.text, prompt.voice, target, synth)
            except TtsError as exc:
                report.failed.append((prompt, str(exc)))
                log.warning("event=prompt_failed where=%s language=%s error=%s",
                            prompt.where, prompt.language, exc)
                continue
            report.rendered.append(prompt)
            entries.setdefault(target.parent, {})[prompt.key] = {
                "text": prompt.text, "voice": prompt.voice, "language": prompt.language,
                "duration": round(duration, 3), "file": f"{prompt.name}.wav",
            }
    for directory, items in entries.items():
        _merge_manifest(directory, items)
    report.seconds = time.monotonic() - started
    return report


def build_system_prompts(sounds_dir: str | Path = DEFAULT_SOUNDS_DIR,
                         voices: Mapping[str, str] = DEFAULT_VOICES, *,
                         synthesizer: Synthesizer | None = None) -> BuildReport:
    """Render the dialplan's own prompts (``SYSTEM_PROMPTS``) under their fixed names.

    Their names cannot carry a hash, so the manifest decides: a prompt is re-rendered
    when its text or voice differs from what the manifest says was rendered.
    """
    started = time.monotonic()
    sounds = Path(sounds_dir)
    report = BuildReport()
    entries: dict[Path, dict[str, dict[str, Any]]] = {}
    synth = synthesizer
    for name, (language, text) in SYSTEM_PROMPTS.items():
        voice = voices.get(language)
        prompt = PromptText(text, language, voice, f"SYSTEM_PROMPTS[{name}]")
        if voice is None:
            report.failed.append((prompt, f"no voice for language '{language}'"))
            continue
        target = sounds / f"{name}.wav"
        seen = load_manifest(target.parent).get(target.stem, {})
        if _is_rendered(target) and seen.get("text") == text and seen.get("voice") == voice:
            report.cached.append(prompt)
            continue
        try:
            synth = synth or default_synthesizer()
            duration = render_to_file(text, voice, target, synth)
        except TtsError as exc:
            report.failed.append((prompt, str(exc)))
            continue
        report.rendered.append(prompt)
        entries.setdefault(target.parent, {})[target.stem] = {
            "text": text, "voice": voice, "language": language,
            "duration": round(duration, 3), "file": f"{name}.wav",
        }
    for directory, items in entries.items():
        _merge_manifest(directory, items)
    report.seconds = time.monotonic() - started
    return report


def parse_voice_options(options: Iterable[str], base: Mapping[str, str] = DEFAULT_VOICES) -> dict[str, str]:
    """``["en=gmw/en-us", "zh=sit/cmn"]`` over ``base``; raises ValueError on a malformed item."""
    voices = dict(base)
    for option in options:
        language, sep, voice = option.partition("=")
        if not sep or not language.strip() or not voice.strip():
            raise ValueError(f"--voice {option!r}: write LANGUAGE=VOICE, e.g. zh=sit/cmn")
        voices[language.strip()] = voice.strip()
    return voices
