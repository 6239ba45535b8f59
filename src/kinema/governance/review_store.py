"""review.db: the review queue's tables, its schema version and the migrations to it;
the stored form of an item (ReviewItem) and of the manifest spec it is signed with.

    items          one row a registration (a fresh id each): the working file, its hash,
                   settings and manifest spec, who made it (creator), the latest decision
                   (reviewer, note, decided, self_review) and the exports made of it
    settings       the review policy (four_eyes: "on" or "off"), and what migrations did
    audit_anchor   the copy of the audit log's head (kinema.governance.audit writes it in
                   the same transaction as each change)

The version lives in PRAGMA user_version. Version 0 is the layout kinema wrote before
review states (no creator, no policy): opening it migrates it once, in one transaction:
old rows' creator becomes `local:<uid>` of the process migrating; items approved after a
rejection of the same id (seen in the audit log: a rerun or a second decision routed
around the rejection) become rejected; of several open items on one path (two runs to one
output) all but the newest become superseded. What changed is stored under the settings
key `migration.1` and logged as `review.migrate` when the audit log can take it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.governance import audit
from kinema.provenance.c2pa import Generation, ManifestSpec, Review, SoftBinding
from kinema.state import connect, kinema_home, schema_version, set_schema_version, transaction

__all__ = [
    "REVIEW_DB",
    "SCHEMA_VERSION",
    "ReviewAssertion",
    "ReviewError",
    "ReviewItem",
    "item_from_row",
    "local_identity",
    "now",
    "open_db",
    "select_items",
    "spec_from_dict",
    "spec_to_dict",
]

REVIEW_DB = "review.db"
SCHEMA_VERSION = 1
OPEN = ("pending", "approved")  # states a later run's file supersedes

_ITEMS = """CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    settings TEXT NOT NULL,
    spec TEXT NOT NULL,
    ingredients TEXT NOT NULL,
    reviewer TEXT,
    note TEXT,
    decided TEXT,
    exports TEXT NOT NULL,
    creator TEXT NOT NULL DEFAULT '',
    self_review INTEGER NOT NULL DEFAULT 0
)"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS items_by_status ON items (status)",
    "CREATE INDEX IF NOT EXISTS items_by_path ON items (path)",
)
_SETTINGS = "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

FIELDS = (
    "id kind path created status sha256 settings spec ingredients creator reviewer note decided "
    "exports self_review"
).split()
COLUMNS = ", ".join(FIELDS)
PLACES = ", ".join("?" for _ in FIELDS)
_JSON_FIELDS = {"settings", "spec", "ingredients", "exports"}


class ReviewError(InputError):
    """A review action kinema refuses (unknown id, another state, file changed, ...)."""


@dataclass(frozen=True)
class ReviewItem:
    """One registration of a working file in the review queue.

    path: the working file or frame folder; sha256: its content hash at registration;
    settings: its JSON sidecar; spec: the ManifestSpec (as a dict) to sign exports with;
    ingredients: [{"path", "relationship", "title"}] for re-signing; creator: who made
    it (`token:<id>` or `local:<uid>`); reviewer/note/decided: the latest decision, and
    self_review whether its reviewer was the creator; exports: [{"path", "time",
    "sha256", "by"}].
    """

    id: str
    kind: str
    path: Path
    created: str
    status: str
    sha256: str
    settings: dict[str, Any]
    spec: dict[str, Any]
    ingredients: list[dict[str, Any]] = field(default_factory=list)
    creator: str = ""
    reviewer: str | None = None
    note: str | None = None
    decided: str | None = None
    exports: list[dict[str, Any]] = field(default_factory=list)
    self_review: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what `kinema review show` prints)."""
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data

    def manifest_spec(self) -> ManifestSpec:
        """The stored spec as a ManifestSpec."""
        return spec_from_dict(self.spec)

    def row(self) -> tuple:
        """The item as an `items` row, in FIELDS order."""
        values = []
        for name in FIELDS:
            value = getattr(self, name)
            if name in _JSON_FIELDS:
                value = json.dumps(value, default=str)
            elif name == "path":
                value = str(value)
            elif name == "self_review":
                value = int(bool(value))
            values.append(value)
        return tuple(values)


@dataclass(frozen=True)
class ReviewAssertion(Review):
    """The review decision an export's manifest records (`org.kinema.review`): the
    decision, reviewer, note and time, plus the item's id, its creator and whether the
    reviewer approved their own item (self_review)."""

    item: str = ""
    creator: str = ""
    self_review: bool = False

    def to_assertion(self) -> dict[str, Any]:
        """The assertion's data."""
        return {
            **super().to_assertion(),
            "item": self.item,
            "creator": self.creator,
            "self_review": self.self_review,
        }


def spec_to_dict(spec: ManifestSpec) -> dict[str, Any]:
    """A ManifestSpec as plain JSON-able data (spec_from_dict reverses it)."""
    return json.loads(json.dumps(dataclasses.asdict(spec), default=str))


