"""The consent registry: one store for every consent kinema relies on.

A record says that OWNER allows a SUBJECT to be used for SCOPE until EXPIRES (inclusive,
UTC). Its kind says what the subject is:

    likeness  an input image or clip with a face: subject is its file name, subject_sha256
              its pixel hash (policy.image_hash); details: {"faces": n}
    voice     an enrolled voice: subject is the voice's name, subject_sha256 the hash of
              the reference recording; details: the consent recording's and the phrase's
              hashes, the speaker similarity, the voice profile enrolled, and
              "words_checked": whether the consent recording was checked for the phrase's
              code words (false for enrolments from before that check)

Records are never deleted: revoking marks one, so the audit trail can still name it. The
registry also keeps pending challenges: a text issued for a subject that its owner must
perform before the record is added (the voice consent phrase); adding the record with
clear_challenge removes it in the same transaction.

The store keeps records; it neither decides nor logs. policy.check_likeness and
voice.profiles.resolve_voice decide a use, and they and the commands that add and revoke
records write the audit log.

Storage: SQLite at KINEMA_HOME/consent.db, schema version 2 (PRAGMA user_version).
Version 0 is the layout from before the store was one: likeness records in a `consents`
table with columns of their own (image_sha256, source, faces), voice enrolments as JSON
in `voice_profiles`, issued phrases in `voice_phrases`. Version 1 is the one registry
before the consent recording's words were checked: version 2 marks each of its voice
records "words_checked": false, so they are refused for new uses until re-enrolled. The
first open migrates in one transaction; a database from a newer kinema is refused, not
rewritten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

from kinema.errors import InputError
from kinema.state import connect, kinema_home, schema_version, set_schema_version, transaction

__all__ = [
    "ANY_SCOPE",
    "CONSENT_DB",
    "KINDS",
    "SCHEMA_VERSION",
    "Consent",
    "ConsentError",
    "add",
    "challenge",
    "check_terms",
    "get",
    "issue_challenge",
    "now",
    "parse_date",
    "records",
    "revoke",
    "scope_covers",
    "status",
    "today",
    "usable",
]

CONSENT_DB = "consent.db"
SCHEMA_VERSION = 2
KINDS = ("likeness", "voice")
ID_PREFIX = {"likeness": "c", "voice": "v"}
ANY_SCOPE = ("*", "any")
# What a version-0 voice enrolment kept beyond the common fields; it becomes the details.
VOICE_DETAILS = ("consent_sha256", "phrase_sha256", "similarity", "profile")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS consents (
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
    )""",
    "CREATE INDEX IF NOT EXISTS consents_by_subject ON consents (kind, subject)",
    "CREATE INDEX IF NOT EXISTS consents_by_subject_hash ON consents (kind, subject_sha256)",
    """CREATE TABLE IF NOT EXISTS challenges (
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        text TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (kind, subject)
    )""",
)
_COLUMNS = "id, kind, subject, subject_sha256, owner, scope, expires, created, revoked, details"
_INSERT = f"INSERT INTO consents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class ConsentError(InputError):
    """A consent record kinema refuses to store, or one that does not exist; one line."""


@dataclass(frozen=True)
class Consent:
    """One consent record (see the module docstring for what each kind's fields hold)."""

    id: str
    kind: str
    subject: str
    subject_sha256: str
    owner: str
    scope: str
    expires: dt.date
    created: str
    revoked: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def status(self, on: dt.date | None = None) -> str:
        """'valid', 'expired' or 'revoked' on the day ON (default today, UTC)."""
        return status(self.revoked, self.expires, on)

    def valid_for(self, scope: str | None = None, on: dt.date | None = None) -> bool:
        """Whether the record allows a use now: valid, and covering SCOPE when one is given."""
        return self.status(on) == "valid" and (scope is None or scope_covers(self.scope, scope))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the status as of today."""
        data = dataclasses.asdict(self)
        data.update(expires=self.expires.isoformat(), details=dict(self.details), status=self.status())
        return data

    def view(self, names: Iterable[str], renamed: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The values a kind's typed view (policy.ConsentRecord, profiles.VoiceRecord) is
        built from: each of NAMES read from the record's field of that name, or of the
        name RENAMED maps it to ("source" -> "subject"), else from its details."""
        fields = {f.name for f in dataclasses.fields(self)}
        values = {}
        for name in names:
            source = (renamed or {}).get(name, name)
            values[name] = getattr(self, source) if source in fields else self.details[source]
        return values


