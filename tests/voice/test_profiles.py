import datetime as dt
import itertools

import numpy as np
import pytest

from kinema.governance import audit, consent
from kinema.io import Audio
from kinema.voice import profiles
from kinema.voice.consent_words import phrase_text
from kinema.voice.narrate import write_wav
from kinema.voice.profiles import (
    SPEAKER_THRESHOLD,
    VoiceError,
    consent_phrase,
    enroll,
    resolve_voice,
    speaker_similarity,
)
from kinema.voice.tts import BUILTIN_VOICES, SpeechSettings, synthesize

READING = (
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow. "
    "The rainbow is a division of white light into many beautiful colours."
)
NEXT_YEAR = (dt.date.today() + dt.timedelta(days=365)).isoformat()
CODE_WORDS_READ = ["chimpanzee", "gingerbread", "skyscraper", "tablecloth"]


def _say(text, voice="en+Annie", rate=160):
    return synthesize(text, SpeechSettings(voice=voice, rate_wpm=rate))


@pytest.fixture
def files(tmp_path):
    def make(name, audio):
        path = tmp_path / name
        write_wav(audio, path)
        return path

    return make


def _events(name):
    return [r for r in audit.read_log() if r["event"] == name]


def test_builtin_voices_are_different_speakers():
    clips = {n: _say(READING, v) for n, (v, _) in BUILTIN_VOICES.items()}
    for a, b in itertools.combinations(clips, 2):
        assert speaker_similarity(clips[a], clips[b]) < SPEAKER_THRESHOLD, (a, b)
    # the same voice reading a phrase-length text at another rate: accepted, bar the
    # measured false-reject rate (~7 % at the threshold; one of these eight sits just under)
    phrase = "I agree that kinema may make a synthetic voice called ada from my recordings. My code words are maple river tiger velvet."
    accepted = [
        speaker_similarity(clips[n], _say(phrase, v, 150)) >= SPEAKER_THRESHOLD
        for n, (v, _) in BUILTIN_VOICES.items()
    ]
    assert sum(accepted) >= len(accepted) - 1


def _issue(name, words=CODE_WORDS_READ):
    """Issue NAME's phrase with known code words (consent_phrase draws them at random)."""
    return consent.issue_challenge("voice", name, phrase_text(name, words))


def test_enrol_then_use_within_scope_and_time(files, monkeypatch):
    phrase = _issue("ada")
    assert consent_phrase("ada") == phrase and "ada" in phrase
    record = enroll(
        "ada",
        files("ref.wav", _say(READING)),
        files("ok.wav", _say(phrase, rate=150)),
        "Ada L.",
        "demo reel",
        NEXT_YEAR,
    )
    assert record.similarity >= SPEAKER_THRESHOLD and record.status() == "valid"
    assert len(record.consent_hash) == 64
    assert any(v["name"] == "ada" and v["kind"] == "enrolled" for v in profiles.list_voices())

    choice = resolve_voice("ada", scope="demo reel")
    assert choice.record.id == record.id
    assert choice.details()["consent_record_sha256"] == record.consent_hash
    assert (
        np.sqrt(np.mean(profiles.apply_tilt(_say("hello there"), choice.tilt_db_per_octave).samples ** 2))
        > 0.01
    )
    with pytest.raises(VoiceError, match="not 'ads'"):
        resolve_voice("ada", scope="ads")
    with pytest.raises(VoiceError, match="--scope"):
        resolve_voice("ada")
    monkeypatch.setattr(profiles, "_today", lambda: dt.date.today() + dt.timedelta(days=400))
    with pytest.raises(VoiceError, match="expired"):
        resolve_voice("ada", scope="demo reel")
    uses = [e["fields"]["decision"] for e in _events("voice.use")]
    assert uses == ["pass", "refuse", "refuse", "refuse"]
    assert _events("voice.enroll")[-1]["fields"]["decision"] == "pass"