def spec_from_dict(data: Mapping[str, Any]) -> ManifestSpec:
    """The ManifestSpec that spec_to_dict wrote."""
    values = dict(data)
    if values.get("generation") is not None:
        values["generation"] = Generation(**values["generation"])
    if values.get("soft_binding") is not None:
        values["soft_binding"] = SoftBinding(**values["soft_binding"])
    if values.get("review") is not None:
        review = values["review"]
        values["review"] = (ReviewAssertion if "item" in review else Review)(**review)
    return ManifestSpec(**values)


def item_from_row(row: tuple) -> ReviewItem:
    """The ReviewItem of an `items` row selected as COLUMNS."""
    values = dict(zip(FIELDS, row, strict=True))
    for name in _JSON_FIELDS:
        values[name] = json.loads(values[name])
    values["path"] = Path(values["path"])
    values["self_review"] = bool(values["self_review"])
    return ReviewItem(**values)


def select_items(db: sqlite3.Connection, where: str = "", args: tuple = ()) -> list[ReviewItem]:
    """Items matching WHERE (SQL after WHERE, with ARGS), oldest first."""
    clause = f" WHERE {where}" if where else ""
    query = f"SELECT {COLUMNS} FROM items{clause} ORDER BY created, rowid"
    return [item_from_row(row) for row in db.execute(query, args)]


def local_identity() -> str:
    """Who this process acts as on this machine: `local:<uid>`."""
    return f"local:{os.getuid()}"


def now() -> str:
    """The time decisions are stamped with: UTC, seconds, ending in Z."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@contextmanager
def open_db(home: Path | None = None) -> Iterator[sqlite3.Connection]:
    """An autocommit connection to HOME/review.db (HOME: kinema_home()), migrated to
    SCHEMA_VERSION first; the caller opens transactions (kinema.state.transaction)."""
    home = Path(home) if home is not None else kinema_home()
    with closing(connect(home / REVIEW_DB, autocommit=True)) as db:
        if schema_version(db) < SCHEMA_VERSION:
            _migrate(db, home)
        yield db


def _migrate(db: sqlite3.Connection, home: Path) -> None:
    """Bring the database to SCHEMA_VERSION in one transaction (another process may be
    doing the same: the version is read again under the write lock)."""
    changes: dict[str, Any] = {}
    with transaction(db):
        version = schema_version(db)
        if version >= SCHEMA_VERSION:
            return
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "items" in tables:
            changes = _from_version_0(db, home)
        else:
            db.execute(_ITEMS)
        for statement in (*_INDEXES, _SETTINGS, audit.ANCHOR_SCHEMA):
            db.execute(statement)
        if changes:
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                (f"migration.{SCHEMA_VERSION}", json.dumps(changes)),
            )
        set_schema_version(db, SCHEMA_VERSION)
    if changes:
        try:
            audit.append("review.migrate", to_version=SCHEMA_VERSION, **changes)
        except audit.AuditError:
            pass  # the migration only takes rights away; the settings row keeps what it did


def _from_version_0(db: sqlite3.Connection, home: Path) -> dict[str, Any]:
    """Version 0 → 1: creator and self_review columns; decisions that routed around a
    rejection undone; superseded runs marked. Returns what changed."""
    creator = local_identity()
    db.execute("ALTER TABLE items ADD COLUMN creator TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE items ADD COLUMN self_review INTEGER NOT NULL DEFAULT 0")
    count = db.execute("UPDATE items SET creator = ?", (creator,)).rowcount
    rejected = []
    for item_id in sorted(_approved_after_rejection(home / audit.AUDIT_FILE)):
        cursor = db.execute(
            "UPDATE items SET status = 'rejected', decided = ?, note = ? WHERE id = ? AND status = 'approved'",
            (now(), "approved after a rejection; the rejection stands (migration)", item_id),
        )
        if cursor.rowcount:
            rejected.append(item_id)
    superseded = []
    paths = db.execute(
        "SELECT path FROM items WHERE status IN (?, ?) GROUP BY path HAVING count(*) > 1", OPEN
    ).fetchall()
    for (path,) in paths:
        rows = db.execute(
            "SELECT id FROM items WHERE path = ? AND status IN (?, ?) ORDER BY created DESC, rowid DESC",
            (path, *OPEN),
        ).fetchall()
        for (item_id,) in rows[1:]:
            db.execute("UPDATE items SET status = 'superseded' WHERE id = ?", (item_id,))
            superseded.append(item_id)
    return {
        "from_version": 0,
        "creator": creator,
        "items": count,
        "rejected": rejected,
        "superseded": superseded,
    }


def _approved_after_rejection(log: Path) -> set[str]:
    """Ids the audit log shows approved after a rejection of the same id. Read line by
    line and leniently: a damaged log still tells what it can."""
    rejected: set[str] = set()
    found: set[str] = set()
    try:
        data = log.read_bytes()
    except OSError:
        return found
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        fields = record.get("fields") if isinstance(record, dict) else None
        if not isinstance(fields, dict) or not isinstance(fields.get("id"), str):
            continue
        if record.get("event") == "review.reject":
            rejected.add(fields["id"])
        elif record.get("event") == "review.approve" and fields["id"] in rejected:
            found.add(fields["id"])
    return found
