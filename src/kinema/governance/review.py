"""The human review gate: working files wait as "pending" until a person approves them,
and only approved items can be exported (published).

The queue is SQLite at KINEMA_HOME/review.db. `register` records a working file (a media
file or a folder of PNG frames) with its JSON sidecar, the manifest spec needed to sign it
again, and the SHA-256 of its bytes. `approve` and `reject` record a decision (who, when,
note). `export` copies an approved item to OUT atomically and signs the copy again with the
same manifest spec plus the review decision (`org.kinema.review` and a c2pa.published
action): re-signing replaces the copy's manifest, it does not stack one on top. The
sidecar (OUT.json, or settings.json in a frame folder) is written beside the copy with the
decision added.

Export refuses items that are not approved and working files that changed (or vanished)
since they were registered. Every registration, decision and export is audit-logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.governance import audit
from kinema.io import check_output_path, output_kind
from kinema.provenance.c2pa import (
    FRAME_PATTERN,
    TRAINED_ALGORITHMIC_MEDIA,
    Generation,
    Ingredient,
    ManifestSpec,
    ProvenanceError,
    Review,
    SoftBinding,
    read_manifest,
    sidecar_path,
    sign_file,
)
from kinema.provenance.keys import ensure_keys, key_paths
from kinema.state import connect, kinema_home

__all__ = [
    "STATUSES",
    "ReviewError",
    "ReviewItem",
    "approve",
    "export",
    "get",
    "list_items",
    "register",
    "reject",
    "spec_from_dict",
    "spec_to_dict",
]

REVIEW_DB = "review.db"
STATUSES = ("pending", "approved", "rejected")
MIN_PREFIX = 4
REVIEWER_ENV = "KINEMA_REVIEWER"


class ReviewError(InputError):
    """A review action kinema refuses (unknown id, not approved, file changed, ...)."""


@dataclass(frozen=True)
class ReviewItem:
    """One working file in the review queue.

    path: the working file or frame folder; sha256: its content hash at registration;
    settings: its JSON sidecar; spec: the ManifestSpec (as a dict, see spec_to_dict) to
    sign exports with; ingredients: [{"path", "relationship", "title"}] for re-signing;
    reviewer/note/decided: the latest decision; exports: [{"path", "time", "sha256"}].
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
    reviewer: str | None = None
    note: str | None = None
    decided: str | None = None
    exports: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what `kinema review show` prints)."""
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data

    def manifest_spec(self) -> ManifestSpec:
        """The stored spec as a ManifestSpec."""
        return spec_from_dict(self.spec)


# ----------------------------------------------------------------------------- public API


def register(
    path: str | os.PathLike,
    sidecar: Mapping[str, Any],
    kind: str,
    manifest: ManifestSpec | None = None,
    ingredients: Sequence[str | os.PathLike | Ingredient] = (),
    item_id: str | None = None,
) -> ReviewItem:
    """Put a working file (or frame folder) in the queue as "pending"; returns the item.

    SIDECAR is its settings record (stored, and written beside exports); KIND says what it
    is ("clip", "image", "audio", ...). MANIFEST is the spec it was signed with; when None
    it is rebuilt from the file's own manifest (or, for a file without one, from the
    sidecar). INGREDIENTS are the source files an edit was made from, used again when
    exports are signed. ITEM_ID picks the id (default: a fresh random one); registering
    the same path again under its id starts its review over. Refuses (ReviewError) a
    missing path, an empty kind, a file whose manifest is Invalid, and an id in use for
    another file.
    """
    target = Path(os.fspath(path)).resolve()
    if not target.exists():
        raise ReviewError(f"cannot register '{path}': it does not exist")
    if not isinstance(kind, str) or not kind.strip():
        raise ReviewError("a review item needs a kind (clip, image, audio, ...)")
    created = _now()
    digest = content_hash(target)
    spec = manifest if manifest is not None else _derived_spec(target, dict(sidecar))
    if spec.when is None:
        spec = dataclasses.replace(spec, when=created)
    parts = [_ingredient_dict(item) for item in ingredients]
    with _db() as db:
        if item_id is not None:
            item_id = item_id.strip()
            if not item_id or any(c.isspace() for c in item_id):
                raise ReviewError(f"review id '{item_id}' must be non-empty with no spaces")
            row = db.execute("SELECT path FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is not None and Path(row[0]) != target:
                raise ReviewError(f"review id {item_id} is already used for {row[0]}")
            db.execute("DELETE FROM items WHERE id = ?", (item_id,))
        else:
            item_id = _new_id(db)
        item = ReviewItem(
            id=item_id,
            kind=kind.strip(),
            path=target,
            created=created,
            status="pending",
            sha256=digest,
            settings=json.loads(json.dumps(dict(sidecar), default=str)),
            spec=spec_to_dict(spec),
            ingredients=parts,
        )
        db.execute(f"INSERT INTO items ({_COLUMNS}) VALUES ({_PLACES})", _row(item))
    audit.append("review.register", id=item.id, kind=item.kind, path=str(target), sha256=digest)
    return item


def list_items(status: str | None = None) -> list[ReviewItem]:
    """Items in the queue, oldest first; only those with STATUS when given (pending,
    approved or rejected; anything else is refused)."""
    query, args = f"SELECT {_COLUMNS} FROM items", ()
    if status is not None:
        if status not in STATUSES:
            raise ReviewError(f"status must be one of {', '.join(STATUSES)}, got '{status}'")
        query, args = query + " WHERE status = ?", (status,)
    with _db() as db:
        return [_item(row) for row in db.execute(query + " ORDER BY created, id", args)]


def get(item_id: str) -> ReviewItem:
    """The item with this id (or a unique prefix of at least 4 characters of it).
    Raises ReviewError for an unknown or ambiguous id."""
    key = (item_id or "").strip()
    with _db() as db:
        row = db.execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (key,)).fetchone()
        if row is None and len(key) >= MIN_PREFIX:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM items WHERE substr(id, 1, ?) = ?", (len(key), key)
            ).fetchall()
            if len(rows) > 1:
                ids = ", ".join(r[0] for r in rows[:5])
                raise ReviewError(f"review id '{key}' is ambiguous: {ids}")
            row = rows[0] if rows else None
    if row is None:
        raise ReviewError(f"no review item with id '{key}'")
    return _item(row)


def approve(item_id: str, note: str | None = None, reviewer: str | None = None) -> ReviewItem:
    """Approve an item so it can be exported; returns it updated.

    REVIEWER defaults to $KINEMA_REVIEWER, else the login name. Refuses an item already
    approved and a working file that changed or vanished since registration (the
    reviewer would be approving something else)."""
    return _decide(item_id, "approved", note, reviewer)


def reject(item_id: str, note: str | None = None, reviewer: str | None = None) -> ReviewItem:
    """Reject an item (it can no longer be exported unless approved later); returns it.
    Refuses an item already rejected."""
    return _decide(item_id, "rejected", note, reviewer)


def export(item_id: str, out_path: str | os.PathLike) -> Path:
    """Publish an approved item to OUT_PATH; returns OUT_PATH.

    Copies the working file (or frame folder) to a temporary name beside OUT_PATH, signs
    the copy with the stored manifest spec plus the review decision, writes the sidecar
    beside it, then renames everything into place (an existing output is replaced; a
    frame folder holding files kinema did not write is refused). Refuses (ReviewError or
    the io layer's VideoError, both InputError) an item that is not approved, a working
    file that changed since registration, an OUT_PATH of another format than the working
    file, and OUT_PATH being the working file itself.
    """
    item = get(item_id)
    if item.status != "approved":
        raise ReviewError(f"item {item.id} is {item.status}; only approved items can be exported")
    _check_unchanged(item)
    out = Path(os.fspath(out_path))
    _check_target(item, out)
    paths, _ = ensure_keys(kinema_home())
    review = Review(
        decision=item.status,
        reviewer=item.reviewer or "",
        note=item.note or "",
        time=item.decided or _now(),
    )
    spec = dataclasses.replace(item.manifest_spec(), title=out.name, review=review)
    parts, dropped = _export_ingredients(item, spec)
    settings = {
        **item.settings,
        "review": {
            "id": item.id,
            "decision": review.decision,
            "reviewer": review.reviewer,
            "note": review.note,
            "time": review.time,
        },
    }
    try:
        if item.path.is_dir():
            _export_folder(item.path, out, spec, paths, parts, settings)
        else:
            _export_file(item.path, out, spec, paths, parts, settings)
    except ProvenanceError as exc:
        raise ReviewError(f"cannot export {item.id}: {exc}") from exc
    record = {"path": str(out.resolve()), "time": _now(), "sha256": content_hash(out)}
    with _db() as db:
        db.execute(
            "UPDATE items SET exports = ? WHERE id = ?",
            (json.dumps([*item.exports, record]), item.id),
        )
    audit.append(
        "review.export",
        id=item.id,
        out=record["path"],
        sha256=record["sha256"],
        reviewer=review.reviewer,
        dropped_ingredients=dropped,
    )
    return out


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes; of a frame folder, over its frame_NNNN.png files (each
    name and its bytes, in order)."""
    path = Path(os.fspath(path))
    digest = hashlib.sha256()
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if FRAME_PATTERN.match(p.name))
        for frame in frames:
            digest.update(frame.name.encode() + b"\0")
            _hash_into(digest, frame)
    else:
        _hash_into(digest, path)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- manifest specs


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
        values["review"] = Review(**values["review"])
    return ManifestSpec(**values)