def test_profile_follows_the_reference():
    low = profiles.derive_profile(_say(READING, "en-us+m7"))
    high = profiles.derive_profile(_say(READING, "en-us+f5"))
    assert low.measured["median_f0"] < high.measured["median_f0"]
    slow = profiles.derive_profile(_say(READING, rate=120))
    fast = profiles.derive_profile(_say(READING, rate=220))
    assert slow.rate_wpm < fast.rate_wpm


def test_consent_from_another_speaker_is_refused_and_logged(files):
    phrase = consent_phrase("bob")
    reference = files("ref.wav", _say(READING, BUILTIN_VOICES["alloy"][0]))
    other = files("other.wav", _say(phrase, BUILTIN_VOICES["heron"][0]))
    with pytest.raises(VoiceError, match="not the reference's speaker"):
        enroll("bob", reference, other, "Bob", "demo", NEXT_YEAR)
    last = _events("voice.enroll")[-1]["fields"]
    assert last["decision"] == "refuse" and last["similarity"] < SPEAKER_THRESHOLD
    assert profiles.enrolled("bob") == []


def test_consent_must_say_every_code_word(files):
    phrase = _issue("eve")
    said = phrase.replace(CODE_WORDS_READ[2], "rattlesnake")
    reference = files("ref.wav", _say(READING))
    with pytest.raises(VoiceError, match=f"code word '{CODE_WORDS_READ[2]}' was not heard"):
        enroll("eve", reference, files("swapped.wav", _say(said, rate=150)), "Eve", "demo", NEXT_YEAR)
    last = _events("voice.enroll")[-1]["fields"]
    assert last["decision"] == "refuse" and "was not heard" in last["reason"]
    assert profiles.enrolled("eve") == [] and consent.challenge("voice", "eve") == phrase


def test_consent_must_fit_the_phrase(files):
    consent_phrase("cy")
    reference = files("ref.wav", _say(READING))
    wrong = files("wrong.wav", _say(READING + " " + READING))
    with pytest.raises(VoiceError, match="record the phrase itself"):
        enroll("cy", reference, wrong, "Cy", "demo", NEXT_YEAR)


@pytest.mark.parametrize(
    "case, words",
    [
        ("no phrase", "no consent phrase"),
        ("short reference", "at least 3 s"),
        ("not audio", "not audio|no audio"),
        ("missing", "does not exist"),
        ("past", "in the past"),
        ("bad date", "YYYY-MM-DD"),
        ("builtin name", "built-in"),
    ],
)
def test_bad_enrolments_are_refused(files, tmp_path, case, words):
    name = "dee" if case != "builtin name" else "amber"
    if case != "no phrase" and case != "builtin name":
        consent_phrase(name)
    reference = files("ref.wav", _say(READING))
    consent = files("con.wav", _say("I agree that kinema may make a synthetic voice called dee."))
    expires = NEXT_YEAR
    if case == "short reference":
        reference = files("short.wav", _say("Hello."))
    elif case == "not audio":
        reference = tmp_path / "notes.wav"
        reference.write_text("not audio at all")
    elif case == "missing":
        reference = tmp_path / "nope.wav"
    elif case == "past":
        expires = "2000-01-01"
    elif case == "bad date":
        expires = "next year"
    with pytest.raises(VoiceError, match=words) as info:
        enroll(name, reference, consent, "Dee", "demo", expires)
    assert "\n" not in str(info.value)


def test_unknown_voice_names_the_known_ones():
    with pytest.raises(VoiceError, match="unknown voice 'zed'.*amber"):
        resolve_voice("zed")


def test_read_audio_mono_from_stereo(files):
    stereo = Audio(np.stack([np.full(8000, 0.5), np.full(8000, -0.5)]).astype(np.float32), 8000)
    got = profiles.read_audio(files("s.wav", stereo))
    assert got.rate == 8000 and got.samples.shape == (1, 8000)
