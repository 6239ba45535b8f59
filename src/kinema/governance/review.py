"""The human review gate: every working file waits as an item until a person decides, and
only approved items can be exported (published). DESIGN.md, "Review states":

    register ─► pending ─┬─ approve ─► approved ─── withdraw ─► withdrawn   (final)
                         └─ reject  ─► rejected                             (final)
    a later registration of the same path: pending | approved ─► superseded (final)

Every registration gets a fresh id, so rerunning a command makes a new item and never
resets a decision. A decision is `UPDATE items ... WHERE id = ? AND status = <expected>`
inside `BEGIN IMMEDIATE`, with the row count checked: of two decisions racing on one
item exactly one wins; the other is refused with the state it found. Identities are
`token:<id>` (the web) and `local:<uid>` (the CLI and Python). Approving one's own item
(self-review) is allowed unless the four-eyes policy is on (`set_four_eyes`), and is
recorded in the export's manifest.

`export` copies an approved item to OUT and signs the copy again with the stored manifest
spec plus the review assertion (org.kinema.review, c2pa.published); re-signing replaces
the copy's manifest. Export refuses items not approved and working files that changed
since they were registered.

Every change follows the audit protocol (kinema.governance.audit): check the log (a
break refuses before anything changes), write the intent entry, rename the file if any,
commit review.db with its copy of the log's head, write the done entry. A change a crash
interrupted is reconciled by the next one: committed changes get their done entry, files
renamed into place without a commit are removed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kinema.governance import audit
from kinema.governance.review_files import (
    check_target,
    content_hash,
    derived_spec,
    export_ingredients,
    ingredient_dict,
    remove_output,
    staged_export,
)
from kinema.governance.review_store import (
    COLUMNS,
    OPEN,
    PLACES,
    ReviewAssertion,
    ReviewError,
    ReviewItem,
    item_from_row,
    local_identity,
    now,
    open_db,
    select_items,
    spec_from_dict,
    spec_to_dict,
)
from kinema.provenance.c2pa import Ingredient, ManifestSpec, ProvenanceError
from kinema.provenance.keys import ensure_keys
from kinema.state import kinema_home, transaction

__all__ = [
    "FINAL",
    "MEANINGS",
    "STATUSES",
    "FourEyesError",
    "ReviewError",
    "ReviewItem",
    "StateError",
    "approve",
    "check_gate",
    "check_identity",
    "content_hash",
    "export",
    "four_eyes",
    "get",
    "list_items",
    "local_identity",
    "new_id",
    "reconcile",
    "register",
    "reject",
    "set_four_eyes",
    "spec_from_dict",
    "spec_to_dict",
    "statuses",
    "withdraw",
]

STATUSES = ("pending", "approved", "rejected", "withdrawn", "superseded")
FINAL = ("rejected", "withdrawn", "superseded")
MEANINGS = {
    "pending": "waiting for a decision; cannot be exported",
    "approved": "a reviewer approved it; it can be exported",
    "rejected": "a reviewer rejected it; final, never exported",
    "withdrawn": "approved, then withdrawn; final, exports refused from then on",
    "superseded": "a later run replaced its file; final (review the newer item)",
}
# action: (the state it needs, the state it leaves)
ACTIONS = {
    "approve": ("pending", "approved"),
    "reject": ("pending", "rejected"),
    "withdraw": ("approved", "withdrawn"),
}
PAST = {"approve": "approved", "reject": "rejected", "withdraw": "withdrawn", "export": "exported"}
MIN_PREFIX = 4
IDENTITY = re.compile(r"^(token:[0-9A-Za-z_-]{1,64}|local:[0-9]{1,10})$")


class StateError(ReviewError):
    """An action the item's state does not allow; names the state (web: 409)."""

    def __init__(self, item_id: str, state: str, action: str):
        self.item_id, self.state, self.action = item_id, state, action
        needed = "approved" if action in ("withdraw", "export") else "pending"
        plural = "approved items" if action == "export" else f"a {needed} item"
        why = {
            "superseded": " (a later run replaced its file)",
            "rejected": " (final)",
            "withdrawn": " (final)",
        }
        super().__init__(
            f"item {item_id} is {state}{why.get(state, '')}; only {plural} can be {PAST[action]}"
        )