def _derived_spec(path: Path, sidecar: dict[str, Any]) -> ManifestSpec:
    """The spec of the file's current manifest, or one built from its sidecar."""
    keys = key_paths(kinema_home())
    try:
        result = read_manifest(path, keys.root_cert if keys.exist() else None)
    except ProvenanceError as exc:
        raise ReviewError(f"cannot register '{path.name}': {exc}") from exc
    if result["state"] == "Invalid":
        raise ReviewError(f"cannot register '{path.name}': its manifest is invalid ({result['reason']})")
    claims = result["active_manifest"]
    if result["state"] == "Absent" or not claims:
        return _spec_from_sidecar(path, sidecar)
    return _spec_from_claims(path, claims)


def _spec_from_claims(path: Path, claims: dict[str, Any]) -> ManifestSpec:
    generation = None
    recorded = claims.get("generation")
    if isinstance(recorded, dict):
        known = {"model", "model_hash", "seed", "prompt", "negative_prompt", "settings"}
        details = {k: v for k, v in recorded.items() if k not in known}
        # Hashes of a hidden prompt stay as details; those of a shown one are recomputed.
        for name in ("prompt", "negative_prompt"):
            if recorded.get(name) is not None:
                details.pop(f"{name}_sha256", None)
        generation = Generation(
            model=str(recorded.get("model") or "unknown"),
            model_hash=recorded.get("model_hash"),
            seed=recorded.get("seed"),
            prompt=recorded.get("prompt"),
            negative_prompt=recorded.get("negative_prompt"),
            settings=recorded.get("settings") or {},
            details=details,
        )
    binding = claims.get("soft_binding")
    soft = None
    if isinstance(binding, dict) and binding.get("payload_hex") is not None:
        soft = SoftBinding(binding.get("algorithm") or "", binding["payload_hex"])
    actions = claims.get("actions") or []
    main = next((a for a in actions if a.get("action") in ("c2pa.created", "c2pa.edited")), {})
    edit = main.get("description") if main.get("action") == "c2pa.edited" else None
    return ManifestSpec(
        title=claims.get("title") or path.name,
        digital_source_type=claims.get("digital_source_type") or TRAINED_ALGORITHMIC_MEDIA,
        edit=edit,
        generation=generation,
        soft_binding=soft,
        when=main.get("when"),
    )


