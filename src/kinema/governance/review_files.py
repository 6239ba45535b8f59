"""The files of the review gate: the manifest spec an item is signed with (stored as
JSON), the review assertion exports carry, and the staging of an export (copy and sign
under temporary names beside the output, then `install` renames them into place, so the
audit protocol can log its intent before anything appears)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kinema.governance.review_store import ReviewError
from kinema.io import check_output_path, output_kind
from kinema.provenance.c2pa import (
    FRAME_PATTERN,
    TRAINED_ALGORITHMIC_MEDIA,
    Generation,
    Ingredient,
    ManifestSpec,
    ProvenanceError,
    SoftBinding,
    read_manifest,
    sidecar_path,
    sign_file,
)
from kinema.provenance.keys import key_paths
from kinema.state import kinema_home

__all__ = [
    "content_hash",
    "derived_spec",
    "ingredient_dict",
    "remove_output",
    "staged_export",
]


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes; of a frame folder, over its frame_NNNN.png files (each
    name and its bytes, in order)."""
    path = Path(os.fspath(path))
    digest = hashlib.sha256()
    if path.is_dir():
        for frame in sorted(p for p in path.iterdir() if FRAME_PATTERN.match(p.name)):
            digest.update(frame.name.encode() + b"\0")
            _hash_into(digest, frame)
    else:
        _hash_into(digest, path)
    return digest.hexdigest()


def _hash_into(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


# ----------------------------------------------------------------------------- manifest specs


def derived_spec(path: Path, title: str, sidecar: dict[str, Any]) -> ManifestSpec:
    """The spec of PATH's current manifest, or one built from its SIDECAR (TITLE: the
    name the file goes by). Refuses a file whose manifest is Invalid."""
    keys = key_paths(kinema_home())
    try:
        result = read_manifest(path, keys.root_cert if keys.exist() else None)
    except ProvenanceError as exc:
        raise ReviewError(f"cannot register '{title}': {exc}") from exc
    if result["state"] == "Invalid":
        raise ReviewError(f"cannot register '{title}': its manifest is invalid ({result['reason']})")
    claims = result["active_manifest"]
    if result["state"] == "Absent" or not claims:
        return _spec_from_sidecar(title, sidecar)
    return _spec_from_claims(title, claims)


def _spec_from_claims(title: str, claims: dict[str, Any]) -> ManifestSpec:
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
        title=claims.get("title") or title,
        digital_source_type=claims.get("digital_source_type") or TRAINED_ALGORITHMIC_MEDIA,
        edit=edit,
        generation=generation,
        soft_binding=soft,
        when=main.get("when"),
    )


def _spec_from_sidecar(title: str, sidecar: dict[str, Any]) -> ManifestSpec:
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
    return ManifestSpec(title=title, generation=generation)


def ingredient_dict(item: str | os.PathLike | Ingredient) -> dict[str, Any]:
    """An ingredient as the row stores it: {"path", "relationship", "title"}."""
    if isinstance(item, Ingredient):
        return {
            "path": str(Path(item.path).resolve()),
            "relationship": item.relationship,
            "title": item.title,
        }
    return {"path": str(Path(os.fspath(item)).resolve()), "relationship": None, "title": None}


def export_ingredients(
    working: Path, stored: list[dict[str, Any]], spec: ManifestSpec
) -> tuple[list, list[str]]:
    """The ingredients to sign an export of WORKING with, and the paths that are gone. An
    edit whose source is gone names the working file as its parent instead (its manifest
    carries the source's)."""
    parts: list[Any] = []
    dropped = []
    for entry in stored:
        if not Path(entry["path"]).exists():
            dropped.append(entry["path"])
        elif entry.get("relationship"):
            parts.append(Ingredient(Path(entry["path"]), entry["relationship"], entry.get("title")))
        else:
            parts.append(Path(entry["path"]))
    if spec.edit and (dropped or not parts):
        others = [p for p in parts if isinstance(p, Ingredient) and p.relationship != "parentOf"]
        parts = [Ingredient(working, "parentOf", working.name), *others]
    return parts, dropped


# ----------------------------------------------------------------------------- export staging


def check_target(item_id: str, working: Path, out: Path) -> None:
    """Refuse an output of another format than the working file, or the working file."""
    check_output_path(out)
    kind = output_kind(out)
    if working.is_dir():
        if kind != "frames":
            raise ReviewError(
                f"item {item_id} is a frame folder; export it to a folder name, not '{out.name}'"
            )
    elif kind == "frames" or out.suffix.lower() != working.suffix.lower():
        raise ReviewError(
            f"item {item_id} is a {working.suffix} file; export keeps the format, so give "
            f"a name ending in {working.suffix}"
        )
    if out.resolve() == working:
        raise ReviewError(f"export needs a new path, not the working file {working}")


@contextmanager
def staged_export(
    working: Path, out: Path, spec: ManifestSpec, keys, parts: list, settings: dict[str, Any]
) -> Iterator[tuple[Path, Callable[[], None]]]:
    """Copy WORKING beside OUT under temporary names, sign the copy with SPEC, write its
    sidecar; yields (the signed copy, install). install() renames everything into place
    (an existing output is replaced); whatever was not installed is removed at the end.
    Raises ProvenanceError when signing fails."""
    if working.is_dir():
        with _staged_folder(working, out, spec, keys, parts, settings) as staged:
            yield staged
    else:
        with _staged_file(working, out, spec, keys, parts, settings) as staged:
            yield staged


@contextmanager
def _staged_file(
    source: Path, out: Path, spec, keys, parts, settings
) -> Iterator[tuple[Path, Callable[[], None]]]:
    token = secrets.token_hex(4)
    temp = out.with_name(f".{out.stem}.{token}.export{out.suffix}")
    json_temp = out.with_name(f".{out.name}.{token}.json")
    try:
        shutil.copyfile(source, temp)
        os.chmod(temp, 0o644)
        manifest_temp = sign_file(temp, spec, keys, parts)
        _write_json(json_temp, settings)

        def install() -> None:
            # the clip is renamed into place last, when its sidecars already are
            if manifest_temp is not None:
                os.replace(manifest_temp, sidecar_path(out))
            os.replace(json_temp, out.with_name(out.name + ".json"))
            os.replace(temp, out)

        yield temp, install
    finally:
        for leftover in (temp, json_temp, sidecar_path(temp)):
            leftover.unlink(missing_ok=True)


@contextmanager
def _staged_folder(
    source: Path, out: Path, spec, keys, parts, settings
) -> Iterator[tuple[Path, Callable[[], None]]]:
    target = Path(os.fspath(out).rstrip("/" + os.sep) or os.fspath(out))
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for frame in sorted(p for p in source.iterdir() if FRAME_PATTERN.match(p.name)):
            shutil.copyfile(frame, staging / frame.name)
            os.chmod(staging / frame.name, 0o644)
        sign_file(staging, spec, keys, parts)
        _write_json(staging / "settings.json", settings)
        os.chmod(staging, 0o755)

        def install() -> None:
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
                os.rename(target, old)
            try:
                os.rename(staging, target)
            except BaseException:
                if old is not None:
                    os.rename(old, target)
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)

        yield staging, install
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_output(path: Path) -> None:
    """Remove a file kinema wrote and its sidecars (OUT.json, a manifest sidecar), or a
    frame folder: what rolls back a change the audit log shows was never committed."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
        return
    for part in (path, path.with_name(path.name + ".json"), sidecar_path(path)):
        part.unlink(missing_ok=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.write("\n")
    os.chmod(path, 0o644)
