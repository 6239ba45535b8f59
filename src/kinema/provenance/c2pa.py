"""Signed C2PA manifests for kinema's outputs, and reading them back.

What a manifest claims (ManifestSpec, Generation, SoftBinding, Review, Ingredient) and
which formats embed one are manifest.py; they are importable from here as before.

`sign_file` embeds a manifest, signed with the local chain (`keys.py`), in the formats
that c2pa embeds (mp4/mov, png, gif, wav, jpeg, webp, mp3, m4a); for formats it cannot
embed into (webm, mkv, ogg) it writes the manifest beside the file as `OUT.c2pa`, bound
to the file's bytes by a whole-file hash. A folder of PNG frames gets one manifest a
frame (each names its index and the frame count, so dropped or reordered frames show).

`read_manifest` answers with one of four states:
    Trusted  signature valid and the signing chain ends at the given trust root
    Valid    well formed and the signature valid, but the signer is not trusted
    Invalid  something does not match (pixels changed, manifest tampered); the reason
             names the c2pa validation status codes
    Absent   no manifest in the file and no sidecar beside it

Nothing here touches the network: remote manifests and OCSP are never fetched, and no
timestamp authority is used (the manifest carries its own "when" in its actions).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import c2pa

from kinema.provenance.keys import KeyPaths, ProvenanceError
from kinema.provenance.manifest import (
    ACTIONS_LABEL,
    ALGORITHMIC_MEDIA,
    DATA_FORMATS,
    EMBEDDED_FORMATS,
    FRAME_LABEL,
    FRAME_PATTERN,
    GENERATION_LABEL,
    MODEL_DATA_TYPE,
    MODEL_FORMATS,
    REVIEW_LABEL,
    SIDECAR_FORMATS,
    SOFT_BINDING_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    Generation,
    Ingredient,
    ManifestSpec,
    Review,
    SoftBinding,
    embeds,
    ingredient_label,
    ingredient_list,
    manifest_definition,
    mime_for,
    sidecar_path,
)

__all__ = [
    "ALGORITHMIC_MEDIA",
    "FRAME_PATTERN",
    "TRAINED_ALGORITHMIC_MEDIA",
    "Generation",
    "Ingredient",
    "ManifestSpec",
    "ProvenanceError",
    "Review",
    "SoftBinding",
    "embeds",
    "read_manifest",
    "sidecar_path",
    "sign_file",
]

STATE_RANK = {"Trusted": 0, "Valid": 1, "Absent": 2, "Invalid": 3}
UNTRUSTED_CODE = "signingCredential.untrusted"
# c2pa's words when the media container itself is broken (not the manifest).
ASSET_UNPARSABLE = "asset could not be parsed"


# ----------------------------------------------------------------------------- signing


def sign_file(
    path: Path,
    manifest: ManifestSpec,
    keys: KeyPaths,
    ingredients: Sequence[Path | Ingredient] = (),
) -> Path | None:
    """Sign PATH in place; returns the sidecar written for formats c2pa cannot embed into.

    A folder of PNG frames gets a manifest in each frame (ingredients go in frame 0).
    Returns None when every manifest is embedded.
    """
    path = Path(path)
    if not keys.exist():
        raise ProvenanceError(f"signing keys are missing in {keys.folder}")
    parts = ingredient_list(manifest, ingredients)
    if path.is_dir():
        _sign_frame_folder(path, manifest, keys, parts)
        return None
    if not path.is_file():
        raise ProvenanceError(f"cannot sign {path}: no such file")
    mime = mime_for(path)
    if embeds(path):
        _sign_embedded(path, mime, manifest_definition(manifest, mime, parts), keys, parts)
        return None
    return _sign_sidecar(path, mime, manifest_definition(manifest, mime, parts), keys, parts)


def _signer(keys: KeyPaths) -> c2pa.Signer:
    """An ES256 signer for the local signing certificate; no timestamp authority."""
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256,
        keys.signing_chain.read_bytes(),
        keys.signing_key.read_bytes(),
        None,
    )
    return c2pa.Signer.from_info(info)


def _builder(definition: dict, keys: KeyPaths, parts: Sequence[Ingredient]) -> c2pa.Builder:
    """A Builder for DEFINITION with its ingredients added (read against our root)."""
    context = _context(keys.root_cert, thumbnails=False)
    builder = c2pa.Builder(definition, context=context)
    for index, part in enumerate(parts):
        _add_ingredient(builder, index, part, keys.root_cert)
    return builder


def _add_ingredient(builder: c2pa.Builder, index: int, part: Ingredient, root: Path) -> None:
    """Add one ingredient; a webm's sidecar manifest (or a folder's frame 0) comes along."""
    source = Path(part.path)
    if source.is_dir():
        source = _frame_files(source)[0]
    suffix = source.suffix.lower()
    model = suffix in MODEL_FORMATS
    mime = MODEL_FORMATS.get(suffix) or DATA_FORMATS.get(suffix) or mime_for(source)
    definition: dict[str, Any] = {
        "title": part.title or Path(part.path).name,
        "relationship": part.relationship,
        "label": ingredient_label(index),
        "format": mime,
    }
    if model:
        definition["data_types"] = [{"type": MODEL_DATA_TYPE}]
    sidecar = sidecar_path(source)
    if not embeds(source) and sidecar.is_file():
        definition.update(_sidecar_ingredient_fields(source, mime, sidecar, root))
        builder.add_resource(f"sidecar{index}", io.BytesIO(sidecar.read_bytes()))
        definition["manifest_data"] = {
            "format": "application/c2pa",
            "identifier": f"sidecar{index}",
        }
    with open(source, "rb") as stream:
        builder.add_ingredient(definition, mime, stream)


def _sidecar_ingredient_fields(source: Path, mime: str, sidecar: Path, root: Path) -> dict:
    """The active manifest label and validation results an ingredient with a sidecar needs."""
    store = _read_store(source, mime, sidecar.read_bytes(), _context(root))
    if store is None:
        return {}
    return {
        "active_manifest": store.get("active_manifest"),
        "validation_results": store.get("validation_results", {}),
    }


def _sign_embedded(
    path: Path, mime: str, definition: dict, keys: KeyPaths, parts: Sequence[Ingredient]
) -> None:
    """Write PATH with the manifest embedded to a temp file beside it, then rename."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".signing", dir=path.parent)
    temp = Path(temp_name)
    try:
        with open(path, "rb") as source, os.fdopen(fd, "w+b") as dest:
            _sign_stream(definition, keys, parts, mime, source, dest, path)
        shutil.copymode(path, temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _sign_sidecar(
    path: Path, mime: str, definition: dict, keys: KeyPaths, parts: Sequence[Ingredient]
) -> Path:
    """Write the manifest, bound to PATH's bytes, to OUT.c2pa (temp file, then rename)."""
    sidecar = sidecar_path(path)
    with open(path, "rb") as source, tempfile.TemporaryFile(dir=path.parent) as scratch:
        manifest = _sign_stream(definition, keys, parts, mime, source, scratch, path, embed=False)
    if not manifest:
        raise ProvenanceError(f"cannot sign {path.name}: c2pa returned no manifest")
    fd, temp_name = tempfile.mkstemp(prefix=f".{sidecar.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(manifest)
    os.chmod(temp_name, 0o644)
    os.replace(temp_name, sidecar)
    return sidecar


def _sign_stream(definition, keys, parts, mime, source, dest, path, embed=True) -> bytes:
    """Sign SOURCE into DEST; returns the manifest store bytes."""
    try:
        with _builder(definition, keys, parts) as builder, _signer(keys) as signer:
            if not embed:
                builder.set_no_embed()
            return builder.sign(signer, mime, source, dest)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"cannot sign {path.name}: {_one_line(exc)}") from exc


def _sign_frame_folder(folder: Path, spec: ManifestSpec, keys: KeyPaths, parts: Sequence[Ingredient]) -> None:
    """Embed a manifest in every frame_NNNN.png; each names its index and the count."""
    frames = _frame_files(folder)
    for index, frame in enumerate(frames):
        frame_info = {FRAME_LABEL: {"index": index, "count": len(frames)}}
        extras = {**spec.extra_assertions, **frame_info}
        # Only frame 0 carries the ingredients; later frames of an edit say c2pa.created.
        frame_parts = parts if index == 0 else []
        edit = spec.edit if index == 0 else None
        frame_spec = dataclasses.replace(spec, extra_assertions=extras, edit=edit)
        definition = manifest_definition(frame_spec, "image/png", frame_parts)
        _sign_embedded(frame, "image/png", definition, keys, frame_parts)


def _frame_files(folder: Path) -> list[Path]:
    """The frame_NNNN.png files of a frame folder, in order."""
    frames = sorted(p for p in Path(folder).iterdir() if FRAME_PATTERN.match(p.name))
    if not frames:
        raise ProvenanceError(f"{folder} holds no frame_NNNN.png frames")
    return frames


# ----------------------------------------------------------------------------- reading


def read_manifest(path: Path, trust_root: Path | None = None) -> dict[str, Any]:
    """The provenance state of PATH (file, file + sidecar, or frame folder) and its claims.

    Returns {"state", "reason", "codes", "source", "active_manifest", "ingredients"};
    Trusted needs trust_root (the local root PEM) to be the end of the signing chain.
    """
    path = Path(path)
    if path.is_dir():
        return _read_frame_folder(path, trust_root)
    if not path.is_file():
        raise ProvenanceError(f"cannot read {path}: no such file")
    context = _context(trust_root)
    suffix = path.suffix.lower()
    sidecar = sidecar_path(path)
    store, source = None, None
    if suffix in EMBEDDED_FORMATS:
        store, source = _read_store(path, EMBEDDED_FORMATS[suffix], None, context), "embedded"
    if store is None and sidecar.is_file():
        mime = EMBEDDED_FORMATS.get(suffix) or SIDECAR_FORMATS.get(suffix) or ""
        store, source = _read_store(path, mime, sidecar.read_bytes(), context), "sidecar"
    if store is None:
        return _absent(f"no C2PA manifest in {path.name} and no {sidecar.name} beside it")
    return _summarize(store, source, trust_root)


def _context(trust_root: Path | None, thumbnails: bool = True) -> c2pa.Context:
    """c2pa settings: never fetch anything; trust only TRUST_ROOT when given."""
    settings: dict[str, Any] = {
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True},
        "builder": {"thumbnail": {"enabled": thumbnails}},
    }
    if trust_root is not None:
        try:
            settings["trust"] = {"trust_anchors": Path(trust_root).read_text()}
        except OSError as exc:
            raise ProvenanceError(f"cannot read trust root {trust_root}: {exc}") from exc
    return c2pa.Context.from_dict(settings)