class FourEyesError(ReviewError):
    """Approving one's own item while the four-eyes policy is on (web: 403)."""


# ----------------------------------------------------------------------------- identities and ids


def check_identity(identity: str) -> str:
    """IDENTITY when it is `token:<id>` or `local:<uid>`; else ReviewError."""
    if not isinstance(identity, str) or not IDENTITY.match(identity):
        raise ReviewError(f"'{str(identity)[:40]}' is not an identity (token:<id> or local:<uid>)")
    return identity


def new_id() -> str:
    """A fresh item id (8 hex digits) no item has: what a registration is filed under."""
    with open_db() as db:
        return _free_id(db)


def _free_id(db: sqlite3.Connection) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if db.execute("SELECT 1 FROM items WHERE id = ?", (candidate,)).fetchone() is None:
            return candidate


# ----------------------------------------------------------------------------- registration


def register(
    path: str | os.PathLike,
    sidecar: Mapping[str, Any],
    kind: str,
    manifest: ManifestSpec | None = None,
    ingredients: Sequence[str | os.PathLike | Ingredient] = (),
    item_id: str | None = None,
    *,
    creator: str | None = None,
    staged: str | os.PathLike | None = None,
    install: Callable[[], None] | None = None,
) -> ReviewItem:
    """Put a working file (or frame folder) at PATH in the queue as a new "pending" item;
    returns it. Any open (pending or approved) item of the same path becomes superseded.

    SIDECAR is its settings record; KIND says what it is ("clip", "image", "audio").
    MANIFEST is the spec it was signed with (None: rebuilt from the file's manifest, or
    its sidecar). INGREDIENTS are the source files an edit was made from. ITEM_ID is the
    id to file it under (default: a fresh one; an id in use is refused). CREATOR is who
    made it (default local:<uid>). STAGED and INSTALL register a file before it appears:
    STAGED holds its bytes, and INSTALL (called after the audit intent, before the
    commit) renames it to PATH. Refuses (ReviewError) a missing file, an empty kind, a
    manifest that is Invalid; (AuditBroken) a broken audit log, before anything changes.
    """
    target = Path(os.fspath(path)).resolve()
    source = Path(os.fspath(staged)) if staged is not None else target
    if not source.exists():
        raise ReviewError(f"cannot register '{path}': it does not exist")
    if not isinstance(kind, str) or not kind.strip():
        raise ReviewError("a review item needs a kind (clip, image, audio, ...)")
    who = check_identity(creator) if creator is not None else local_identity()
    if item_id is not None:
        item_id = item_id.strip()
        if not item_id or any(c.isspace() for c in item_id):
            raise ReviewError(f"review id '{item_id}' must be non-empty with no spaces")
    check_gate()
    created = now()
    spec = manifest if manifest is not None else derived_spec(source, target.name, dict(sidecar))
    if spec.when is None:
        spec = dataclasses.replace(spec, when=created)
    item = ReviewItem(
        id=item_id or "",
        kind=kind.strip(),
        path=target,
        created=created,
        status="pending",
        sha256=content_hash(source),
        settings=_plain(dict(sidecar)),
        spec=spec_to_dict(spec),
        ingredients=[ingredient_dict(i) for i in ingredients],
        creator=who,
    )
    opened = None
    try:
        with open_db() as db, transaction(db):
            if item_id is None:
                item = dataclasses.replace(item, id=_free_id(db))
            elif db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone():
                raise ReviewError(f"review id {item_id} is already used; every registration gets a fresh id")
            older = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM items WHERE path = ? AND status IN (?, ?)", (str(target), *OPEN)
                )
            ]
            opened = audit.intent(
                "review.register",
                id=item.id,
                kind=item.kind,
                path=str(target),
                sha256=item.sha256,
                creator=who,
                supersedes=older,
            )
            if install is not None:
                install()
            db.execute(f"INSERT INTO items ({COLUMNS}) VALUES ({PLACES})", item.row())
            if older:
                db.executemany("UPDATE items SET status = 'superseded' WHERE id = ?", [(i,) for i in older])
            audit.write_anchor(db, opened.anchor)
    except BaseException as exc:
        _close(opened, f"not applied: {exc}")
        raise
    _close(opened, "applied")
    return item