def _spec_from_sidecar(path: Path, sidecar: dict[str, Any]) -> ManifestSpec:
    hidden = sidecar.get("prompt") is None and sidecar.get("prompt_sha256") is not None
    named = {"id", "model", "model_hash", "seed", "prompt", "negative_prompt", "prompt_sha256"}
    generation = Generation(
        model=str(sidecar.get("model") or "unknown"),
        model_hash=sidecar.get("model_hash"),
        seed=sidecar.get("seed"),
        prompt=sidecar.get("prompt"),
        negative_prompt=sidecar.get("negative_prompt"),
        settings={k: v for k, v in sidecar.items() if k not in named},
        details={"prompt_sha256": sidecar["prompt_sha256"]} if hidden else {},
    )
    return ManifestSpec(title=path.name, generation=generation)


def _ingredient_dict(item: str | os.PathLike | Ingredient) -> dict[str, Any]:
    if isinstance(item, Ingredient):
        return {
            "path": str(Path(item.path).resolve()),
            "relationship": item.relationship,
            "title": item.title,
        }
    return {"path": str(Path(os.fspath(item)).resolve()), "relationship": None, "title": None}


def _export_ingredients(item: ReviewItem, spec: ManifestSpec) -> tuple[list, list[str]]:
    """The ingredients to sign the export with, and the paths that are gone. An edit whose
    source is gone names the working file as its parent instead (its manifest carries the
    source's)."""
    parts: list[Any] = []
    dropped = []
    for entry in item.ingredients:
        if not Path(entry["path"]).exists():
            dropped.append(entry["path"])
        elif entry.get("relationship"):
            parts.append(Ingredient(Path(entry["path"]), entry["relationship"], entry.get("title")))
        else:
            parts.append(Path(entry["path"]))
    if spec.edit and (dropped or not parts):
        others = [p for p in parts if isinstance(p, Ingredient) and p.relationship != "parentOf"]
        parts = [Ingredient(item.path, "parentOf", item.path.name), *others]
    return parts, dropped


# ----------------------------------------------------------------------------- export helpers


def _check_unchanged(item: ReviewItem) -> None:
    if not item.path.exists():
        raise ReviewError(f"item {item.id}: working file {item.path} is gone")
    if content_hash(item.path) != item.sha256:
        raise ReviewError(
            f"item {item.id}: working file {item.path} changed since it was registered; "
            "register it again for review"
        )