def _read_store(path: Path, mime: str, manifest: bytes | None, context) -> dict | None:
    """The manifest store as c2pa's JSON, None when there is none; a store that cannot
    even be parsed comes back as an Invalid marker; a file that is not the container its
    suffix says raises ProvenanceError."""
    try:
        with open(path, "rb") as stream:
            reader = c2pa.Reader.try_create(mime or None, stream, manifest, context)
            if reader is None:
                return None
            with reader:
                return json.loads(reader.json())
    except c2pa.C2paError.NotSupported:
        return None
    except c2pa.C2paError as exc:
        if ASSET_UNPARSABLE in str(exc):
            detail = _one_line(exc).split(ASSET_UNPARSABLE)[-1].strip(": ")
            raise ProvenanceError(f"cannot parse {path.name} as {mime}: {detail}") from exc
        return {
            "validation_state": "Invalid",
            "error": f"manifest cannot be parsed: {_one_line(exc)}",
        }


def _summarize(store: dict, source: str, trust_root: Path | None) -> dict[str, Any]:
    """The result dict for one manifest store."""
    state = store.get("validation_state") or "Invalid"
    codes = [s.get("code", "") for s in store.get("validation_status") or []]
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest") or "")
    if "error" in store or active is None:
        reason = store.get("error") or "manifest store has no active manifest"
        return _result("Invalid", reason, codes, source, None, [])
    claims = _claims(active)
    return _result(
        state,
        _reason(state, codes, claims, trust_root),
        codes,
        source,
        claims,
        [_ingredient_summary(i) for i in active.get("ingredients") or []],
    )


