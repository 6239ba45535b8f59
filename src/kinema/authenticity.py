"""One authenticity report: every piece of evidence about a media file, weighed in order.

`kinema verify` and the web's verify page answer with `report(path)`: the dict of
`provenance.verify.verify_file` (its keys unchanged), plus

    "triage":  the triage detector's score of the first frames (provenance.triage), labelled
               {"label", "score", "caveat": "triage only: ...", "checked", "frames_checked", ...}
    "review":  the review decision of a file kinema made: {"found", "decision": the
               matched item's live status (not a changed file's), else the manifest's
               record, else None, "manifest": the
               decision its (Trusted or Valid) manifest records (an exported file) | None,
               "database": {"id", "status", "match", "changed", "decided", "reviewer",
               "note"}: the review.db item it is, matched by content hash (a working file),
               an export's hash (an exported copy) or, failing both, by path (the working
               file changed since it was registered: changed true) | None, "reason": why
               nothing was found}
    "verdict": {"line": one sentence, "basis": "trusted manifest" | "valid manifest" |
               "watermark" | "none", "origin": "model" | "algorithmic" | <another C2PA
               source type> | "unknown", "disagreements": [...]}

The verdict weighs provenance first (a Trusted or Valid manifest), the watermark second and
the triage detector last: the detector never decides anything on its own, and the line says
so, and says where the layers disagree (a manifest that declares a watermark nobody finds,
a detector that disagrees with a signed manifest, an exported file whose recorded decision
review.db has since changed).

This module sits above provenance (the marks) and governance (the review queue), which is
why the report is composed here and not in provenance.verify. Nothing here loads a model:
the triage classifier is a JSON file of logistic weights over hand-made features, and it
reads at most its first triage.MAX_FRAMES frames, whatever the clip's length.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.governance import review
from kinema.governance.review_store import REVIEW_DB
from kinema.io import VideoError, read_video
from kinema.provenance import triage
from kinema.provenance.verify import verify_file
from kinema.state import kinema_home

__all__ = ["report", "review_of", "triage_of", "verdict"]

SIGNED = ("Trusted", "Valid")


def report(path: str | os.PathLike, *, show_reviewer: bool = True) -> dict[str, Any]:
    """verify_file(PATH) with "triage", "review" and "verdict" added (see the module doc).

    SHOW_REVIEWER False leaves out who decided a review item found in review.db and their
    note (the web's verify page answers anyone holding the file; what an exported file's
    own manifest records is shown either way). Raises verify's VerifyError (an InputError)
    for a path that is missing or not media; never for a media file.
    """
    result = verify_file(path)
    target = Path(os.fspath(path))
    has_video = result["media"].get("has_video", True)
    result["triage"] = triage_of(target) if has_video else _not_scored("no video to score")
    result["review"] = review_of(target, result["c2pa"], show_reviewer=show_reviewer)
    result["verdict"] = verdict(
        result["c2pa"], result["watermark"], result["triage"], result["review"], result.get("audio_watermark")
    )
    return result


# ----------------------------------------------------------------------------- triage


@functools.lru_cache(maxsize=1)
def _triage_model() -> triage.TriageModel:
    return triage.load()


def triage_of(path: Path) -> dict[str, Any]:
    """The triage part: the detector's score of PATH's first triage.MAX_FRAMES frames, or
    {"checked": False, "reason"} when they cannot be read or the weights are unusable."""
    try:
        video = read_video(path, max_frames=triage.MAX_FRAMES)
    except (VideoError, InputError) as exc:
        # the file's name, not its folder: the web reads uploads from a private scratch path
        return _not_scored(f"frames unreadable: {str(exc).replace(str(path), path.name)}")
    try:
        scored = triage.score_video(video, _triage_model())
    except triage.TriageError as exc:
        return _not_scored(str(exc))
    return {"checked": True, **scored}


def _not_scored(reason: str) -> dict[str, Any]:
    return {"checked": False, "score": None, "label": None, "caveat": triage.CAVEAT, "reason": reason}


# ----------------------------------------------------------------------------- review


def review_of(path: Path, c2pa: dict[str, Any], *, show_reviewer: bool = True) -> dict[str, Any]:
    """The review part: the decision PATH's signed manifest records, and the review.db item
    PATH is (matched by content hash, export hash, or path); never raises."""
    claims = (c2pa.get("claims") or {}) if c2pa.get("state") in SIGNED else {}
    recorded = claims.get("review")
    manifest = None
    if isinstance(recorded, dict) and recorded.get("decision"):
        manifest = {k: recorded.get(k) for k in ("decision", "reviewer", "note", "time")}
    database, reason = _database_item(path, show_reviewer)
    if database is not None and not database["changed"]:
        decision = database["status"]  # the queue is live: a later withdrawal shows here
    elif manifest is not None:
        decision = manifest["decision"]
    else:
        decision = None
    if database is None and manifest is None:
        reason = reason or "not in review.db, and no signed review decision in its manifest"
    return {
        "found": database is not None or manifest is not None,
        "decision": decision,
        "manifest": manifest,
        "database": database,
        "reason": None if database is not None or manifest is not None else reason,
    }


def _database_item(path: Path, show_reviewer: bool) -> tuple[dict[str, Any] | None, str | None]:
    """(the review.db item PATH is, None) or (None, why none was found)."""
    if not (kinema_home(create=False) / REVIEW_DB).exists():
        return None, "no review database here"  # verify never creates state
    try:
        digest = review.content_hash(path)
        items = review.list_items()
    except (OSError, InputError, sqlite3.Error) as exc:
        return None, f"review database unreadable: {exc}"
    resolved = path.resolve()
    found, match = None, None
    for item in items:
        if item.sha256 == digest:
            found, match = item, "content"
        elif any(e.get("sha256") == digest for e in item.exports):
            found, match = item, "export"
        elif found is None and Path(item.path) == resolved:
            found, match = item, "path"  # keep looking: a hash match is better evidence
        if match in ("content", "export"):
            break
    if found is None:
        return None, None
    entry = {
        "id": found.id,
        "status": found.status,
        "match": match,
        "changed": match == "path",
        "decided": found.decided,
    }
    if show_reviewer:
        entry.update(reviewer=found.reviewer, note=found.note)
    return entry, None


# ----------------------------------------------------------------------------- verdict


def verdict(
    c2pa: dict[str, Any],
    watermark: dict[str, Any],
    triage_part: dict[str, Any],
    review_part: dict[str, Any] | None = None,
    audio_watermark: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Weigh the evidence: the manifest first (Trusted or Valid), the watermark second, the
    triage score last; returns {"line", "basis", "origin", "disagreements"}.

    Pure: takes the parts of a report (c2pa and watermark as verify_file gives them, triage
    and review as triage_of and review_of do) and reads nothing else.
    """
    mark = _mark(watermark, audio_watermark)
    disagreements: list[str] = []
    state = c2pa.get("state")
    if state in SIGNED:
        first, second, basis, origin = _signed(c2pa, mark, disagreements)
    else:
        first, second, basis, origin = _unsigned(c2pa, mark)
    clauses = [first, second]
    claims_model = {"model": True, "unknown": None}.get(origin, False)
    clauses.append(_triage_clause(triage_part, claims_model, basis, disagreements))
    review_clause = _review_clause(review_part or {}, disagreements)
    if review_clause is None and origin == "model" and review_part is not None:
        review_clause = "no review decision found (not a working file here, and no signed record)"
    if review_clause:
        clauses.append(review_clause)
    return {
        "line": "; ".join(c for c in clauses if c),
        "basis": basis,
        "origin": origin,
        "disagreements": disagreements,
    }


