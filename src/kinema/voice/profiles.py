"""Voices: the built-in ones, and voice profiles enrolled from a person's recording with consent.

A voice profile is what eSpeak NG can take from a reference recording: the median pitch
and its range, the speaking rate, and the spectral tilt. It is applied as a pitch shift
and range (eSpeak's own parameters, on the built-in voice of the nearest register) plus a
tilt filter on the synthesised audio (a formant/spectral-balance transform). It is not a
voice clone; it is a likeness all the same, so it is stored only with consent:

1. `consent_phrase(name)` makes (once, then repeats) the phrase the voice's owner must
   read aloud for this enrolment: a fixed sentence naming the voice plus four random
   code words, stored as pending in KINEMA_HOME/consent.db.
2. `enroll(...)` takes the reference recording and the consent recording and refuses
   unless (a) both are the same speaker: cosine similarity of MFCC-statistics speaker
   embeddings ≥ SPEAKER_THRESHOLD (measured: see SPEAKER_EER below), and (b) the consent
   recording is that phrase by its duration and energy envelope: its speech lasts
   0.55–2.2 times eSpeak's own reading of the phrase, and its syllable nuclei (peaks of
   the energy envelope) number within ±40 % of eSpeak's reading's. No speech
   recogniser runs offline here, so the words themselves are not checked: a speaker
   reading any text of the same length and rhythm passes (b). Say so to users.
3. The profile and its consent record (owner, scope, expiry, hashes of both recordings
   and the phrase, the similarity) go into the `voice_profiles` table of consent.db.
   `resolve_voice(name, scope)` refuses an expired, revoked or out-of-scope profile.

Every enrolment attempt and every use (pass or refusal) is appended to the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import numpy as np
from scipy import signal
from scipy.fft import dct

from kinema.errors import InputError
from kinema.io import Audio
from kinema.provenance import audit
from kinema.provenance.policy import CONSENT_DB, scope_covers
from kinema.state import kinema_home
from kinema.voice.tts import (
    BUILTIN_VOICES,
    DEFAULT_RATE_WPM,
    MAX_PITCH_SEMITONES,
    MAX_RATE_WPM,
    MIN_RATE_WPM,
    SpeechSettings,
    synthesize,
)

__all__ = [
    "SPEAKER_THRESHOLD",
    "VoiceChoice",
    "VoiceError",
    "VoiceProfile",
    "VoiceRecord",
    "consent_phrase",
    "enroll",
    "list_voices",
    "read_audio",
    "resolve_voice",
    "revoke_voice",
    "speaker_embedding",
    "speaker_similarity",
    "voice_features",
]

ANALYSIS_RATE = 16000
MIN_REFERENCE_SECONDS = 3.0
MIN_CONSENT_SECONDS = 2.0
MAX_RECORDING_SECONDS = 600.0
# Cosine similarity of speaker embeddings at or above which two recordings are taken to
# be one speaker. Measured on 40 eSpeak voice variants not in the background set (3 texts
# each, rates ±20 %; 120 same-voice pairs, 7020 different-voice pairs): equal error rate
# about 4.3 % at 0.76; at 0.80 false accepts 3.7 %, false rejects 6.7 %. We sit above the
# EER because accepting another speaker's consent is the worse error. Several eSpeak
# variants are near-copies of each other (adam, benjamin, Reed), which sets most false
# accepts; no recorded human speech was available to measure on.
SPEAKER_THRESHOLD = 0.80
PHRASE_DURATION_RANGE = (0.55, 2.2)
PHRASE_SYLLABLE_TOLERANCE = 0.40
TILT_LIMIT_DB = 6.0  # per octave, the most the tilt filter changes
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
CODE_WORDS = (
    "amber anchor apple arrow bamboo banjo beacon bison canyon cedar cobalt comet copper "
    "cricket dolphin ember falcon fern garnet glacier granite harbor hazel island jasper "
    "juniper kettle lantern lemon maple marble meadow nickel orbit otter pebble pepper "
    "planet quartz raven river saddle salmon silver summit tiger timber tulip velvet walnut "
    "willow yellow zephyr"
).split()


class VoiceError(InputError):
    """A voice that cannot be used or enrolled; the message is one line for the user."""


# ----------------------------------------------------------------------------- audio in


def read_audio(path: str | os.PathLike, label: str = "recording") -> Audio:
    """Decode the first audio stream of PATH (wav, mp3, m4a, ogg, mp4, ...) as mono Audio.

    Refuses (VoiceError) a missing file, one that is not audio, and one over 10 minutes.
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise VoiceError(f"{label} '{p}' does not exist")
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise VoiceError(f"{label} '{p}' has no audio stream")
            stream = container.streams.audio[0]
            rate = stream.rate or stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            total = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    data = out.to_ndarray().reshape(-1)
                    chunks.append(data)
                    total += data.size
                if total > MAX_RECORDING_SECONDS * rate:
                    raise VoiceError(f"{label} '{p}' is longer than {MAX_RECORDING_SECONDS:g} seconds")
    except VoiceError:
        raise
    except (av.FFmpegError, ValueError, OSError, IndexError) as exc:
        raise VoiceError(f"{label} '{p}' is not audio kinema can read ({type(exc).__name__})") from None
    if not chunks or not rate:
        raise VoiceError(f"{label} '{p}' holds no audio samples")
    return Audio(np.concatenate(chunks).astype(np.float32)[None], int(rate))