# ----------------------------------------------------------------------------- reading


def list_items(status: str | None = None, creator: str | None = None) -> list[ReviewItem]:
    """Items in the queue, oldest first; only those with STATUS (one of STATUSES; others
    are refused) and made by CREATOR, when given."""
    where, args = [], []
    if status is not None:
        if status not in STATUSES:
            raise ReviewError(f"status must be one of {', '.join(STATUSES)}, got '{status}'")
        where.append("status = ?")
        args.append(status)
    if creator is not None:
        where.append("creator = ?")
        args.append(creator)
    with open_db() as db:
        return select_items(db, " AND ".join(where), tuple(args))


def get(item_id: str) -> ReviewItem:
    """The item with this id (or a unique prefix of at least 4 characters of it).
    Raises ReviewError for an unknown or ambiguous id."""
    key = (item_id or "").strip()
    with open_db() as db:
        rows = select_items(db, "id = ?", (key,))
        if not rows and len(key) >= MIN_PREFIX:
            rows = select_items(db, "substr(id, 1, ?) = ?", (len(key), key))
            if len(rows) > 1:
                raise ReviewError(f"review id '{key}' is ambiguous: {', '.join(r.id for r in rows[:5])}")
    if not rows:
        raise ReviewError(f"no review item with id '{key}'")
    return rows[0]


def statuses(ids: Iterable[str]) -> dict[str, str]:
    """The state of each of these items (ids not found are left out)."""
    wanted = sorted({i for i in ids if isinstance(i, str)})
    found: dict[str, str] = {}
    with open_db() as db:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update(db.execute(f"SELECT id, status FROM items WHERE id IN ({marks})", chunk).fetchall())
    return found


# ----------------------------------------------------------------------------- decisions


def approve(
    item_id: str, note: str | None = None, reviewer: str | None = None, *, creator: str | None = None
) -> ReviewItem:
    """Approve a pending item so it can be exported; returns it updated.

    REVIEWER is an identity (default local:<uid>). CREATOR is who made the item as the
    caller's own records know it (the web: the token that owns the take); approving it is
    self-review when the reviewer is the item's creator or CREATOR, recorded as such, and
    refused (FourEyesError) while four-eyes is on. Refuses (StateError) an item that is
    not pending and (ReviewError) a working file that changed or vanished since it was
    registered: the reviewer would be approving something else."""
    return _decide(item_id, "approve", note, reviewer, creator)


def reject(
    item_id: str, note: str | None = None, reviewer: str | None = None, *, creator: str | None = None
) -> ReviewItem:
    """Reject a pending item: final, it is never exported; returns it. Refuses
    (StateError) an item that is not pending."""
    return _decide(item_id, "reject", note, reviewer, creator)


def withdraw(
    item_id: str, note: str | None = None, reviewer: str | None = None, *, creator: str | None = None
) -> ReviewItem:
    """Withdraw an approved item: final, exports are refused from then on (copies
    already published stay where they are); returns it. Refuses (StateError) an item that
    is not approved."""
    return _decide(item_id, "withdraw", note, reviewer, creator)


def four_eyes() -> bool:
    """Whether the four-eyes policy is on: no one may approve an item they made."""
    with open_db() as db:
        return _four_eyes(db)


def set_four_eyes(on: bool, by: str | None = None) -> bool:
    """Turn the four-eyes policy on or off (an audited change by BY, default
    local:<uid>); returns False when it already was so (nothing is logged then)."""
    who = check_identity(by) if by is not None else local_identity()
    value = "on" if on else "off"
    check_gate()
    opened = None
    try:
        with open_db() as db, transaction(db):
            if _four_eyes(db) == on:
                return False
            opened = audit.intent("review.policy", four_eyes=value, by=who)
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('four_eyes', ?)", (value,))
            audit.write_anchor(db, opened.anchor)
    except BaseException as exc:
        _close(opened, f"not applied: {exc}")
        raise
    _close(opened, "applied")
    return True