def _check_target(item: ReviewItem, out: Path) -> None:
    """Refuse an output of another format than the working file, or the working file."""
    check_output_path(out)
    kind = output_kind(out)
    if item.path.is_dir():
        if kind != "frames":
            raise ReviewError(
                f"item {item.id} is a frame folder; export it to a folder name, not '{out.name}'"
            )
    elif kind == "frames" or out.suffix.lower() != item.path.suffix.lower():
        raise ReviewError(
            f"item {item.id} is a {item.path.suffix} file; export keeps the format, so give "
            f"a name ending in {item.path.suffix}"
        )
    if out.resolve() == item.path:
        raise ReviewError(f"export needs a new path, not the working file {item.path}")


def _export_file(source: Path, out: Path, spec, keys, parts, settings) -> None:
    """Copy, sign, write sidecars under temp names beside OUT, then rename them in."""
    token = secrets.token_hex(4)
    temp = out.with_name(f".{out.stem}.{token}.export{out.suffix}")
    json_temp = out.with_name(f".{out.name}.{token}.json")
    try:
        shutil.copyfile(source, temp)
        os.chmod(temp, 0o644)
        manifest_temp = sign_file(temp, spec, keys, parts)
        _write_json(json_temp, settings)
        if manifest_temp is not None:
            os.replace(manifest_temp, sidecar_path(out))
        os.replace(json_temp, out.with_name(out.name + ".json"))
        os.replace(temp, out)
    finally:
        for leftover in (temp, json_temp, sidecar_path(temp)):
            leftover.unlink(missing_ok=True)


def _export_folder(source: Path, out: Path, spec, keys, parts, settings) -> None:
    """Copy the frames into a temp folder beside OUT, sign them, then swap it in."""
    target = Path(os.fspath(out).rstrip("/" + os.sep) or os.fspath(out))
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = None
    try:
        for frame in sorted(p for p in source.iterdir() if FRAME_PATTERN.match(p.name)):
            shutil.copyfile(frame, staging / frame.name)
            os.chmod(staging / frame.name, 0o644)
        sign_file(staging, spec, keys, parts)
        _write_json(staging / "settings.json", settings)
        os.chmod(staging, 0o755)
        if target.exists():
            old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
            os.rename(target, old)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not target.exists():
            os.rename(old, target)
            old = None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.write("\n")
    os.chmod(path, 0o644)


def _hash_into(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


# ----------------------------------------------------------------------------- storage


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
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
    exports TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_status ON items (status);
"""
_FIELDS = (
    "id kind path created status sha256 settings spec ingredients reviewer note decided exports"
).split()
_COLUMNS = ", ".join(_FIELDS)
_PLACES = ", ".join("?" for _ in _FIELDS)
_JSON_FIELDS = {"settings", "spec", "ingredients", "exports"}


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    """A connection to HOME/review.db in one transaction (committed on success)."""
    with closing(connect(kinema_home() / REVIEW_DB)) as connection:
        with connection:
            connection.executescript(_SCHEMA)
            yield connection


def _row(item: ReviewItem) -> tuple:
    values = []
    for name in _FIELDS:
        value = getattr(item, name)
        if name in _JSON_FIELDS:
            value = json.dumps(value, default=str)
        elif name == "path":
            value = str(value)
        values.append(value)
    return tuple(values)


def _item(row: tuple) -> ReviewItem:
    values = dict(zip(_FIELDS, row, strict=True))
    for name in _JSON_FIELDS:
        values[name] = json.loads(values[name])
    values["path"] = Path(values["path"])
    return ReviewItem(**values)


def _decide(item_id: str, decision: str, note: str | None, reviewer: str | None) -> ReviewItem:
    item = get(item_id)
    if item.status == decision:
        raise ReviewError(f"item {item.id} is already {decision}")
    if decision == "approved":
        _check_unchanged(item)
    who = (reviewer or os.environ.get(REVIEWER_ENV) or _login()).strip() or "unknown"
    when = _now()
    text = note.strip() if note else None
    with _db() as db:
        db.execute(
            "UPDATE items SET status = ?, reviewer = ?, note = ?, decided = ? WHERE id = ?",
            (decision, who, text, when, item.id),
        )
    event = "review.approve" if decision == "approved" else "review.reject"
    audit.append(event, id=item.id, previous=item.status, reviewer=who, note=text)
    return dataclasses.replace(item, status=decision, reviewer=who, note=text, decided=when)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _new_id(db: sqlite3.Connection) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if db.execute("SELECT 1 FROM items WHERE id = ?", (candidate,)).fetchone() is None:
            return candidate


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