def _mono16k(audio: Audio) -> np.ndarray:
    x = np.asarray(audio.samples, np.float64).mean(axis=0)
    if audio.rate != ANALYSIS_RATE:
        g = math.gcd(audio.rate, ANALYSIS_RATE)
        x = signal.resample_poly(x, ANALYSIS_RATE // g, audio.rate // g)
    return x


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    if x.size < size:
        x = np.pad(x, (0, size - x.size))
    count = 1 + (x.size - size) // hop
    index = np.arange(size)[None] + hop * np.arange(count)[:, None]
    return x[index]


# ----------------------------------------------------------------------------- features


def _active(frames: np.ndarray) -> np.ndarray:
    """Frames that hold speech: energy within 35 dB of the loudest frames."""
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return energy > np.percentile(energy, 95) - 35


@lru_cache(maxsize=1)
def _mel_matrix(n_fft: int = 512, n_mels: int = 40) -> np.ndarray:
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    edges = hz(np.linspace(mel(60), mel(7600), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1 / ANALYSIS_RATE)
    bank = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i : i + 3]
        bank[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return bank


def _mfcc(x: np.ndarray) -> np.ndarray:
    """MFCCs c1..c19 (frames, 19) of active frames: 25 ms Hamming frames, 10 ms hop."""
    frames = _frames(x, 400, 160)
    frames = frames[_active(frames)]
    spec = np.abs(np.fft.rfft(frames * np.hamming(400), 512)) ** 2
    logmel = np.log(spec @ _mel_matrix().T + 1e-10)
    return dct(logmel, type=2, norm="ortho", axis=1)[:, 1:20]


def speaker_embedding(audio: Audio) -> np.ndarray:
    """A speaker embedding from MFCC statistics: the mean and standard deviation of c1..c19
    over speech frames (38 numbers), z-scored
    against a background population (`_background`), then L2-normalised. Compare two with
    `speaker_similarity`."""
    mean, std = _background()
    z = (_raw_stats(audio) - mean) / std
    return z / (np.linalg.norm(z) + 1e-12)


def _raw_stats(audio: Audio) -> np.ndarray:
    c = _mfcc(_mono16k(audio))
    if len(c) < 10:
        raise VoiceError("the recording holds too little speech to tell who is speaking")
    return np.concatenate([c.mean(0), c.std(0)])


@lru_cache(maxsize=1)
def _background() -> tuple[np.ndarray, np.ndarray]:
    """Population mean and spread of the raw statistics, from eSpeak's twelve US English
    variants (m1–m7, f1–f5) reading three texts each: embeddings are z-scored against it,
    so what all speech shares cancels and what tells speakers apart remains."""
    stats = [
        _raw_stats(synthesize(text, SpeechSettings(voice=f"en-us+{variant}")))
        for variant in ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
        for text in _BACKGROUND_TEXTS
    ]
    return np.mean(stats, axis=0), np.std(stats, axis=0) + 1e-6


_BACKGROUND_TEXTS = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A rainbow is a division of white light into many beautiful colours.",
)


def speaker_similarity(a: Audio, b: Audio) -> float:
    """Cosine similarity of the two recordings' speaker embeddings (1 = same statistics)."""
    return float(np.dot(speaker_embedding(a), speaker_embedding(b)))


def _pitch_track(x: np.ndarray) -> np.ndarray:
    """F0 in Hz of voiced frames (40 ms frames, 10 ms hop, 60–420 Hz, normalised
    autocorrelation peak ≥ 0.5)."""
    frames = _frames(x, 640, 160)
    frames = frames[_active(frames)]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames * np.hanning(640), 1280)
    ac = np.fft.irfft(np.abs(spec) ** 2, 1280)[:, :640]
    ac /= ac[:, :1] + 1e-12
    lo, hi = ANALYSIS_RATE // 420, ANALYSIS_RATE // 60
    lags = lo + np.argmax(ac[:, lo:hi], axis=1)
    peaks = ac[np.arange(len(ac)), lags]
    voiced = peaks >= 0.5
    return ANALYSIS_RATE / lags[voiced].astype(np.float64)


