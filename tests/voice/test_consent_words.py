"""The consent phrase's code words: the list's rules, hearing them, and enrolments from
before they were checked (a consent.db of schema version 1)."""

import datetime as dt
import itertools
import json
import random
import sqlite3
from contextlib import closing

import pytest

from kinema.governance import consent
from kinema.state import kinema_home
from kinema.voice import consent_measure, profiles
from kinema.voice.consent_words import (
    CODE_WORDS,
    KWS_THRESHOLDS,
    MIN_PHONEME_DISTANCE,
    WORDS_PER_PHRASE,
    check_code_words,
    draw,
    phoneme_distance,
    phrase_code_words,
    phrase_text,
    pronunciation,
    prune,
)
from kinema.voice.narrate import write_wav
from kinema.voice.profiles import VoiceError
from kinema.voice.tts import BUILTIN_VOICES, SpeechSettings, synthesize

NEXT_YEAR = (dt.date.today() + dt.timedelta(days=365)).isoformat()
# words and voices for the recordings below; every threshold was set on other voices
WORDS = ["chimpanzee", "gingerbread", "skyscraper", "tablecloth"]
READING = (
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow. "
    "The rainbow is a division of white light into many beautiful colours."
)


def _say(text, voice=BUILTIN_VOICES["alloy"][0], rate=165):
    return synthesize(text, SpeechSettings(voice=voice, rate_wpm=rate))


def test_the_list_follows_its_rules():
    assert len(CODE_WORDS) >= 30 and set(CODE_WORDS) == set(KWS_THRESHOLDS)
    phones = {w: pronunciation(w) for w in CODE_WORDS}
    assert all(p is not None and 5 <= len(p) <= 12 for p in phones.values())
    for a, b in itertools.combinations(CODE_WORDS, 2):
        assert phoneme_distance(phones[a], phones[b]) >= MIN_PHONEME_DISTANCE, (a, b)
    assert prune(["amber", "ember", "tiger"]) == []  # 4 phonemes each: too short for the list
    assert prune(["chipmunk", "chipmunks", "rattlesnake"]) == ["chipmunk", "rattlesnake"]
    assert phoneme_distance(("K", "AE", "T"), ("K", "AA", "T", "S")) == 2


def test_draw_gives_distinct_words_never_the_voice_name():
    name = CODE_WORDS[0]
    for _ in range(50):
        words = draw(name)
        assert len(set(words)) == WORDS_PER_PHRASE and name not in words
        assert set(words) <= set(CODE_WORDS)
    phrase = phrase_text("ada", WORDS)
    assert phrase.endswith("My code words are: chimpanzee, gingerbread, skyscraper, tablecloth.")
    assert phrase_code_words(phrase) == WORDS
    assert phrase_code_words("I agree ... My code words are maple river tiger velvet.") is None


def test_the_phrase_is_heard_and_a_missing_word_is_named():
    scores = check_code_words(_say(phrase_text("ada", WORDS)), WORDS)
    assert all(scores[w] >= KWS_THRESHOLDS[w] for w in WORDS)
    swapped = [WORDS[0], WORDS[1], "rattlesnake", WORDS[3]]
    with pytest.raises(VoiceError, match="code word 'skyscraper' was not heard") as info:
        check_code_words(_say(phrase_text("ada", swapped), BUILTIN_VOICES["amber"][0]), WORDS)
    assert "\n" not in str(info.value)
    with pytest.raises(VoiceError, match="not heard"):
        check_code_words(_say(consent_measure.OTHER_TEXTS[4]), WORDS)
    with pytest.raises(VoiceError, match="not heard"):
        check_code_words(consent_measure._noise(random.Random(0)), WORDS)


def test_measure_counts_each_case():
    result = consent_measure.measure(trials=1, seed=3)
    assert [row["case"] for row in result["cases"]] == list(consent_measure.CASES)
    assert all(row["accepted"] + row["refused"] == 1 for row in result["cases"])
    assert result["cases"][-1]["refused"] == 1  # noise


# ----------------------------------------------------------------------------- migration

# consent.db as schema version 1 wrote it: the registry's tables, no words_checked
V1_SCHEMA = """
CREATE TABLE consents (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('likeness', 'voice')),
    subject TEXT NOT NULL,
    subject_sha256 TEXT NOT NULL,
    owner TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE challenges (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    text TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (kind, subject)
);
PRAGMA user_version = 1;
"""


def _v1_home(name: str) -> str:
    """A version-1 consent.db with one voice enrolment of NAME made the old way (no word
    check) and a pending old-style phrase for "bee"; returns the enrolment's id."""
    profile = {
        "base_voice": "alloy",
        "pitch_semitones": -1.0,
        "pitch_range": 50,
        "rate_wpm": 160.0,
        "tilt_db_per_octave": 0.5,
        "measured": {},
    }
    details = {"consent_sha256": "b" * 64, "phrase_sha256": "c" * 64, "similarity": 0.85, "profile": profile}
    with closing(sqlite3.connect(kinema_home() / consent.CONSENT_DB)) as db, db:
        db.executescript(V1_SCHEMA)
        db.execute(
            "INSERT INTO consents VALUES (?, 'voice', ?, ?, 'Ada L.', 'demo reel', ?, ?, NULL, ?)",
            ("v00000000aa", name, "a" * 64, NEXT_YEAR, "2026-03-01T00:00:00Z", json.dumps(details)),
        )
        db.execute(
            "INSERT INTO challenges VALUES ('voice', 'bee', ?, '2026-03-01T00:00:00Z')",
            (
                "I agree that kinema may make a synthetic voice called bee. My code words are maple river tiger velvet.",
            ),
        )
    return "v00000000aa"


def test_an_enrolment_without_the_word_check_is_refused_until_enrolled_again(tmp_path):
    old_id = _v1_home("ada")
    (old,) = profiles.enrolled("ada")
    assert old.id == old_id and not old.words_checked and old.status() == "valid"
    assert consent.get(old_id).details["words_checked"] is False  # marked by the migration
    with pytest.raises(VoiceError, match="kinema voice enroll ada") as info:
        profiles.resolve_voice("ada", scope="demo reel")
    assert "\n" not in str(info.value)
    assert [v["words_checked"] for v in profiles.list_voices() if v["kind"] == "enrolled"] == [False]
    with closing(sqlite3.connect(kinema_home() / consent.CONSENT_DB)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (consent.SCHEMA_VERSION,)

    # the old pending phrase cannot be performed any more: it is replaced
    assert phrase_code_words(profiles.consent_phrase("bee")) is not None

    # enrolling again with the word check makes the voice usable
    consent.issue_challenge("voice", "ada", phrase_text("ada", WORDS))
    reference = tmp_path / "ref.wav"
    recording = tmp_path / "consent.wav"
    write_wav(_say(READING), reference)
    write_wav(_say(phrase_text("ada", WORDS)), recording)
    new = profiles.enroll("ada", reference, recording, "Ada L.", "demo reel", NEXT_YEAR)
    assert new.words_checked and new.consent_dict()["words_checked"] is True
    assert profiles.resolve_voice("ada", scope="demo reel").record.id == new.id