def status(revoked: str | None, expires: dt.date, on: dt.date | None = None) -> str:
    """A record's status on the day ON (default today, UTC): 'revoked' once revoked, else
    'valid' through its expiry day and 'expired' after it."""
    if revoked is not None:
        return "revoked"
    return "valid" if expires >= (on or today()) else "expired"


# ----------------------------------------------------------------------------- terms


def scope_covers(granted: str, wanted: str) -> bool:
    """Whether a record's scope (comma-separated scopes, or * / any) covers WANTED.
    Case and runs of spaces do not matter."""
    parts = {" ".join(p.casefold().split()) for p in granted.split(",")}
    return bool(parts & set(ANY_SCOPE)) or " ".join(wanted.casefold().split()) in parts


def check_terms(
    owner: str,
    scope: str,
    expires: dt.date | str,
    what: str = "a consent record",
    example: str = "kinema demo reel",
) -> tuple[str, str, dt.date]:
    """The owner and scope stripped and the expiry as a date; refuses (ConsentError) an
    empty owner or scope and an expiry that is not a date or is in the past. WHAT and
    EXAMPLE word the messages ("a voice enrolment needs a scope (--scope), e.g. ...")."""
    owner, scope = (owner or "").strip(), (scope or "").strip()
    if not owner:
        raise ConsentError(f"{what} needs the owner's name (--owner)")
    if not scope:
        raise ConsentError(f"{what} needs a scope (--scope), e.g. '{example}'")
    until = parse_date(expires)
    if until < today():
        raise ConsentError(f"expiry {until.isoformat()} is in the past")
    return owner, scope, until


def parse_date(value: dt.date | str) -> dt.date:
    """A date, or text as YYYY-MM-DD, as a date; ConsentError otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConsentError(f"expiry must be a date as YYYY-MM-DD, got '{value}'") from None


def today() -> dt.date:
    """Today in UTC: consent holds through its expiry day, wherever the user is."""
    return dt.datetime.now(dt.timezone.utc).date()


def now() -> str:
    """The current UTC time as ISO 8601 to the second, with a Z."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------------------- records


def add(
    kind: str,
    subject: str,
    subject_sha256: str,
    owner: str,
    scope: str,
    expires: dt.date | str,
    details: Mapping[str, Any] | None = None,
    clear_challenge: bool = False,
) -> Consent:
    """Store a new record and return it (a fresh id: "c…" for likeness, "v…" for voice).

    Refuses (ConsentError) an unknown kind, an empty subject or hash, and terms that
    `check_terms` refuses. With clear_challenge, the subject's pending challenge is
    removed in the same transaction (the enrolment it was issued for is done).
    """
    _check_kind(kind)
    owner, scope, until = check_terms(owner, scope, expires)
    subject, digest = (subject or "").strip(), (subject_sha256 or "").strip().lower()
    if not subject or not digest:
        raise ConsentError("a consent record needs its subject and the subject's hash")
    record = Consent(
        id=ID_PREFIX[kind] + secrets.token_hex(5),
        kind=kind,
        subject=subject,
        subject_sha256=digest,
        owner=owner,
        scope=scope,
        expires=until,
        created=now(),
        details=dict(details or {}),
    )
    with _db() as db:
        db.execute(_INSERT, _row(record))
        if clear_challenge:
            db.execute("DELETE FROM challenges WHERE kind = ? AND subject = ?", (kind, subject))
    return record


def get(consent_id: str) -> Consent:
    """The record with this id, of any kind; ConsentError when there is none."""
    with _db(write=False) as db:
        row = db.execute(f"SELECT {_COLUMNS} FROM consents WHERE id = ?", (consent_id.strip(),)).fetchone()
    if row is None:
        raise ConsentError(f"no consent record with id '{consent_id}'")
    return _record(row)


