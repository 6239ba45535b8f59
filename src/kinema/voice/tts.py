"""Offline text-to-speech with eSpeak NG, through the library the `espeakng-loader` wheel ships.

The wheel carries libespeak-ng (1.52) and its espeak-ng-data folder; we call the library's
synthesis API through ctypes in synchronous mode (`espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS)`
with a sample callback), so no program is run and nothing is played. When the wheel is
missing, Debian's libespeak-ng.so.1 (package `libespeak-ng1`, data in
/usr/lib/x86_64-linux-gnu/espeak-ng-data) is the fallback.

eSpeak keeps global state (voice, rate, pitch), so every synthesis holds one lock.
Output: mono float32 at eSpeak's rate (22050 Hz).

Voices are named "<language>+<variant>" (e.g. "en-us+f3"); the built-in voices kinema
offers are listed in BUILTIN_VOICES with a short description each.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from kinema.errors import InputError
from kinema.io import Audio

__all__ = [
    "BUILTIN_VOICES",
    "DEFAULT_RATE_WPM",
    "DEFAULT_VOICE",
    "MAX_PITCH_SEMITONES",
    "MAX_RATE_WPM",
    "MAX_TEXT_CHARS",
    "MIN_RATE_WPM",
    "SpeechSettings",
    "TTSError",
    "espeak_info",
    "synthesize",
]

# name → (eSpeak voice, description). Variants are eSpeak's own voice variants.
BUILTIN_VOICES: dict[str, tuple[str, str]] = {
    "alloy": ("en-us+m3", "US English, lower male"),
    "amber": ("en-us+f3", "US English, female"),
    "birch": ("en+m1", "British English, male"),
    "coral": ("en+f2", "British English, female"),
    "flint": ("en-us+m7", "US English, deep male"),
    "heron": ("en-us+f5", "US English, bright female"),
    "maple": ("en-gb-scotland+m2", "Scottish English, male"),
    "slate": ("en-us", "US English, eSpeak's plain voice"),
}
DEFAULT_VOICE = "amber"
DEFAULT_RATE_WPM = 165
MIN_RATE_WPM = 80
MAX_RATE_WPM = 400
MAX_TEXT_CHARS = 2000
# eSpeak's pitch parameter runs 0..100 (50 = the voice's own); measured on en-us+f3,
# en-us+m3 and en+m1 (median F0 of a sentence), 24 units move it by 3.4–4.0 semitones,
# so one semitone is about 6.5 units and ±7.5 semitones is the range eSpeak can give.
PITCH_UNITS_PER_SEMITONE = 6.5
MAX_PITCH_SEMITONES = 7.5

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()


class TTSError(InputError):
    """Text or settings the synthesiser refuses, or no synthesiser: one line for the user."""


@dataclass(frozen=True)
class SpeechSettings:
    """How to speak: an eSpeak voice, words per minute, pitch offset (semitones) and pitch
    range (eSpeak's 0..100, 50 = the voice's own; 0 is a monotone)."""

    voice: str = BUILTIN_VOICES[DEFAULT_VOICE][0]
    rate_wpm: float = DEFAULT_RATE_WPM
    pitch_semitones: float = 0.0
    pitch_range: int = 50
    word_gap_ms: int = 0


class _Engine:
    """The loaded library, initialised once for this process."""

    def __init__(self, library: Path, data: Path):
        self.library, self.data = library, data
        self.lib = ctypes.CDLL(str(library))
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise TTSError(f"eSpeak NG could not start with its data in {data}")
        self.rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the engine
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, events) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = go on

    def speak(self, text: str, settings: SpeechSettings) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(settings.voice.encode()) != 0:
            raise TTSError(f"eSpeak NG has no voice '{settings.voice}'")
        pitch = 50 + round(settings.pitch_semitones * PITCH_UNITS_PER_SEMITONE)
        for parameter, value in (
            (_RATE, round(settings.rate_wpm)),
            (_VOLUME, 100),
            (_PITCH, int(np.clip(pitch, 0, 100))),
            (_RANGE, int(np.clip(settings.pitch_range, 0, 100))),
            (_WORDGAP, max(0, round(settings.word_gap_ms / 10))),  # eSpeak counts 10 ms units
        ):
            self.lib.espeak_SetParameter(parameter, value, 0)
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise TTSError(f"eSpeak NG failed to speak the text (error {status})")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks = []
        return pcm.astype(np.float32) / 32768.0


def _locations() -> list[tuple[Path, Path]]:
    found = []
    try:
        import espeakng_loader

        found.append((Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())))
    except (ImportError, RuntimeError):
        pass
    for lib_dir in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"):
        found.append((Path(lib_dir) / "libespeak-ng.so.1", Path(lib_dir) / "espeak-ng-data"))
    return found


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    for library, data in _locations():
        if library.is_file() and data.is_dir():
            return _Engine(library, data)
    raise TTSError(
        "no eSpeak NG found: install the espeakng-loader wheel (or Debian's espeak-ng-data and libespeak-ng1)"
    )


def espeak_info() -> dict:
    """Where the library and its data were found, and its sample rate."""
    engine = _engine()
    return {"library": os.fspath(engine.library), "data": os.fspath(engine.data), "rate": engine.rate}


def check_text(text: str) -> str:
    """The text with outer whitespace removed; refuses empty, over-long or control text."""
    if not isinstance(text, str) or not text.strip():
        raise TTSError("empty narration text: say what should be spoken")
    text = " ".join(text.split())
    if len(text) > MAX_TEXT_CHARS:
        raise TTSError(f"narration text is {len(text)} characters; the most is {MAX_TEXT_CHARS}")
    if any(ord(c) < 32 for c in text):
        raise TTSError("narration text holds control characters")
    return text


def check_settings(settings: SpeechSettings) -> None:
    """Refuse a rate or pitch outside what eSpeak can do."""
    if not MIN_RATE_WPM <= settings.rate_wpm <= MAX_RATE_WPM:
        raise TTSError(
            f"--rate must be {MIN_RATE_WPM}..{MAX_RATE_WPM} words a minute, got {settings.rate_wpm:g}"
        )
    if abs(settings.pitch_semitones) > MAX_PITCH_SEMITONES:
        raise TTSError(
            f"--pitch must be within ±{MAX_PITCH_SEMITONES:g} semitones, got {settings.pitch_semitones:g}"
        )


def synthesize(text: str, settings: SpeechSettings = SpeechSettings()) -> Audio:
    """Speak TEXT offline; returns mono Audio at eSpeak's rate with leading and trailing
    silence trimmed to 50 ms. Refuses empty or over-long text and out-of-range settings."""
    text = check_text(text)
    check_settings(settings)
    engine = _engine()
    with _LOCK:
        samples = engine.speak(text, settings)
    if samples.size == 0 or not np.any(np.abs(samples) > 1e-3):
        raise TTSError("the text gives no speech (nothing pronounceable)")
    return Audio(_trim(samples, engine.rate), engine.rate)


def _trim(samples: np.ndarray, rate: int, keep: float = 0.05) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    start = max(0, loud[0] - int(keep * rate))
    stop = min(samples.size, loud[-1] + int(keep * rate))
    return samples[start:stop]
