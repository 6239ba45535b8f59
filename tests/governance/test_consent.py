"""The consent registry: one store for likeness and voice consent, and the migration of the
layout from before (a likeness `consents` table, `voice_profiles` and `voice_phrases`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import sqlite3
from contextlib import closing

import pytest

from kinema.governance import consent
from kinema.governance.policy import (
    ConsentRecord,
    PolicyError,
    add_consent,
    check_likeness,
    image_hash,
    list_consents,
    revoke_consent,
)
from kinema.state import kinema_home
from kinema.voice import profiles
from kinema.voice.tts import BUILTIN_VOICES
from tests.governance.test_policy import draw_face

TODAY = dt.datetime.now(dt.timezone.utc).date()
NEXT_YEAR = TODAY + dt.timedelta(days=365)

# The version-0 layout, exactly as policy.py and voice/profiles.py created it.
OLD_LIKENESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY,
    image_sha256 TEXT NOT NULL,
    owner TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires TEXT NOT NULL,
    created TEXT NOT NULL,
    source TEXT NOT NULL,
    faces INTEGER NOT NULL,
    revoked TEXT
);
CREATE INDEX IF NOT EXISTS consents_by_image ON consents (image_sha256);
"""
OLD_VOICE_SCHEMA = """
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
OLD_COLUMNS = "id, image_sha256, owner, scope, expires, created, source, faces, revoked"


def old_voice_record(record_id: str, name: str, scope: str) -> tuple[dict, str]:
    """A version-0 voice enrolment as the old VoiceRecord.to_dict() stored it, and the
    consent-record hash its manifests named."""
    consent_fields = {
        "id": record_id,
        "name": name,
        "owner": "Ada L.",
        "scope": scope,
        "expires": NEXT_YEAR.isoformat(),
        "created": "2026-01-02T03:04:05Z",
        "reference_sha256": "a" * 64,
        "consent_sha256": "b" * 64,
        "phrase_sha256": "c" * 64,
        "similarity": 0.8731,
    }
    digest = hashlib.sha256(
        json.dumps(consent_fields, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    profile = {
        "base_voice": next(iter(BUILTIN_VOICES)),
        "pitch_semitones": -1.25,
        "pitch_range": 55,
        "rate_wpm": 171.5,
        "tilt_db_per_octave": 0.75,
        "measured": {"median_f0": 121.0, "f0_range": 4.5},
    }
    record = {
        **consent_fields,
        "consent_record_sha256": digest,
        "profile": profile,
        "revoked": None,
        "status": "valid",
    }
    return record, digest


@pytest.fixture
def old_home():
    """KINEMA_HOME/consent.db in the version-0 layout, written with the old code's SQL:
    one likeness record for a drawn face, two enrolments of "ada" (one revoked) and a
    pending phrase for "bee"."""
    face = draw_face(128)
    path = kinema_home() / consent.CONSENT_DB
    live, live_hash = old_voice_record("v0123456789", "ada", "demo reel")
    gone, _ = old_voice_record("v9876543210", "ada", "ads")
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(OLD_LIKENESS_SCHEMA)
        db.executescript(OLD_VOICE_SCHEMA)
        db.execute(
            f"INSERT INTO consents ({OLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "c00aa11bb22",
                image_hash(face),
                "Ada Example",
                "demo",
                NEXT_YEAR.isoformat(),
                "2026-01-01T00:00:00Z",
                "face.png",
                1,
                None,
            ),
        )
        for record, revoked in ((live, None), (gone, "2026-02-01T00:00:00Z")):
            db.execute(
                "INSERT INTO voice_profiles (id, name, record, revoked) VALUES (?, ?, ?, ?)",
                (record["id"], "ada", json.dumps(record, sort_keys=True), revoked),
            )
        db.execute(
            "INSERT INTO voice_phrases VALUES (?, ?, ?)",
            ("bee", "I agree ... maple river", "2026-01-03T00:00:00Z"),
        )
    return {"face": face, "voice_hash": live_hash}


def test_the_old_layout_is_migrated_on_first_open(old_home):
    (likeness,) = list_consents()
    assert likeness == ConsentRecord(
        id="c00aa11bb22",
        image_sha256=image_hash(old_home["face"]),
        owner="Ada Example",
        scope="demo",
        expires=NEXT_YEAR,
        created="2026-01-01T00:00:00Z",
        source="face.png",
        faces=1,
    )
    assert check_likeness(old_home["face"], scope="demo").id == "c00aa11bb22"

    voices = profiles.enrolled("ada")
    assert [v.id for v in voices] == ["v0123456789", "v9876543210"]
    assert voices[1].revoked == "2026-02-01T00:00:00Z" and voices[1].status() == "revoked"
    # the hash signed manifests name is unchanged by the move
    assert voices[0].consent_hash == old_home["voice_hash"]
    assert voices[0].profile.rate_wpm == 171.5 and voices[0].similarity == 0.8731
    # enrolled before consent recordings' code words were checked: marked so, refused for new uses
    assert not voices[0].words_checked
    with pytest.raises(profiles.VoiceError, match="kinema voice enroll ada"):
        profiles.resolve_voice("ada", scope="demo reel")
    with pytest.raises(profiles.VoiceError, match="not 'ads'"):
        profiles.resolve_voice("ada", scope="ads")  # the revoked enrolment stays revoked
    assert consent.challenge("voice", "bee") == "I agree ... maple river"  # still pending

    with closing(sqlite3.connect(kinema_home() / consent.CONSENT_DB)) as db:
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"consents", "challenges"}
        assert db.execute("PRAGMA user_version").fetchone() == (consent.SCHEMA_VERSION,)
        kinds = db.execute("SELECT kind, count(*) FROM consents GROUP BY kind ORDER BY kind").fetchall()
    assert kinds == [("likeness", 1), ("voice", 2)]
    assert len(consent.records()) == 3  # a second open migrates nothing again


def test_a_database_from_a_newer_kinema_is_refused():
    with closing(sqlite3.connect(kinema_home() / consent.CONSENT_DB)) as db:
        db.execute(f"PRAGMA user_version = {consent.SCHEMA_VERSION + 1}")
    with pytest.raises(
        consent.ConsentError, match=f"schema version {consent.SCHEMA_VERSION + 1}.*upgrade kinema"
    ):
        list_consents()


def test_one_store_holds_both_kinds(tmp_path):
    from kinema.io import write_png

    write_png(draw_face(128), tmp_path / "face.png")
    face = add_consent(tmp_path / "face.png", "Ada", "demo", NEXT_YEAR)
    voice = consent.add("voice", "ada", "d" * 64, "Ada", "demo reel", NEXT_YEAR, {"similarity": 0.9})
    assert face.id.startswith("c") and voice.id.startswith("v")
    assert [r.kind for r in consent.records()] == ["likeness", "voice"]
    assert list_consents() == [face]  # the likeness view shows likeness records only
    with pytest.raises(PolicyError, match="voice consent.*kinema voice"):
        revoke_consent(voice.id)
    assert consent.get(voice.id).revoked is None


def test_valid_for_use_follows_scope_expiry_and_revocation():
    record = consent.add("voice", "ada", "e" * 64, "Ada", "demo reel, training", NEXT_YEAR)
    assert consent.usable("voice", "Demo  Reel", subject="ada") == [record]
    assert consent.usable("voice", "ads", subject="ada") == []
    assert consent.usable("voice", subject="ada", on=NEXT_YEAR + dt.timedelta(days=1)) == []
    assert record.valid_for("training") and not record.valid_for("training", NEXT_YEAR + dt.timedelta(days=1))
    revoked = consent.revoke(record.id)
    assert revoked == dataclasses.replace(record, revoked=revoked.revoked) and revoked.status() == "revoked"
    assert consent.usable("voice", subject="ada") == []
    with pytest.raises(consent.ConsentError, match="already revoked"):
        consent.revoke(record.id)
    with pytest.raises(consent.ConsentError, match="no consent record"):
        consent.get("cnothere000")


@pytest.mark.parametrize(
    "kind, owner, scope, expires, message",
    [
        ("face", "Ada", "demo", NEXT_YEAR, "kind must be one of likeness, voice"),
        ("voice", " ", "demo", NEXT_YEAR, "owner"),
        ("voice", "Ada", "", NEXT_YEAR, "scope"),
        ("voice", "Ada", "demo", "2020-01-01", "in the past"),
        ("voice", "Ada", "demo", "soon", "YYYY-MM-DD"),
    ],
)
def test_bad_records_are_refused(kind, owner, scope, expires, message):
    with pytest.raises(consent.ConsentError, match=message):
        consent.add(kind, "ada", "f" * 64, owner, scope, expires)
    assert consent.records() == []


def test_a_challenge_stays_until_its_record_is_added():
    assert consent.challenge("voice", "cy") is None
    assert consent.issue_challenge("voice", "cy", "first") == "first"
    assert consent.issue_challenge("voice", "cy", "second") == "first"
    consent.add("voice", "cy", "f" * 64, "Cy", "demo", NEXT_YEAR, clear_challenge=True)
    assert consent.challenge("voice", "cy") is None