def records(
    kind: str | None = None,
    subject: str | None = None,
    subject_sha256: str | None = None,
    include_revoked: bool = True,
) -> list[Consent]:
    """Records (valid, expired and, unless asked not to, revoked), oldest first: all, or
    those of KIND, of SUBJECT (a voice's name) and of SUBJECT_SHA256 (an image's hash)."""
    where, args = [], []
    for column, value in (("kind", kind), ("subject", subject), ("subject_sha256", subject_sha256)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value.lower() if column == "subject_sha256" else value)
    if not include_revoked:
        where.append("revoked IS NULL")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    with _db(write=False) as db:
        rows = db.execute(f"SELECT {_COLUMNS} FROM consents{clause} ORDER BY created, id", args).fetchall()
    return [_record(row) for row in rows]


def usable(
    kind: str,
    scope: str | None = None,
    subject: str | None = None,
    subject_sha256: str | None = None,
    on: dt.date | None = None,
) -> list[Consent]:
    """The records of KIND (and SUBJECT / SUBJECT_SHA256) valid for a use now: not
    revoked, not expired on ON (default today), covering SCOPE when given. Oldest first."""
    _check_kind(kind)
    day = on or today()
    found = records(kind, subject, subject_sha256, include_revoked=False)
    return [r for r in found if r.valid_for(scope, day)]


def revoke(consent_id: str) -> Consent:
    """Revoke a record from now on; returns it revoked. ConsentError for an unknown id or
    a record already revoked (one of two revocations racing wins, the other is told)."""
    when = now()
    with _db() as db:
        row = db.execute(f"SELECT {_COLUMNS} FROM consents WHERE id = ?", (consent_id.strip(),)).fetchone()
        if row is None:
            raise ConsentError(f"no consent record with id '{consent_id}'")
        record = _record(row)
        if record.revoked is not None:
            raise ConsentError(f"consent record {record.id} was already revoked on {record.revoked}")
        db.execute("UPDATE consents SET revoked = ? WHERE id = ? AND revoked IS NULL", (when, record.id))
    return dataclasses.replace(record, revoked=when)


# ----------------------------------------------------------------------------- challenges


def challenge(kind: str, subject: str) -> str | None:
    """The pending challenge issued for SUBJECT, None when there is none."""
    with _db(write=False) as db:
        row = db.execute(
            "SELECT text FROM challenges WHERE kind = ? AND subject = ?", (_check_kind(kind), subject)
        ).fetchone()
    return row[0] if row else None


def issue_challenge(kind: str, subject: str, text: str, replacing: str | None = None) -> str:
    """Issue TEXT as SUBJECT's challenge unless one is pending; returns the pending one
    (TEXT when it was issued now, else the earlier one: a challenge stays the same until
    the record it asks for is added). With REPLACING, a pending challenge of exactly that
    text is replaced by TEXT (one that can no longer be performed, e.g. a voice phrase
    from before its words were checked); of two processes replacing it, one wins."""
    with _db() as db:
        if replacing is not None:
            db.execute(
                "UPDATE challenges SET text = ?, created = ? WHERE kind = ? AND subject = ? AND text = ?",
                (text, now(), _check_kind(kind), subject, replacing),
            )
        db.execute(
            "INSERT OR IGNORE INTO challenges (kind, subject, text, created) VALUES (?, ?, ?, ?)",
            (_check_kind(kind), subject, text, now()),
        )
        row = db.execute("SELECT text FROM challenges WHERE kind = ? AND subject = ?", (kind, subject))
        return row.fetchone()[0]


# ----------------------------------------------------------------------------- storage


