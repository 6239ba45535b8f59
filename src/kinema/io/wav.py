"""Writing speech as 16-bit PCM WAV (the standard library's wave module)."""

from __future__ import annotations

import os
import wave

import numpy as np

from kinema.io.video import Audio


def write_wav(audio: Audio, path: str | os.PathLike) -> None:
    """16-bit PCM WAV of AUDIO at PATH, written in place (callers write to a temp path)."""
    pcm = np.clip(np.round(audio.samples.T * 32767), -32768, 32767).astype("<i2")
    with wave.open(os.fspath(path), "wb") as handle:
        handle.setnchannels(audio.samples.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(audio.rate)
        handle.writeframes(pcm.tobytes())