def _syllable_nuclei(x: np.ndarray) -> tuple[int, float]:
    """(count of syllable nuclei, seconds of speech from first to last) from the 300–2500 Hz
    energy envelope: peaks at least 80 ms apart that stand ≥ 4 dB above their surroundings
    and lie within 25 dB of the loudest."""
    sos = signal.butter(4, (300, 2500), "bandpass", fs=ANALYSIS_RATE, output="sos")
    band = signal.sosfiltfilt(sos, x)
    frames = _frames(band, 320, 160)  # 20 ms, 10 ms hop
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    db = np.convolve(db, np.hanning(5) / np.hanning(5).sum(), mode="same")
    top = np.percentile(db, 97)
    peaks, _ = signal.find_peaks(db, distance=8, prominence=4, height=top - 25)
    speech = np.flatnonzero(db > top - 30)
    seconds = (speech[-1] - speech[0] + 1) * 0.01 if speech.size else 0.0
    return int(peaks.size), float(seconds)


def _tilt(x: np.ndarray) -> float:
    """Spectral tilt in dB per octave: the slope of the long-term speech spectrum from
    150 Hz to 5 kHz against log2 frequency."""
    frames = _frames(x, 512, 256)
    frames = frames[_active(frames)]
    spec = np.mean(np.abs(np.fft.rfft(frames * np.hanning(512), 512)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(512, 1 / ANALYSIS_RATE)
    band = (freqs >= 150) & (freqs <= 5000)
    slope, _ = np.polyfit(np.log2(freqs[band]), 10 * np.log10(spec[band] + 1e-12), 1)
    return float(slope)


def voice_features(audio: Audio) -> dict[str, float]:
    """What a recording says about its voice: median_f0 (Hz), f0_range (semitones between
    the 10th and 90th percentile), syllables_per_second, tilt_db_per_octave, seconds."""
    x = _mono16k(audio)
    f0 = _pitch_track(x)
    if f0.size < 10:
        raise VoiceError("the recording has too little voiced speech to measure its pitch")
    nuclei, seconds = _syllable_nuclei(x)
    p10, p50, p90 = np.percentile(f0, [10, 50, 90])
    return {
        "median_f0": float(p50),
        "f0_range": float(12 * np.log2(p90 / p10)),
        "syllables_per_second": nuclei / max(seconds, 1e-3),
        "tilt_db_per_octave": _tilt(x),
        "seconds": seconds,
    }


# ----------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class VoiceProfile:
    """How to speak like a reference: a built-in base voice, a pitch offset (semitones),
    eSpeak's pitch range (0..100), a rate (wpm) and a tilt correction (dB per octave)."""

    base_voice: str
    pitch_semitones: float
    pitch_range: int
    rate_wpm: float
    tilt_db_per_octave: float
    measured: dict[str, float] = field(default_factory=dict)

    def settings(self, rate_wpm: float | None = None, pitch_semitones: float = 0.0) -> SpeechSettings:
        pitch = float(
            np.clip(self.pitch_semitones + pitch_semitones, -MAX_PITCH_SEMITONES, MAX_PITCH_SEMITONES)
        )
        return SpeechSettings(
            voice=BUILTIN_VOICES[self.base_voice][0],
            rate_wpm=rate_wpm if rate_wpm is not None else self.rate_wpm,
            pitch_semitones=pitch,
            pitch_range=self.pitch_range,
        )


@lru_cache(maxsize=1)
def _builtin_features() -> dict[str, dict[str, float]]:
    text = "The quick brown fox jumps over the lazy dog, and then it runs away into the woods."
    return {
        name: voice_features(synthesize(text, SpeechSettings(voice=voice, rate_wpm=DEFAULT_RATE_WPM)))
        for name, (voice, _) in BUILTIN_VOICES.items()
    }


def derive_profile(reference: Audio) -> VoiceProfile:
    """The profile of REFERENCE: the built-in voice nearest in pitch, shifted to its median
    pitch, its range scaled, its rate in words a minute (from syllables a second, calibrated
    on eSpeak at DEFAULT_RATE_WPM), and the tilt difference to correct."""
    ref = voice_features(reference)
    builtins = _builtin_features()
    base = min(builtins, key=lambda n: abs(math.log2(builtins[n]["median_f0"] / ref["median_f0"])))
    b = builtins[base]
    pitch = float(
        np.clip(12 * math.log2(ref["median_f0"] / b["median_f0"]), -MAX_PITCH_SEMITONES, MAX_PITCH_SEMITONES)
    )
    pitch_range = int(np.clip(round(50 * ref["f0_range"] / max(b["f0_range"], 0.5)), 0, 100))
    rate = DEFAULT_RATE_WPM * ref["syllables_per_second"] / max(b["syllables_per_second"], 0.1)
    rate = float(np.clip(rate, MIN_RATE_WPM, MAX_RATE_WPM))
    tilt = float(np.clip(ref["tilt_db_per_octave"] - b["tilt_db_per_octave"], -TILT_LIMIT_DB, TILT_LIMIT_DB))
    return VoiceProfile(base, round(pitch, 2), pitch_range, round(rate, 1), round(tilt, 2), ref)


def apply_tilt(audio: Audio, db_per_octave: float) -> Audio:
    """AUDIO with its spectral balance tilted by DB_PER_OCTAVE around 1 kHz (loudness kept)."""
    if abs(db_per_octave) < 0.05:
        return audio
    x = np.asarray(audio.samples, np.float64)
    freqs = np.fft.rfftfreq(x.shape[1], 1 / audio.rate)
    gain_db = db_per_octave * np.log2(np.maximum(freqs, 50.0) / 1000.0)
    y = np.fft.irfft(np.fft.rfft(x, axis=1) * 10 ** (gain_db / 20), x.shape[1], axis=1)
    y *= math.sqrt(np.sum(x * x) / max(np.sum(y * y), 1e-20))
    peak = np.max(np.abs(y))
    if peak > 0.99:
        y *= 0.99 / peak
    return Audio(y.astype(np.float32), audio.rate)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class VoiceRecord:
    """An enrolled voice and its consent: who (owner), for what (scope), until when
    (expires, inclusive, UTC), from which recordings (their SHA-256), with what evidence."""

    id: str
    name: str
    owner: str
    scope: str
    expires: dt.date
    created: str
    reference_sha256: str
    consent_sha256: str
    phrase_sha256: str
    similarity: float
    profile: VoiceProfile
    revoked: str | None = None

    def status(self, today: dt.date | None = None) -> str:
        if self.revoked is not None:
            return "revoked"
        return "valid" if self.expires >= (today or _today()) else "expired"

    def consent_dict(self) -> dict[str, Any]:
        """The consent record proper (what `consent_hash` covers)."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "scope": self.scope,
            "expires": self.expires.isoformat(),
            "created": self.created,
            "reference_sha256": self.reference_sha256,
            "consent_sha256": self.consent_sha256,
            "phrase_sha256": self.phrase_sha256,
            "similarity": self.similarity,
        }

    @property
    def consent_hash(self) -> str:
        """SHA-256 of the consent record's canonical JSON; C2PA manifests name it."""
        text = json.dumps(self.consent_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.consent_dict(),
            "consent_record_sha256": self.consent_hash,
            "profile": asdict(self.profile),
            "revoked": self.revoked,
            "status": self.status(),
        }


@dataclass(frozen=True)
class VoiceChoice:
    """A voice ready to use: speech settings, tilt correction, and what to disclose."""

    name: str
    settings: SpeechSettings
    tilt_db_per_octave: float = 0.0
    record: VoiceRecord | None = None

    def details(self) -> dict[str, Any]:
        """What manifests and sidecars record about the voice."""
        data: dict[str, Any] = {
            "voice": self.name,
            "espeak_voice": self.settings.voice,
            "rate_wpm": round(self.settings.rate_wpm, 1),
            "pitch_semitones": round(self.settings.pitch_semitones, 2),
            "synthesizer": "eSpeak NG",
        }
        if self.record is not None:
            data.update(
                voice_profile_id=self.record.id,
                consent_record_id=self.record.id,
                consent_record_sha256=self.record.consent_hash,
                consent_owner=self.record.owner,
                consent_scope=self.record.scope,
                consent_expires=self.record.expires.isoformat(),
            )
        return data


_SCHEMA = """
CREATE TABLE IF NOT EXISTS voice_phrases (
    name TEXT PRIMARY KEY,
    phrase TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS voice_profiles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    record TEXT NOT NULL,
    revoked TEXT
);
CREATE INDEX IF NOT EXISTS voice_profiles_by_name ON voice_profiles (name);
"""


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    """A connection to HOME/consent.db (shared with image consent) in one transaction."""
    with closing(sqlite3.connect(kinema_home() / CONSENT_DB, timeout=30)) as connection:
        with connection:
            connection.executescript(_SCHEMA)
            yield connection


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise VoiceError(
            f"voice name '{name}' must be 2–32 characters: lower-case letters, digits, - or _, starting with a letter"
        )
    if name in BUILTIN_VOICES:
        raise VoiceError(f"'{name}' is a built-in voice; choose another name")
    return name


def consent_phrase(name: str) -> str:
    """The phrase the voice's owner reads for enrolling NAME (made once, then the same until
    the enrolment succeeds)."""
    name = _check_name(name)
    with _db() as db:
        row = db.execute("SELECT phrase FROM voice_phrases WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        words = " ".join(secrets.choice(CODE_WORDS) for _ in range(4))
        phrase = (
            f"I agree that kinema may make a synthetic voice called {name} from my recordings. "
            f"My code words are {words}."
        )
        db.execute("INSERT INTO voice_phrases VALUES (?, ?, ?)", (name, phrase, _now()))
    audit.append("voice.phrase", name=name, phrase_sha256=_sha(phrase.encode()))
    return phrase


def check_phrase(consent: Audio, phrase: str) -> dict[str, float]:
    """Refuse a consent recording whose speech does not fit PHRASE by duration and syllable
    count (against eSpeak's reading at DEFAULT_RATE_WPM); returns the measurements."""
    spoken_n, spoken_s = _syllable_nuclei(_mono16k(consent))
    expected_n, expected_s = _syllable_nuclei(_mono16k(synthesize(phrase)))
    facts = {
        "syllables": spoken_n,
        "seconds": spoken_s,
        "expected_syllables": expected_n,
        "expected_seconds": expected_s,
    }
    lo, hi = PHRASE_DURATION_RANGE
    if not lo * expected_s <= spoken_s <= hi * expected_s:
        raise VoiceError(
            f"the consent recording's speech lasts {spoken_s:.1f} s; reading the phrase takes about "
            f"{expected_s:.1f} s (accepted {lo * expected_s:.1f}–{hi * expected_s:.1f} s): record the phrase itself"
        )
    if abs(spoken_n - expected_n) > PHRASE_SYLLABLE_TOLERANCE * expected_n:
        raise VoiceError(
            f"the consent recording has about {spoken_n} syllables; the phrase has about {expected_n}: "
            "record the phrase itself"
        )
    return facts


def enroll(
    name: str,
    reference: str | os.PathLike | Audio,
    consent: str | os.PathLike | Audio,
    owner: str,
    scope: str,
    expires: dt.date | str,
) -> VoiceRecord:
    """Enrol voice NAME from REFERENCE (≥ 3 s of the person's speech) with CONSENT (the same
    person reading `consent_phrase(NAME)`), for OWNER, SCOPE, until EXPIRES (YYYY-MM-DD).

    Refuses (VoiceError, audit-logged) a bad name, owner, scope or date, a recording that is
    not audio or too short, no phrase issued for NAME, another speaker in the consent
    recording, and a consent recording that does not fit the phrase.
    """
    log: dict[str, Any] = {"name": name, "owner": owner, "scope": scope, "expires": str(expires)}
    try:
        record = _enroll(name, reference, consent, owner, scope, expires, log)
    except InputError as exc:
        audit.append("voice.enroll", decision="refuse", reason=str(exc), **log)
        raise
    audit.append("voice.enroll", decision="pass", **record.to_dict())
    return record


def _enroll(name, reference, consent, owner, scope, expires, log) -> VoiceRecord:
    name = _check_name(name)
    owner, scope = (owner or "").strip(), (scope or "").strip()
    if not owner:
        raise VoiceError("a voice enrolment needs the owner's name (--owner)")
    if not scope:
        raise VoiceError("a voice enrolment needs a scope (--scope), e.g. 'kinema demo narration'")
    until = _parse_date(expires)
    if until < _today():
        raise VoiceError(f"expiry {until.isoformat()} is in the past")
    ref = reference if isinstance(reference, Audio) else read_audio(reference, "reference")
    con = consent if isinstance(consent, Audio) else read_audio(consent, "consent recording")
    if ref.seconds < MIN_REFERENCE_SECONDS:
        raise VoiceError(
            f"the reference recording is {ref.seconds:.1f} s; it needs at least {MIN_REFERENCE_SECONDS:g} s"
        )
    if con.seconds < MIN_CONSENT_SECONDS:
        raise VoiceError(
            f"the consent recording is {con.seconds:.1f} s; it needs at least {MIN_CONSENT_SECONDS:g} s"
        )
    with _db() as db:
        row = db.execute("SELECT phrase FROM voice_phrases WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise VoiceError(
            f"no consent phrase issued for '{name}': run `kinema voice phrase {name}` and record it"
        )
    phrase = row[0]
    similarity = speaker_similarity(ref, con)
    log.update(similarity=round(similarity, 4), threshold=SPEAKER_THRESHOLD)
    if similarity < SPEAKER_THRESHOLD:
        raise VoiceError(
            f"the consent recording is not the reference's speaker (similarity {similarity:.2f} < "
            f"{SPEAKER_THRESHOLD:.2f}): the voice's owner must record the consent phrase"
        )
    log["phrase_check"] = check_phrase(con, phrase)
    record = VoiceRecord(
        id="v" + secrets.token_hex(5),
        name=name,
        owner=owner,
        scope=scope,
        expires=until,
        created=_now(),
        reference_sha256=_sha(ref.samples.tobytes()),
        consent_sha256=_sha(con.samples.tobytes()),
        phrase_sha256=_sha(phrase.encode()),
        similarity=round(similarity, 4),
        profile=derive_profile(ref),
    )
    with _db() as db:
        db.execute(
            "INSERT INTO voice_profiles (id, name, record, revoked) VALUES (?, ?, ?, NULL)",
            (record.id, name, json.dumps(record.to_dict(), sort_keys=True)),
        )
        db.execute("DELETE FROM voice_phrases WHERE name = ?", (name,))
    return record


def _load(row: tuple) -> VoiceRecord:
    data = json.loads(row[0])
    profile = VoiceProfile(**data["profile"])
    keys = (
        "id",
        "name",
        "owner",
        "scope",
        "created",
        "reference_sha256",
        "consent_sha256",
        "phrase_sha256",
        "similarity",
    )
    return VoiceRecord(
        **{k: data[k] for k in keys},
        expires=dt.date.fromisoformat(data["expires"]),
        profile=profile,
        revoked=row[1],
    )


def enrolled(name: str | None = None) -> list[VoiceRecord]:
    """Enrolled voices (all, or those named NAME), oldest first."""
    query, args = "SELECT record, revoked FROM voice_profiles", ()
    if name is not None:
        query, args = query + " WHERE name = ?", (name,)
    with _db() as db:
        records = [_load(row) for row in db.execute(query, args)]
    return sorted(records, key=lambda r: (r.created, r.id))


def revoke_voice(name: str, reason: str | None = None) -> list[VoiceRecord]:
    """Revoke every live enrolment of NAME; returns them. VoiceError when there is none."""
    live = [r for r in enrolled(name) if r.revoked is None]
    if not live:
        raise VoiceError(f"no live enrolment of voice '{name}'")
    when = _now()
    with _db() as db:
        db.execute("UPDATE voice_profiles SET revoked = ? WHERE name = ? AND revoked IS NULL", (when, name))
    for record in live:
        audit.append("voice.revoke", id=record.id, name=name, reason=reason)
    return enrolled(name)


def list_voices() -> list[dict[str, Any]]:
    """Built-in voices, then enrolled ones, as dicts (name, kind, description/status)."""
    voices = [
        {"name": n, "kind": "built-in", "description": d, "espeak_voice": v}
        for n, (v, d) in BUILTIN_VOICES.items()
    ]
    for record in enrolled():
        voices.append(
            {
                "name": record.name,
                "kind": "enrolled",
                "id": record.id,
                "owner": record.owner,
                "scope": record.scope,
                "expires": record.expires.isoformat(),
                "status": record.status(),
            }
        )
    return voices


def resolve_voice(
    name: str, scope: str | None = None, rate_wpm: float | None = None, pitch_semitones: float = 0.0
) -> VoiceChoice:
    """The voice NAME ready to use: a built-in one, or an enrolled profile whose consent
    is live and covers SCOPE. Enrolled voices need a scope; every use of one, allowed or
    refused, is audit-logged. Refuses an unknown name (listing the voices), and an
    expired, revoked or out-of-scope profile."""
    name = (name or "").strip()
    if name in BUILTIN_VOICES:
        settings = SpeechSettings(
            voice=BUILTIN_VOICES[name][0],
            rate_wpm=rate_wpm if rate_wpm is not None else DEFAULT_RATE_WPM,
            pitch_semitones=pitch_semitones,
        )
        return VoiceChoice(name, settings)
    records = enrolled(name) if NAME_PATTERN.match(name) else []
    if not records:
        known = ", ".join(list(BUILTIN_VOICES) + sorted({r.name for r in enrolled()}))
        raise VoiceError(f"unknown voice '{name}'; voices: {known}")
    log = {"name": name, "scope": scope}
    today = _today()
    live = [r for r in records if r.status(today) == "valid"]
    fitting = [r for r in live if scope is not None and scope_covers(r.scope, scope)]
    if not fitting:
        reason = _refusal(name, records, live, scope)
        audit.append("voice.use", decision="refuse", reason=reason, **log)
        raise VoiceError(reason)
    record = max(fitting, key=lambda r: r.expires)
    audit.append("voice.use", decision="pass", id=record.id, consent_record_sha256=record.consent_hash, **log)
    settings = record.profile.settings(rate_wpm, pitch_semitones)
    return VoiceChoice(name, settings, record.profile.tilt_db_per_octave, record)


def _refusal(name: str, records: list[VoiceRecord], live: list[VoiceRecord], scope: str | None) -> str:
    if live:
        scopes = ", ".join(sorted({f"'{r.scope}'" for r in live}))
        if scope is None:
            return (
                f"voice '{name}' is an enrolled likeness: name the use with --scope (consent covers {scopes})"
            )
        return f"voice '{name}' has consent for {scopes}, not '{scope}'"
    unrevoked = [r for r in records if r.revoked is None]
    if unrevoked:
        last = max(unrevoked, key=lambda r: r.expires)
        return f"voice '{name}': its consent expired on {last.expires.isoformat()}; enrol again with a new --expires"
    return f"voice '{name}': its consent was revoked"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise VoiceError(f"expiry must be a date as YYYY-MM-DD, got '{value}'") from None


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