@contextmanager
def _db(write: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection to HOME/consent.db, migrated to SCHEMA_VERSION, in one transaction."""
    with closing(connect(kinema_home() / CONSENT_DB, autocommit=True)) as db:
        _ensure_schema(db)
        with transaction(db, write):
            yield db


def _ensure_schema(db: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION; refuse one from a newer kinema."""
    version = schema_version(db)
    if version == SCHEMA_VERSION:
        return
    with transaction(db):
        version = schema_version(db)  # again under the write lock: another process may have migrated
        if version > SCHEMA_VERSION:
            raise ConsentError(
                f"{CONSENT_DB} has schema version {version}; this kinema reads up to {SCHEMA_VERSION}: "
                "upgrade kinema"
            )
        if version < 1:
            _migrate_to_1(db)
        if version < 2:
            _migrate_to_2(db)
        set_schema_version(db, SCHEMA_VERSION)


def _migrate_to_1(db: sqlite3.Connection) -> None:
    """Version 0 (likeness `consents`, `voice_profiles`, `voice_phrases`) to one registry.

    Voice records keep their ids, times and every field, so the consent-record hashes that
    signed manifests name stay the same.
    """
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {row[1] for row in db.execute("PRAGMA table_info(consents)")}
    old_likeness = "consents" in tables and "image_sha256" in columns
    if old_likeness:  # the old table has the new one's name: move it aside first
        db.execute("ALTER TABLE consents RENAME TO consents_v0")
    for statement in _SCHEMA:
        db.execute(statement)
    if old_likeness:
        rows = db.execute(
            "SELECT id, image_sha256, owner, scope, expires, created, source, faces, revoked FROM consents_v0"
        ).fetchall()
        for cid, digest, owner, scope, expires, created, source, faces, revoked in rows:
            db.execute(
                _INSERT,
                (
                    cid,
                    "likeness",
                    source,
                    digest,
                    owner,
                    scope,
                    expires,
                    created,
                    revoked,
                    json.dumps({"faces": faces}),
                ),
            )
        db.execute("DROP TABLE consents_v0")
    if "voice_profiles" in tables:
        for text, revoked in db.execute("SELECT record, revoked FROM voice_profiles").fetchall():
            data = json.loads(text)
            details = {key: data[key] for key in VOICE_DETAILS}
            db.execute(
                _INSERT,
                (
                    data["id"],
                    "voice",
                    data["name"],
                    data["reference_sha256"],
                    data["owner"],
                    data["scope"],
                    data["expires"],
                    data["created"],
                    revoked,
                    json.dumps(details, sort_keys=True),
                ),
            )
        db.execute("DROP TABLE voice_profiles")
    if "voice_phrases" in tables:
        db.execute(
            "INSERT OR IGNORE INTO challenges (kind, subject, text, created) "
            "SELECT 'voice', name, phrase, created FROM voice_phrases"
        )
        db.execute("DROP TABLE voice_phrases")


def _migrate_to_2(db: sqlite3.Connection) -> None:
    """Mark every voice record enrolled before the code-word check as unchecked (details
    "words_checked": false); the consent-record hashes, which do not cover it, stay the same."""
    rows = db.execute("SELECT id, details FROM consents WHERE kind = 'voice'").fetchall()
    for cid, text in rows:
        details = json.loads(text)
        if "words_checked" not in details:
            details["words_checked"] = False
            db.execute(
                "UPDATE consents SET details = ? WHERE id = ?", (json.dumps(details, sort_keys=True), cid)
            )


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConsentError(f"consent kind must be one of {', '.join(KINDS)}, got '{kind}'")
    return kind


def _row(record: Consent) -> tuple:
    return (
        record.id,
        record.kind,
        record.subject,
        record.subject_sha256,
        record.owner,
        record.scope,
        record.expires.isoformat(),
        record.created,
        record.revoked,
        json.dumps(dict(record.details), sort_keys=True),
    )


def _record(row: tuple) -> Consent:
    cid, kind, subject, digest, owner, scope, expires, created, revoked, details = row
    return Consent(
        id=cid,
        kind=kind,
        subject=subject,
        subject_sha256=digest,
        owner=owner,
        scope=scope,
        expires=dt.date.fromisoformat(expires),
        created=created,
        revoked=revoked,
        details=json.loads(details),
    )