def _result(state, reason, codes, source, claims, ingredients) -> dict[str, Any]:
    return {
        "state": state,
        "reason": reason,
        "codes": codes,
        "source": source,
        "active_manifest": claims,
        "ingredients": ingredients,
    }


def _absent(reason: str) -> dict[str, Any]:
    return _result("Absent", reason, [], None, None, [])


def _reason(state: str, codes: list[str], claims: dict, trust_root: Path | None) -> str:
    """One line saying why the state is what it is."""
    signer = f"{claims.get('signer')} ({claims.get('issuer')})"
    if state == "Trusted":
        anchor = f"local root {trust_root}" if trust_root else "a configured trust anchor"
        return f"signature valid; signed by {signer}, chaining to {anchor}"
    if state == "Valid":
        why = "no trust root given" if trust_root is None else f"not issued under {trust_root}"
        return f"signature valid but signer {signer} not trusted ({why})"
    failures = [c for c in codes if c != UNTRUSTED_CODE] or codes
    return "validation failed: " + (", ".join(failures) or "unknown error")


def _claims(manifest: dict) -> dict[str, Any]:
    """The claims kinema cares about, out of c2pa's JSON for one manifest."""
    assertions = {a.get("label", ""): a.get("data") for a in manifest.get("assertions") or []}
    actions = _assertion(assertions, ACTIONS_LABEL) or {}
    action_list = actions.get("actions") or []
    signature = manifest.get("signature_info") or {}
    return {
        "label": manifest.get("label"),
        "title": manifest.get("title"),
        "format": manifest.get("format"),
        "claim_generator": _generator(manifest),
        "digital_source_type": next(
            (a["digitalSourceType"] for a in action_list if a.get("digitalSourceType")), None
        ),
        "actions": [_action_summary(a) for a in action_list],
        "generation": assertions.get(GENERATION_LABEL),
        "soft_binding": _soft_binding_summary(assertions.get(SOFT_BINDING_LABEL)),
        "review": assertions.get(REVIEW_LABEL),
        "frame": assertions.get(FRAME_LABEL),
        "signer": signature.get("common_name"),
        "issuer": signature.get("issuer"),
        "time": signature.get("time") or next((a["when"] for a in action_list if a.get("when")), None),
        "assertions": sorted(assertions),
    }