def _four_eyes(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT value FROM settings WHERE key = 'four_eyes'").fetchone()
    return bool(row) and row[0] == "on"


def _decide(
    item_id: str, action: str, note: str | None, reviewer: str | None, creator: str | None
) -> ReviewItem:
    expected, status = ACTIONS[action]
    who = check_identity(reviewer) if reviewer is not None else local_identity()
    text = (note.strip() or None) if note else None
    item = get(item_id)
    check_gate()
    if item.status != expected:
        raise StateError(item.id, item.status, action)
    self_review = who in {item.creator, creator}
    if action == "approve":
        _check_unchanged(item)
    when = now()
    opened = None
    try:
        with open_db() as db, transaction(db):
            found = db.execute("SELECT status FROM items WHERE id = ?", (item.id,)).fetchone()[0]
            if found != expected:  # another decision won
                raise StateError(item.id, found, action)
            if action == "approve" and self_review and _four_eyes(db):
                raise FourEyesError(
                    f"item {item.id} was made by {who}; four-eyes review is on, so someone else must approve it"
                )
            opened = audit.intent(
                f"review.{action}",
                id=item.id,
                previous=expected,
                status=status,
                reviewer=who,
                creator=item.creator,
                self_review=self_review,
                note=text,
            )
            cursor = db.execute(
                "UPDATE items SET status = ?, reviewer = ?, note = ?, decided = ?, self_review = ? "
                "WHERE id = ? AND status = ?",
                (status, who, text, when, int(self_review), item.id, expected),
            )
            if cursor.rowcount != 1:
                raise StateError(item.id, "changed", action)
            audit.write_anchor(db, opened.anchor)
    except BaseException as exc:
        _close(opened, f"not applied: {exc}")
        raise
    _close(opened, "applied")
    return dataclasses.replace(
        item, status=status, reviewer=who, note=text, decided=when, self_review=self_review
    )


# ----------------------------------------------------------------------------- export


def export(item_id: str, out_path: str | os.PathLike, *, by: str | None = None) -> Path:
    """Publish an approved item to OUT_PATH (BY: who exports, default local:<uid>);
    returns OUT_PATH.

    Copies the working file (or frame folder) to temporary names beside OUT_PATH, signs
    the copy with the stored manifest spec plus the review assertion, writes the sidecar;
    then, after the audit intent, renames everything into place (an existing output is
    replaced; a frame folder holding files kinema did not write is refused) and records
    the export. Refuses (StateError) an item that is not approved, (ReviewError or the io
    layer's VideoError, both InputError) a working file that changed since registration,
    an OUT_PATH of another format than the working file or the working file itself, and
    (AuditBroken) a broken audit log: then no file appears.
    """
    who = check_identity(by) if by is not None else local_identity()
    item = get(item_id)
    check_gate()
    if item.status != "approved":
        raise StateError(item.id, item.status, "export")
    _check_unchanged(item)
    out = Path(os.fspath(out_path))
    check_target(item.id, item.path, out)
    keys, _ = ensure_keys(kinema_home())
    review = ReviewAssertion(
        decision=item.status,
        reviewer=item.reviewer or "",
        note=item.note or "",
        time=item.decided or now(),
        item=item.id,
        creator=item.creator,
        self_review=item.self_review,
    )
    spec = dataclasses.replace(item.manifest_spec(), title=out.name, review=review)
    parts, dropped = export_ingredients(item.path, item.ingredients, spec)
    decision = {k: v for k, v in review.to_assertion().items() if k != "item"}
    settings = {**item.settings, "review": {"id": item.id, **decision}}
    opened = None
    try:
        with staged_export(item.path, out, spec, keys, parts, settings) as (copy, install):
            record = {"path": str(out.resolve()), "time": now(), "sha256": content_hash(copy), "by": who}
            with open_db() as db, transaction(db):
                found = db.execute("SELECT status FROM items WHERE id = ?", (item.id,)).fetchone()[0]
                if found != "approved":  # withdrawn since
                    raise StateError(item.id, found, "export")
                opened = audit.intent(
                    "review.export",
                    id=item.id,
                    out=record["path"],
                    sha256=record["sha256"],
                    by=who,
                    reviewer=review.reviewer,
                    self_review=review.self_review,
                    dropped_ingredients=dropped,
                )
                install()
                exports = [*item_from_row(_row(db, item.id)).exports, record]
                cursor = db.execute(
                    "UPDATE items SET exports = ? WHERE id = ? AND status = 'approved'",
                    (_json(exports), item.id),
                )
                if cursor.rowcount != 1:
                    raise StateError(item.id, "changed", "export")
                audit.write_anchor(db, opened.anchor)
    except ProvenanceError as exc:
        _close(opened, f"not applied: {exc}")
        raise ReviewError(f"cannot export {item.id}: {exc}") from exc
    except BaseException as exc:
        _close(opened, f"not applied: {exc}")
        raise
    _close(opened, "applied")
    return out


def _check_unchanged(item: ReviewItem) -> None:
    if not item.path.exists():
        raise ReviewError(f"item {item.id}: working file {item.path} is gone")
    if content_hash(item.path) != item.sha256:
        raise ReviewError(
            f"item {item.id}: working file {item.path} changed since it was registered; register it again for review"
        )


# ----------------------------------------------------------------------------- protocol


def reconcile() -> list[dict[str, Any]]:
    """Close the changes a crash interrupted (intent entries without a done entry whose
    process is gone): a committed change gets its done entry ("applied"); a file renamed
    into place without a commit is removed ("rolled back"). Returns the done entries."""
    closed = []
    for record in audit.abandoned_intents():
        fields = record.get("fields") or {}
        outcome = _settle(record["event"], fields)
        written = audit.done(record, outcome, reconciled=True)
        if written is not None:
            closed.append(written)
    return closed


def _settle(event: str, fields: dict[str, Any]) -> str:
    """What became of an interrupted change, after undoing its uncommitted file."""
    with open_db() as db:
        row = _row(db, fields.get("id")) if fields.get("id") else None
        item = item_from_row(row) if row else None
        if event == "review.policy":
            return "applied" if _four_eyes(db) == (fields.get("four_eyes") == "on") else "not applied"
    if event in ("review.approve", "review.reject", "review.withdraw"):
        return "applied" if item is not None and item.status == fields.get("status") else "not applied"
    if event == "review.register":
        if item is not None:
            return "applied"
        return _undo(Path(str(fields.get("path"))), fields.get("sha256"))
    if event == "review.export":
        if item is not None and any(
            e.get("path") == fields.get("out") and e.get("sha256") == fields.get("sha256")
            for e in item.exports
        ):
            return "applied"
        return _undo(Path(str(fields.get("out"))), fields.get("sha256"))
    return "unknown change; nothing done"


def _undo(path: Path, digest: Any) -> str:
    if path.exists() and content_hash(path) == digest:
        remove_output(path)
        return f"rolled back: removed {path}, which was never committed"
    return "not applied"


def check_gate() -> None:
    """What every change does first: refuse on a broken audit log (AuditBroken, naming
    `kinema audit verify`; nothing has changed), then reconcile the changes a crash
    interrupted. Publishing calls it before it renders a file."""
    if audit.abandoned_intents():
        reconcile()


def _close(opened: audit.Intent | None, outcome: str) -> None:
    """Write OPENED's done entry. A log that refuses it now leaves the intent open for
    reconcile: the change itself stands or fell already."""
    if opened is None:
        return
    try:
        audit.done(opened, outcome[:300])
    except audit.AuditError:
        pass


def _row(db: sqlite3.Connection, item_id: str) -> tuple | None:
    return db.execute(f"SELECT {COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, default=str))
