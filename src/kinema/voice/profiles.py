"""Voices: the built-in ones, and voice profiles enrolled from a person's recording with consent.

A voice profile is what eSpeak NG can take from a reference recording: the median pitch
and its range, the speaking rate, and the spectral tilt. It is applied as a pitch shift
and range (eSpeak's own parameters, on the built-in voice of the nearest register) plus a
tilt filter on the synthesised audio (a formant/spectral-balance transform). It is not a
voice clone; it is a likeness all the same, so it is stored only with consent:

1. `consent_phrase(name)` makes (once, then repeats) the phrase the voice's owner must
   read aloud for this enrolment: a fixed sentence naming the voice plus four distinct
   code words drawn at random from a pruned list (consent_words.py), kept as the voice's
   pending challenge in the consent registry.
2. `enroll(...)` takes the reference recording and the consent recording and refuses
   unless (a) both are the same speaker: cosine similarity of MFCC-statistics speaker
   embeddings ≥ SPEAKER_THRESHOLD (measured: see features.py), (b) the consent
   recording fits that phrase by its duration and energy envelope: its speech lasts
   0.55–2.2 times eSpeak's own reading of the phrase, and its syllable nuclei (peaks of
   the energy envelope) number within ±40 % of eSpeak's reading's, and (c) each of the
   phrase's four code words is heard in it (pocketsphinx keyword spotting, offline,
   with a threshold measured per word: consent_words.py, consent_measure.py).
3. The profile and its consent record (owner, scope, expiry, hashes of both recordings
   and the phrase, the similarity, words_checked) go into the consent registry
   (governance.consent, kind "voice", one store with likeness consent) in one
   transaction that also retires the phrase. `resolve_voice(name, scope)` refuses an
   expired, revoked or out-of-scope profile, and one enrolled before the code words were
   checked (words_checked false: the registry marks those when it migrates) until the
   voice is enrolled again.

The recording analysis (speaker embeddings, pitch, rate, tilt, the profile derived from
them) is features.py; this module is enrolment and use.

Every enrolment attempt and every use (pass or refusal) is appended to the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from kinema.errors import InputError
from kinema.governance import audit
from kinema.governance import consent as registry
from kinema.governance.consent import scope_covers
from kinema.governance.consent import today as _today
from kinema.io import Audio
from kinema.voice.consent_words import check_code_words, draw, phrase_code_words, phrase_text
from kinema.voice.features import (
    SPEAKER_THRESHOLD,
    VoiceError,
    VoiceProfile,
    apply_tilt,
    derive_profile,
    read_audio,
    speaker_embedding,
    speaker_similarity,
    syllable_nuclei,
    voice_features,
)
from kinema.voice.tts import BUILTIN_VOICES, DEFAULT_RATE_WPM, SpeechSettings, synthesize

__all__ = [
    "SPEAKER_THRESHOLD",
    "VoiceChoice",
    "VoiceError",
    "VoiceProfile",
    "VoiceRecord",
    "apply_tilt",
    "consent_phrase",
    "derive_profile",
    "enroll",
    "list_voices",
    "read_audio",
    "resolve_voice",
    "revoke_voice",
    "speaker_embedding",
    "speaker_similarity",
    "voice_features",
]

MIN_REFERENCE_SECONDS = 3.0
MIN_CONSENT_SECONDS = 2.0
PHRASE_DURATION_RANGE = (0.55, 2.2)
PHRASE_SYLLABLE_TOLERANCE = 0.40
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")


# What a voice's consent record is, in the order its JSON has always had; `consent_hash`
# (named by signed manifests) covers exactly these, plus "words_checked": true for an
# enrolment whose code words were heard (left out when false, so that the hashes of
# enrolments from before the check stay what their manifests say).
CONSENT_FIELDS = (
    "id",
    "name",
    "owner",
    "scope",
    "expires",
    "created",
    "reference_sha256",
    "consent_sha256",
    "phrase_sha256",
    "similarity",
)


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
    words_checked: bool = False

    @classmethod
    def of(cls, record: registry.Consent) -> VoiceRecord:
        """The voice view of a consent registry record (kind "voice")."""
        names = [f.name for f in fields(cls) if f.name != "words_checked"]
        values = record.view(names, {"name": "subject", "reference_sha256": "subject_sha256"})
        checked = record.details.get("words_checked") is True
        return cls(**{**values, "profile": VoiceProfile(**values["profile"]), "words_checked": checked})

    def status(self, today: dt.date | None = None) -> str:
        """'valid', 'expired' or 'revoked' on the day TODAY (default today, UTC)."""
        return registry.status(self.revoked, self.expires, today or _today())

    def consent_dict(self) -> dict[str, Any]:
        """The consent record proper (what `consent_hash` covers): every field but the
        profile and the revocation, the expiry as YYYY-MM-DD."""
        data = {name: getattr(self, name) for name in CONSENT_FIELDS}
        data["expires"] = self.expires.isoformat()
        if self.words_checked:
            data["words_checked"] = True
        return data

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
            "words_checked": self.words_checked,
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
    the enrolment succeeds). A pending phrase from before the code words were checked
    (words not in today's list) is replaced by a new one."""
    name = _check_name(name)
    pending = registry.challenge("voice", name)
    if pending is not None and phrase_code_words(pending) is not None:
        return pending
    phrase = phrase_text(name, draw(name))
    issued = registry.issue_challenge("voice", name, phrase, replacing=pending)
    if issued == phrase:  # not one that another process issued a moment ago
        audit.append("voice.phrase", name=name, phrase_sha256=_sha(phrase.encode()))
    return issued


