import json
from pathlib import Path

import av
import numpy as np
import pytest

from kinema.errors import InputError
from kinema.io import Video, read_video, write_video
from kinema.provenance.audio_watermark import audio_key, detect_audio
from kinema.provenance.c2pa import read_manifest
from kinema.provenance.keys import key_paths
from kinema.publish import write_narration
from kinema.state import kinema_home
from kinema.voice.narrate import (
    MAX_SPEEDUP,
    NarrationError,
    check_narration_output,
    fit,
    narrate_video,
)
from kinema.voice.profiles import VoiceError, read_audio, resolve_voice

TEXT = "A red circle moves slowly to the right across a black background."


def _clip(seconds: float, fps: float = 8.0) -> Video:
    frames = np.zeros((round(seconds * fps), 32, 32, 3), np.uint8)
    frames[:, 8:24, 8:24, 0] = 200
    return Video(frames, fps)


def test_fit_lasts_exactly_the_clip():
    voice = resolve_voice("amber")
    padded = fit(TEXT, voice, 6.0)
    assert padded.audio.samples.shape[1] == round(6.0 * padded.audio.rate)
    assert padded.details["padded_seconds"] > 0 and padded.details["rate_wpm"] == voice.settings.rate_wpm
    natural = padded.details["speech_seconds"]
    squeezed = fit(TEXT, voice, natural * 0.85)  # needs a faster rate, within the limit
    assert voice.settings.rate_wpm < squeezed.details["rate_wpm"] <= voice.settings.rate_wpm * MAX_SPEEDUP
    with pytest.raises(NarrationError, match="shorten the text"):
        fit(TEXT, voice, natural / 2)


def test_narrated_mp4_has_one_aac_stream_of_the_clip_length(tmp_path):
    clip = _clip(4.0)
    video, settings = narrate_video(clip, TEXT, voice="flint", disclose_aloud=False)
    out = write_video(video, tmp_path / "n.mp4")
    with av.open(str(out)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        assert container.streams.audio[0].codec_context.name == "aac"
    back = read_video(out)
    assert back.audio is not None and abs(back.audio.seconds - clip.seconds) <= 0.05
    spoken = back.audio.samples[:, : back.audio.rate * 2]
    assert np.sqrt(np.mean(spoken**2)) > 0.02  # not silent where the text is spoken
    found = detect_audio(back.audio, audio_key())
    assert found.detected and found.payload.hex() == settings["narration"]["audio_watermark"]["payload"]
    assert settings["narration"]["synthetic"] is True and settings["narration"]["voice"] == "flint"


@pytest.mark.parametrize("output", ["clip.gif", "frames/", "frames"])
def test_narration_into_gif_or_frames_is_refused(tmp_path, output):
    with pytest.raises(NarrationError, match="cannot carry narration"):
        check_narration_output(tmp_path / output if output != "frames/" else f"{tmp_path}/frames/")


def test_wav_is_watermarked_signed_and_disclosed(tmp_path):
    out = tmp_path / "say.wav"
    short = write_narration(TEXT, tmp_path / "short.wav")
    record = write_narration(TEXT, out, voice="coral", disclose_aloud=True)
    assert record["path"] == str(out) and len(record["id"]) == 8  # a fresh review id per registration
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["narration"]["synthetic"] and sidecar["narration"]["disclosed_aloud"]
    audio = read_audio(out)
    assert audio.seconds > short["seconds"] + 1.0  # the spoken disclosure
    assert (
        detect_audio(audio, audio_key()).payload.hex() == sidecar["narration"]["audio_watermark"]["payload"]
    )
    manifest = read_manifest(out, key_paths(kinema_home()).root_cert)
    assert manifest["state"] == "Trusted"
    claims = manifest["active_manifest"]
    assert claims["digital_source_type"].endswith("/algorithmicMedia")
    assert (
        claims["generation"]["synthetic_voice"] is True and claims["generation"]["voice_profile"] == "coral"
    )
    assert claims["soft_binding"]["payload_hex"] == sidecar["narration"]["audio_watermark"]["payload"]


def test_refusals_write_nothing(tmp_path):
    out = tmp_path / "x.wav"
    with pytest.raises(VoiceError, match="unknown voice"):
        write_narration(TEXT, out, voice="nobody")
    with pytest.raises(InputError, match="empty"):
        write_narration("  ", out)
    with pytest.raises(InputError, match="characters"):
        write_narration("word " * 1000, out)
    with pytest.raises(InputError, match="does not exist"):
        write_narration(TEXT, tmp_path / "no" / "x.wav")
    with pytest.raises(NarrationError, match="shorten"):
        write_narration(TEXT, out, seconds=1.0)
    assert list(tmp_path.iterdir()) == []
