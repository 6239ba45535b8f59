import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from kinema.io import Audio
from kinema.provenance.audio_watermark import (
    PAYLOAD_BYTES,
    detect_audio,
    embed_audio,
    snr_db,
    verify_audio,
)
from kinema.voice.tts import SpeechSettings, synthesize

KEY = b"test-audio-key"
PAYLOAD = bytes.fromhex("c0ffee42")

_spec = importlib.util.spec_from_file_location(
    "audio_wm_bench", Path(__file__).parents[2] / "benchmarks" / "audio_watermark_robustness.py"
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def host():
    text = bench.SENTENCES[0] + " " + bench.SENTENCES[3]
    return synthesize(text, SpeechSettings(voice="en-us+m3"))


@pytest.fixture(scope="module")
def marked(host):
    return embed_audio(host, PAYLOAD, KEY)


def _window(audio: Audio, start: float, seconds: float = 3.0) -> Audio:
    a = int(start * audio.rate)
    return Audio(audio.samples[:, a : a + int(seconds * audio.rate)], audio.rate)


def test_round_trip_quietly(host, marked):
    assert PAYLOAD_BYTES * 8 >= 32
    assert marked.samples.shape == host.samples.shape and marked.rate == host.rate
    assert snr_db(host, marked) >= 25.0
    got = detect_audio(marked, KEY)
    assert got.detected and got.payload == PAYLOAD and got.crc_ok
    assert json.loads(json.dumps(got.to_dict()))["payload"] == PAYLOAD.hex()


def test_any_three_seconds_carry_it(marked):
    for start in (0.0, 0.77, 1.9, marked.seconds - 3.0):
        got = detect_audio(_window(marked, start), KEY)
        assert got.detected and got.payload == PAYLOAD, start


@pytest.mark.parametrize(
    "attack", ["aac_64k", "mp3_64k", "resample_16k", "gain_+6dB", "gain_-6dB", "cut_10pct", "noise_20dB"]
)
def test_survives_each_attack_in_three_seconds(marked, attack):
    attacked = bench.attacks(np.random.default_rng(1))[attack](marked)
    got = detect_audio(_window(attacked, 0.5), KEY)
    assert got.detected and got.payload == PAYLOAD
    assert got.score > got.threshold + 3  # a margin, not a coin flip


def test_no_mark_without_it_or_with_another_key(host, marked):
    assert not detect_audio(host, KEY).detected
    assert not detect_audio(marked, b"another key").detected
    rng = np.random.default_rng(0)
    noise = Audio((0.1 * rng.standard_normal(16000 * 3)).astype(np.float32), 16000)
    tone = Audio((0.3 * np.sin(np.arange(48000) * 2 * np.pi * 440 / 16000)).astype(np.float32), 16000)
    silence = Audio(np.zeros(48000, np.float32), 16000)
    for audio in (noise, tone, silence):
        got = detect_audio(audio, KEY)
        assert not got.detected


def test_short_audio_is_not_searched(marked):
    got = detect_audio(_window(marked, 0.0, 0.5), KEY)
    assert not got.detected and got.score == 0.0


def test_stereo_and_other_rates(host):
    stereo = Audio(np.repeat(host.samples, 2, axis=0) * 0.8, host.rate)
    marked = embed_audio(stereo, PAYLOAD, KEY)
    assert marked.samples.shape[0] == 2
    resampled = bench.attacks(np.random.default_rng(0))["resample_16k"](marked)
    assert detect_audio(resampled, KEY).payload == PAYLOAD


def test_bad_arguments_are_refused(host):
    with pytest.raises(ValueError, match="4 bytes"):
        embed_audio(host, b"12345", KEY)
    with pytest.raises(ValueError, match="key"):
        embed_audio(host, PAYLOAD, b"")
    with pytest.raises(ValueError, match="silent"):
        embed_audio(Audio(np.zeros(22050, np.float32), 22050), PAYLOAD, KEY)


def test_verify_audio_reports_for_kinema_verify(tmp_path, monkeypatch, host):
    from kinema.provenance.audio_watermark import audio_key

    monkeypatch.setenv("KINEMA_HOME", str(tmp_path))
    marked = embed_audio(host, PAYLOAD, audio_key())
    report = verify_audio(marked)
    assert report["checked"] and report["detected"] and report["payload"] == PAYLOAD.hex()
    assert verify_audio(None)["checked"] is False