def _mark(watermark: dict[str, Any], audio: dict[str, Any] | None) -> dict[str, Any]:
    """The mark evidence as {"state": match|found|mismatch|unreadable|absent|unchecked,
    "name", "reason"}; the audio watermark stands in for files with no video mark."""
    if watermark.get("detected"):
        if not watermark.get("payload_valid"):
            state = "unreadable"
        else:
            state = {True: "match", False: "mismatch"}.get(watermark.get("matches_manifest"), "found")
        return {"state": state, "name": "watermark"}
    if audio and audio.get("detected"):
        return {"state": "found", "name": "audio watermark"}
    if watermark.get("checked"):
        return {"state": "absent", "name": "watermark"}
    if audio and audio.get("checked"):
        return {"state": "absent", "name": "audio watermark"}
    return {"state": "unchecked", "name": "watermark", "reason": watermark.get("reason") or "not checked"}


def _source(claims: dict[str, Any]) -> tuple[str, str]:
    """(origin, phrase) from a manifest's digital source type and generation assertion."""
    source = (claims.get("digital_source_type") or "").rsplit("/", 1)[-1]
    model = (claims.get("generation") or {}).get("model")
    if "trainedalgorithmicmedia" in source.lower():
        return "model", f"{source}, model output" + (f" of {model}" if model else "")
    if source == "algorithmicMedia":
        made = f" by {model}" if model else ""
        return "algorithmic", f"algorithmicMedia{made}, not a trained model's output"
    if source:
        return source, source
    return "unknown", "no source type stated"


