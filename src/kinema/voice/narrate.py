"""Narration: speech fitted to a clip, watermarked, and disclosed as synthetic.

`speak` says a text in a voice (built-in or enrolled, see profiles.resolve_voice).
`fit` makes the speech last exactly a clip's length: when it is too long, the rate is
raised up to MAX_SPEEDUP times the asked rate (and never past MAX_RATE_WPM); when it is
still too long the narration is refused with the numbers; when it is shorter, silence
pads the end. `narrate_video` puts the fitted, watermarked speech into a Video (for
publish to write as mp4/webm); `speech_track` makes the speech of a .wav of its own,
which `kinema.publish` writes like every other output (manifest algorithmicMedia,
naming the voice profile and its consent record).

With disclose_aloud, the spoken sentence DISCLOSURE is added at the end.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from kinema.errors import InputError
from kinema.io import Audio, Video, output_kind
from kinema.io.wav import write_wav
from kinema.provenance.audio_watermark import ALGORITHM, audio_key, embed_audio, payload_for
from kinema.provenance.c2pa import SoftBinding
from kinema.state import kinema_home
from kinema.voice.profiles import VoiceChoice, apply_tilt, resolve_voice
from kinema.voice.tts import DEFAULT_VOICE, MAX_RATE_WPM, check_text, synthesize

__all__ = [
    "DISCLOSURE",
    "MAX_SPEEDUP",
    "Narration",
    "NarrationError",
    "SpeechTrack",
    "check_narration_output",
    "fit",
    "narrate_video",
    "speak",
    "speech_track",
    "write_wav",
]

DISCLOSURE = "This voice is synthetic. It was made by a computer."
MAX_SPEEDUP = 1.35  # narration may be spoken up to this much faster than asked to fit a clip
SYNTHESIZER = "eSpeak NG (espeakng-loader)"


class NarrationError(InputError):
    """Narration that cannot be made as asked; the message is one line for the user."""


@dataclass(frozen=True)
class Narration:
    """Fitted speech and what to record about it (sidecar, manifest)."""

    audio: Audio
    details: dict[str, Any]


def check_narration_output(output: str | os.PathLike) -> str:
    """Refuse an output that cannot carry narration (a GIF, a frame folder); returns its
    kind ('wav', 'mp4' or 'webm'). Call before any work is done."""
    if Path(os.fspath(output)).suffix.lower() == ".wav" and not os.fspath(output).endswith(("/", os.sep)):
        return "wav"
    kind = output_kind(output)
    if kind == "gif":
        raise NarrationError("a GIF cannot carry narration; write .mp4, .webm or .wav")
    if kind == "frames":
        raise NarrationError("a folder of PNG frames cannot carry narration; write .mp4, .webm or .wav")
    return kind


def speak(
    text: str, voice: VoiceChoice, disclose_aloud: bool = False, rate_wpm: float | None = None
) -> Audio:
    """TEXT (and the spoken DISCLOSURE when asked) in VOICE, at RATE_WPM if given."""
    full = f"{text.strip()} {DISCLOSURE}" if disclose_aloud else text
    settings = voice.settings if rate_wpm is None else replace(voice.settings, rate_wpm=rate_wpm)
    return apply_tilt(synthesize(full, settings), voice.tilt_db_per_octave)


def fit(text: str, voice: VoiceChoice, seconds: float, disclose_aloud: bool = False) -> Narration:
    """Speech lasting exactly SECONDS (to the sample): faster within MAX_SPEEDUP if needed,
    padded with silence at the end if short. Refuses text that cannot fit."""
    if not seconds > 0:
        raise NarrationError("the clip has no length to narrate")
    asked = voice.settings.rate_wpm
    fastest = min(MAX_RATE_WPM, asked * MAX_SPEEDUP)
    rate, audio = asked, speak(text, voice, disclose_aloud)
    for _ in range(4):  # duration is nearly proportional to 1/rate; a few steps settle it
        if audio.seconds <= seconds or rate >= fastest:
            break
        rate = min(fastest, rate * audio.seconds / seconds * 1.02)
        audio = speak(text, voice, disclose_aloud, rate)
    if audio.seconds > seconds:
        raise NarrationError(
            f"the narration takes {audio.seconds:.1f} s even at {rate:.0f} words a minute (the fastest "
            f"allowed, {MAX_SPEEDUP:g}× the asked {asked:.0f}); the clip is {seconds:.1f} s: shorten the text "
            "or make the clip longer"
        )
    total = round(seconds * audio.rate)
    samples = np.zeros((1, total), np.float32)
    samples[:, : audio.samples.shape[1]] = audio.samples[:, :total]
    details = {
        **voice.details(),
        "rate_wpm": round(rate, 1),
        "speech_seconds": round(audio.seconds, 3),
        "padded_seconds": round(total / audio.rate - audio.seconds, 3),
    }
    return Narration(Audio(samples, audio.rate), details)


def _disclosure(
    text: str, details: dict, disclose_aloud: bool, key: bytes, audio: Audio
) -> tuple[Audio, dict]:
    """Watermark AUDIO and complete the narration record (synthetic, how, which mark)."""
    fields = {"text_sha256": hashlib.sha256(text.encode()).hexdigest(), **details}
    payload = payload_for(key, fields)
    marked = embed_audio(audio, payload, key)
    record = {
        "text": text,
        **fields,
        "synthetic": True,
        "synthesizer": SYNTHESIZER,
        "disclosed_aloud": disclose_aloud,
        "audio_watermark": {"algorithm": ALGORITHM, "payload": payload.hex()},
    }
    return marked, record


def narrate_video(video: Video, text: str, **voice: Any) -> tuple[Video, dict]:
    """VIDEO with TEXT narrated over its whole length (replacing any audio), watermarked.
    VOICE takes what speech_track takes (voice, scope, rate_wpm, pitch_semitones,
    disclose_aloud).

    Returns (video, settings): settings is {"narration": {...}} to merge into what publish
    records (voice, profile and consent record ids and hash, rate, watermark payload).
    Refuses an unknown voice, an enrolled one out of scope or expired, bad text or
    settings, and text that cannot fit the clip.
    """
    track = speech_track(text, seconds=video.seconds, **voice)
    return Video(video.frames, video.fps, track.audio), {"narration": track.settings["narration"]}


@dataclass(frozen=True)
class SpeechTrack:
    """Narration as its own file: the marked speech, its sidecar settings, and what its
    manifest records (generation settings and the voice profile and consent details)."""

    audio: Audio
    text: str
    settings: dict[str, Any]
    generation_settings: dict[str, Any]
    details: dict[str, Any]
    soft_binding: SoftBinding


def speech_track(
    text: str,
    voice: str = DEFAULT_VOICE,
    scope: str | None = None,
    rate_wpm: float | None = None,
    pitch_semitones: float = 0.0,
    disclose_aloud: bool = False,
    seconds: float | None = None,
) -> SpeechTrack:
    """TEXT spoken (fitted to SECONDS when given, e.g. a clip's length), audio-watermarked,
    with everything its .wav's sidecar and manifest record (`kinema.publish.publish_audio`
    writes it). Refuses everything `narrate_video` refuses."""
    text = check_text(text)
    choice = resolve_voice(voice, scope, rate_wpm, pitch_semitones)
    if seconds is None:
        audio = speak(text, choice, disclose_aloud)
        details = {**choice.details(), "speech_seconds": round(audio.seconds, 3)}
    else:
        narration = fit(text, choice, seconds, disclose_aloud)
        audio, details = narration.audio, narration.details
    audio, record = _disclosure(text, details, disclose_aloud, audio_key(kinema_home()), audio)
    settings = {
        "narration": record,
        "seed": 0,  # eSpeak is deterministic; 0 keeps the "wrote OUT (id, seed)" line whole
        "seconds": round(audio.seconds, 3),
        "rate": audio.rate,
    }
    return SpeechTrack(
        audio,
        text,
        settings,
        generation_settings={k: v for k, v in record.items() if k not in ("text", "text_sha256")},
        details={
            "synthetic_voice": True,
            "voice_profile": record.get("voice_profile_id", record["voice"]),
            "consent_record_id": record.get("consent_record_id"),
            "consent_record_sha256": record.get("consent_record_sha256"),
        },
        soft_binding=SoftBinding(ALGORITHM, record["audio_watermark"]["payload"]),
    )
