import numpy as np
import pytest

from kinema.voice.profiles import voice_features
from kinema.voice.tts import (
    BUILTIN_VOICES,
    MAX_TEXT_CHARS,
    SpeechSettings,
    TTSError,
    espeak_info,
    synthesize,
)

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs into the woods."


def test_the_wheel_alone_is_enough():
    info = espeak_info()
    assert "espeakng_loader" in info["library"] and info["rate"] == 22050


def test_every_builtin_voice_speaks_and_they_differ():
    medians = {}
    for name, (voice, _) in BUILTIN_VOICES.items():
        audio = synthesize("A red circle moves to the right.", SpeechSettings(voice=voice))
        assert audio.rate == 22050 and audio.samples.shape[0] == 1
        assert 1.0 < audio.seconds < 4.0
        assert np.sqrt(np.mean(audio.samples**2)) > 0.02  # not silent
        medians[name] = voice_features(synthesize(SENTENCE, SpeechSettings(voice=voice)))["median_f0"]
    assert max(medians.values()) > 1.4 * min(medians.values())  # male and female registers


def test_rate_and_pitch_do_what_they_say():
    slow = synthesize(SENTENCE, SpeechSettings(rate_wpm=120))
    fast = synthesize(SENTENCE, SpeechSettings(rate_wpm=240))
    assert 1.6 < slow.seconds / fast.seconds < 2.4
    base = voice_features(synthesize(SENTENCE))["median_f0"]
    up = voice_features(synthesize(SENTENCE, SpeechSettings(pitch_semitones=6)))["median_f0"]
    assert 4.5 < 12 * np.log2(up / base) < 7.5


@pytest.mark.parametrize(
    "text, settings, words",
    [
        ("", SpeechSettings(), "empty"),
        ("   ", SpeechSettings(), "empty"),
        ("x" * (MAX_TEXT_CHARS + 1), SpeechSettings(), "characters"),
        ("hello", SpeechSettings(voice="no-such-voice"), "no voice"),
        ("hello", SpeechSettings(rate_wpm=20), "--rate"),
        ("hello", SpeechSettings(pitch_semitones=20), "--pitch"),
    ],
)
def test_bad_input_is_refused_in_one_line(text, settings, words):
    with pytest.raises(TTSError, match=words) as info:
        synthesize(text, settings)
    assert "\n" not in str(info.value)