def check_phrase(consent: Audio, phrase: str) -> dict[str, float]:
    """Refuse a consent recording whose speech does not fit PHRASE by duration and syllable
    count (against eSpeak's reading at DEFAULT_RATE_WPM); returns the measurements."""
    spoken_n, spoken_s = syllable_nuclei(consent)
    expected_n, expected_s = syllable_nuclei(synthesize(phrase))
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
    not audio or too short, no phrase issued for NAME (or one from before the code words
    were checked), another speaker in the consent recording, a consent recording that does
    not fit the phrase, and one in which a code word is not heard (naming the word).
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
    try:
        owner, scope, until = registry.check_terms(
            owner, scope, expires, "a voice enrolment", "kinema demo narration"
        )
    except registry.ConsentError as exc:
        raise VoiceError(str(exc)) from None
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
    phrase = registry.challenge("voice", name)
    if phrase is None:
        raise VoiceError(
            f"no consent phrase issued for '{name}': run `kinema voice phrase {name}` and record it"
        )
    code_words = phrase_code_words(phrase)
    if code_words is None:
        raise VoiceError(
            f"the consent phrase issued for '{name}' predates the code-word check: run "
            f"`kinema voice phrase {name}` for a new one and record that"
        )
    similarity = speaker_similarity(ref, con)
    log.update(similarity=round(similarity, 4), threshold=SPEAKER_THRESHOLD)
    if similarity < SPEAKER_THRESHOLD:
        raise VoiceError(
            f"the consent recording is not the reference's speaker (similarity {similarity:.2f} < "
            f"{SPEAKER_THRESHOLD:.2f}): the voice's owner must record the consent phrase"
        )
    log["phrase_check"] = check_phrase(con, phrase)
    log["code_words"] = check_code_words(con, code_words)
    details = {
        "consent_sha256": _sha(con.samples.tobytes()),
        "phrase_sha256": _sha(phrase.encode()),
        "similarity": round(similarity, 4),
        "profile": asdict(derive_profile(ref)),
        "words_checked": True,
    }
    # the record and the phrase's retirement commit together: a phrase serves one enrolment
    stored = registry.add(
        "voice", name, _sha(ref.samples.tobytes()), owner, scope, until, details, clear_challenge=True
    )
    return VoiceRecord.of(stored)


def enrolled(name: str | None = None) -> list[VoiceRecord]:
    """Enrolled voices (all, or those named NAME), oldest first."""
    return [VoiceRecord.of(r) for r in registry.records("voice", subject=name)]


def revoke_voice(name: str, reason: str | None = None) -> list[VoiceRecord]:
    """Revoke every live enrolment of NAME; returns them. VoiceError when there is none."""
    live = [r for r in enrolled(name) if r.revoked is None]
    if not live:
        raise VoiceError(f"no live enrolment of voice '{name}'")
    for record in live:
        try:
            registry.revoke(record.id)
        except registry.ConsentError:
            continue  # another process revoked it a moment ago, and logged that
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
                "words_checked": record.words_checked,
            }
        )
    return voices


def resolve_voice(
    name: str, scope: str | None = None, rate_wpm: float | None = None, pitch_semitones: float = 0.0
) -> VoiceChoice:
    """The voice NAME ready to use: a built-in one, or an enrolled profile whose consent
    is live and covers SCOPE. Enrolled voices need a scope; every use of one, allowed or
    refused, is audit-logged. Refuses an unknown name (listing the voices), an expired,
    revoked or out-of-scope profile, and one enrolled before the consent recording's code
    words were checked (until it is enrolled again)."""
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
    checked = [r for r in fitting if r.words_checked]
    if not checked:
        reason = _refusal(name, records, live, scope) if not fitting else _unchecked(name)
        audit.append("voice.use", decision="refuse", reason=reason, **log)
        raise VoiceError(reason)
    record = max(checked, key=lambda r: r.expires)
    audit.append("voice.use", decision="pass", id=record.id, consent_record_sha256=record.consent_hash, **log)
    settings = record.profile.settings(rate_wpm, pitch_semitones)
    return VoiceChoice(name, settings, record.profile.tilt_db_per_octave, record)


def _unchecked(name: str) -> str:
    return (
        f"voice '{name}' was enrolled before consent recordings were checked for their code words: "
        f"enrol it again (`kinema voice phrase {name}`, then `kinema voice enroll {name} ...`)"
    )


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