def _signed(
    c2pa: dict[str, Any], mark: dict[str, Any], disagreements: list[str]
) -> tuple[str, str, str, str]:
    """Clauses, basis and origin when a Trusted or Valid manifest speaks first."""
    claims = c2pa.get("claims") or {}
    origin, phrase = _source(claims)
    if c2pa["state"] == "Trusted":
        first, basis = f"manifest Trusted ({phrase})", "trusted manifest"
    else:
        signer = claims.get("signer") or "unknown"
        first, basis = (
            f"manifest Valid but its signer {signer} is not trusted here ({phrase})",
            "valid manifest",
        )
    declared = origin == "model" or bool(claims.get("soft_binding"))
    name, state = mark["name"], mark["state"]
    if state == "match":
        second = f"{name} agrees (payload matches the manifest's soft binding)"
    elif state in ("found", "unreadable") and declared:
        second = f"{name} agrees" + (" (payload unreadable)" if state == "unreadable" else "")
    elif state in ("found", "unreadable"):
        second = f"{name} found, though the manifest says {phrase}"
        disagreements.append(second)
    elif state == "mismatch":
        second = f"{name} found, but its payload differs from the manifest's soft binding"
        disagreements.append(second)
    elif state == "absent" and declared:
        second = f"no {name} found, though the manifest declares one (a weak or damaged mark)"
        disagreements.append(second)
    elif state == "absent":
        second = f"no {name}, as expected"
    else:
        second = f"{name} not checked ({mark['reason']})"
    return first, second, basis, origin


def _unsigned(c2pa: dict[str, Any], mark: dict[str, Any]) -> tuple[str, str, str, str]:
    """Clauses, basis and origin when there is no manifest to rely on (Absent or Invalid):
    the watermark speaks first."""
    invalid = c2pa.get("state") == "Invalid"
    first = f"manifest Invalid ({c2pa.get('reason')})" if invalid else "manifest absent"
    after = "altered after signing" if invalid else "whose manifest was stripped"
    name, state = mark["name"], mark["state"]
    if state in ("match", "found", "mismatch"):
        return first, f"{name} found (kinema model output {after})", "watermark", "model"
    if state == "unreadable":
        second = f"{name} found but its payload unreadable (likely kinema model output {after})"
        return first, second, "watermark", "model"
    if state == "absent":
        return first, f"no {name}", "none", "unknown"
    return first, f"{name} not checked ({mark['reason']})", "none", "unknown"


def _triage_clause(
    part: dict[str, Any], claims_model: bool | None, basis: str, disagreements: list[str]
) -> str:
    """The detector's clause: agreement with what the evidence says, or a reminder that on
    its own it is not evidence."""
    if not part.get("checked"):
        return f"triage not scored ({part.get('reason')})"
    score, label = part["score"], part["label"]
    says_model = {"likely kinema model": True, "likely not kinema model": False}.get(label)
    if claims_model is None:
        if says_model is None:
            return f"triage score {score:.2f} is inconclusive, and the detector alone is not evidence"
        which = "kinema's model" if says_model else "not kinema's model"
        return f"triage score {score:.2f} suggests {which}, but the detector alone is not evidence"
    if says_model is None:
        return f"triage uncertain (score {score:.2f})"
    if says_model == claims_model:
        return f"triage agrees (score {score:.2f})"
    clause = f"triage disagrees (score {score:.2f}), outweighed by the {basis}"
    disagreements.append(clause)
    return clause


def _review_clause(part: dict[str, Any], disagreements: list[str]) -> str | None:
    """The review decision, and a note when the manifest's record and review.db differ."""
    database, manifest = part.get("database"), part.get("manifest")
    if database is not None and database.get("changed"):
        clause = (
            f"review item {database['id']} ({database['status']}) is for this path, "
            "but the file changed since it was registered"
        )
        disagreements.append(clause)
        return clause
    if database is not None and manifest is not None and manifest["decision"] != database["status"]:
        clause = (
            f"review: {database['status']} in review.db (item {database['id']}), "
            f"though the manifest records {manifest['decision']}"
        )
        disagreements.append(clause)
        return clause
    if database is not None:
        where = "exported copy of item" if database["match"] == "export" else "item"
        return f"review {database['status']} ({where} {database['id']})"
    if manifest is not None:
        by = f" by {manifest['reviewer']}" if manifest.get("reviewer") else ""
        return f"review {manifest['decision']}{by} (recorded in the manifest)"
    return None