def _assertion(assertions: dict, label: str):
    """An assertion by label, whatever version suffix c2pa gave it (c2pa.actions.v2)."""
    for name, data in assertions.items():
        if name == label or name.startswith(label + ".v"):
            return data
    return None


def _generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if not info:
        return manifest.get("claim_generator")
    return " ".join(str(info[0].get(k)) for k in ("name", "version") if info[0].get(k))


def _action_summary(action: dict) -> dict[str, Any]:
    agent = action.get("softwareAgent")
    if isinstance(agent, dict):
        agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
    summary = {
        "action": action.get("action"),
        "software_agent": agent,
        "description": action.get("description"),
        "when": action.get("when"),
        "digital_source_type": action.get("digitalSourceType"),
    }
    return {k: v for k, v in summary.items() if v is not None}


def _soft_binding_summary(data: dict | None) -> dict[str, Any] | None:
    if not data:
        return None
    blocks = data.get("blocks") or []
    value = blocks[0].get("value", "") if blocks else ""
    try:
        payload = base64.b64decode(value).hex()
    except (ValueError, TypeError):
        payload = None
    return {"algorithm": data.get("alg"), "payload_hex": payload}


def _ingredient_summary(ingredient: dict) -> dict[str, Any]:
    results = ingredient.get("validation_results") or {}
    failures = (results.get("activeManifest") or {}).get("failure") or []
    return {
        "title": ingredient.get("title"),
        "format": ingredient.get("format"),
        "relationship": ingredient.get("relationship"),
        "instance_id": ingredient.get("instance_id"),
        "active_manifest": ingredient.get("active_manifest"),
        "validation_codes": [f.get("code") for f in failures],
    }


def _read_frame_folder(folder: Path, trust_root: Path | None) -> dict[str, Any]:
    """One answer for a frame folder: the worst frame's state, claims from frame 0;
    frames that lost their manifest or moved make it Invalid."""
    frames = _frame_files(folder)
    results = [read_manifest(frame, trust_root) for frame in frames]
    states = {r["state"] for r in results}
    if states == {"Absent"}:
        return _absent(f"no C2PA manifest in the {len(frames)} frames of {folder.name}")
    problems = [
        f"{f.name}: {r['state']} ({r['reason']})"
        for f, r in zip(frames, results, strict=True)
        if r["state"] in ("Absent", "Invalid")
    ]
    problems += _frame_order_problems(frames, results)
    first = results[0]
    if problems:
        return _result(
            "Invalid",
            "; ".join(problems[:3]),
            sorted({c for r in results for c in r["codes"]}),
            "embedded",
            first["active_manifest"],
            first["ingredients"],
        )
    worst = max(states, key=STATE_RANK.__getitem__)
    reason = (
        first["reason"]
        if worst == first["state"]
        else next(r["reason"] for r in results if r["state"] == worst)
    )
    return _result(
        worst,
        f"{len(frames)} frames: {reason}",
        first["codes"],
        "embedded",
        first["active_manifest"],
        first["ingredients"],
    )


def _frame_order_problems(frames: list[Path], results: list[dict]) -> list[str]:
    """Frames whose recorded index or count does not match where they are now."""
    problems = []
    for index, (frame, result) in enumerate(zip(frames, results, strict=True)):
        info = (result["active_manifest"] or {}).get("frame")
        if not info:
            continue
        if info.get("index") != index or info.get("count") != len(frames):
            problems.append(
                f"{frame.name}: recorded as frame {info.get('index')} of "
                f"{info.get('count')}, found as frame {index} of {len(frames)}"
            )
    return problems


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
