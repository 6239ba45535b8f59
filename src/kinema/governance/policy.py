"""Rights and consent policy: prompt screening, the likeness check and the consent registry.

Prompt screening (`screen_prompt`, rule "names-and-marks") refuses prompts that name a
protected person or mark. The list is a small built-in default (well-known public figures
and trademarks) plus, when present, KINEMA_HOME/blocked_terms.txt and the file named by
$KINEMA_BLOCKED_TERMS_FILE (one term a line; `#` starts a comment). Matching ignores case,
accents, punctuation and spacing: "Taylor Swift" also matches "TAYLOR-SWIFT",
"taylor   swift's", "TaylorSwift" and "Táylor Swift", but not "swiftly".

The likeness check (`check_likeness`, rule "likeness-consent") runs OpenCV's Haar frontal
face cascade over an input image (or sampled frames of an input clip). When it finds a
face, the image must have a valid record in the consent registry: one that names its
image hash, is not revoked, has not expired, and covers the scope of the use.

The image hash (`image_hash`) is the SHA-256 of the decoded pixels, not of the file:
"kinema-image-v1", the array shape ("64x64x3" or, for a clip, "16x64x64x3") and then the
uint8 RGB bytes in row order. So re-saving the same PNG (other compression, other
metadata) is the same image, while any pixel change is a different one. A lossy re-encode
(JPEG, H.264) changes pixels, so a clip's consent is for exactly the decoded frames given.

The consent registry is `kinema.governance.consent` (SQLite at KINEMA_HOME/consent.db, one
store for likeness and voice consent); this module reads and writes its likeness records
(kind "likeness") through the ConsentRecord view. Every decision (screen pass or
refusal, likeness pass or refusal, consent add and revoke) is appended to the audit log;
prompts are logged only as their SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kinema.errors import InputError
from kinema.governance import audit, consent
from kinema.governance.consent import scope_covers
from kinema.governance.consent import today as _today
from kinema.io import VideoError, read_image, read_video
from kinema.state import kinema_home

__all__ = [
    "DEFAULT_MARKS",
    "DEFAULT_PEOPLE",
    "ConsentRecord",
    "PolicyError",
    "add_consent",
    "blocked_terms",
    "check_likeness",
    "consents_for",
    "find_consent",
    "find_faces",
    "get_consent",
    "image_hash",
    "list_consents",
    "revoke_consent",
    "screen_prompt",
]

RULE_NAMES = "names-and-marks"
RULE_LIKENESS = "likeness-consent"
BLOCKED_TERMS_FILE = "blocked_terms.txt"
BLOCKED_TERMS_ENV = "KINEMA_BLOCKED_TERMS_FILE"
HASH_LABEL = b"kinema-image-v1"

# A small default: well-known public figures and trademarks. Extend it per installation
# with blocked_terms.txt; this list is a floor, not a policy.
DEFAULT_PEOPLE = (
    "Taylor Swift",
    "Barack Obama",
    "Donald Trump",
    "Joe Biden",
    "Elon Musk",
    "Beyoncé",
    "Tom Cruise",
    "Scarlett Johansson",
    "Keanu Reeves",
    "Oprah Winfrey",
    "Pope Francis",
    "Kim Kardashian",
)
DEFAULT_MARKS = (
    "Disney",
    "Mickey Mouse",
    "Coca-Cola",
    "Pepsi",
    "Nike",
    "Adidas",
    "McDonald's",
    "Starbucks",
    "Pokémon",
    "Lego",
    "Hello Kitty",
    "Spider-Man",
)

# Face detection: the cascade scans windows of 24 px and up; small images are scaled up
# so that their short side is UPSCALE_TO (faces from about 12 px of a 64 px image), large
# ones down so their long side is at most DOWNSCALE_TO (speed).
CASCADE_FILE = "haarcascade_frontalface_default.xml"
UPSCALE_TO = 128
DOWNSCALE_TO = 1024
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_FACE = 24
CLIP_FRAMES_CHECKED = 8
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class PolicyError(InputError):
    """A refusal by policy; `rule` names the rule ("names-and-marks", "likeness-consent")."""

    def __init__(self, message: str, rule: str | None = None):
        super().__init__(message)
        self.rule = rule


# ----------------------------------------------------------------------------- prompts


def blocked_terms() -> list[str]:
    """The screened terms: the built-in defaults, then HOME/blocked_terms.txt, then the file
    named by $KINEMA_BLOCKED_TERMS_FILE (each optional, except that a file the variable
    names must exist: a configured list that cannot be read refuses rather than passes)."""
    terms = list(DEFAULT_PEOPLE) + list(DEFAULT_MARKS)
    home_file = kinema_home() / BLOCKED_TERMS_FILE
    if home_file.is_file():
        terms += _read_terms(home_file)
    configured = os.environ.get(BLOCKED_TERMS_ENV, "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise PolicyError(
                f"blocked terms file {path} (from {BLOCKED_TERMS_ENV}) does not exist", RULE_NAMES
            )
        terms += _read_terms(path)
    seen, unique = set(), []
    for term in terms:
        key = _normalize(term)
        if key and key not in seen:
            seen.add(key)
            unique.append(term)
    return unique


def screen_prompt(prompt: str) -> None:
    """Refuse a prompt that names a blocked person or mark; pass silently otherwise.

    Raises PolicyError (rule "names-and-marks") naming the term as listed, e.g.
    "prompt names a protected person or mark: 'Taylor Swift' (rule: names-and-marks)".
    Both outcomes are audit-logged with the prompt's SHA-256 (never its text).
    """
    text = prompt if isinstance(prompt, str) else str(prompt)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    normalized = _normalize(text)
    for term in blocked_terms():
        if _term_pattern(_normalize(term)).search(normalized):
            audit.append(
                "policy.screen",
                decision="refuse",
                rule=RULE_NAMES,
                term=term,
                prompt_sha256=digest,
            )
            raise PolicyError(
                f"prompt names a protected person or mark: '{term}' (rule: {RULE_NAMES})",
                RULE_NAMES,
            )
    audit.append("policy.screen", decision="pass", rule=RULE_NAMES, prompt_sha256=digest)


def _read_terms(path: Path) -> list[str]:
    """Terms from a file: one a line, blank lines and `#` comments (whole or trailing) skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read blocked terms file {path}: {exc}", RULE_NAMES) from exc
    terms = []
    for line in text.splitlines():
        term = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if term:
            terms.append(term)
    return terms


def _normalize(text: str) -> str:
    """Lower case, accents dropped, apostrophes removed, other punctuation as one space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = re.sub(r"['’‘`´]", "", plain)
    return " ".join(re.sub(r"[\W_]+", " ", plain).split())


@lru_cache(maxsize=1024)
def _term_pattern(term: str) -> re.Pattern[str]:
    """Words of TERM in order, optionally run together, whole words only; a trailing "s"
    is allowed (possessive with the apostrophe removed, or plural)."""
    words = [re.escape(w) for w in term.split()]
    if not words:
        return re.compile(r"(?!x)x")  # matches nothing
    return re.compile(r"(?<![^\W_])" + " ?".join(words) + r"s?(?![^\W_])")


# ----------------------------------------------------------------------------- faces


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = os.path.join(cv2.data.haarcascades, CASCADE_FILE)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise PolicyError(f"cannot load the face detector {path}; input images cannot be checked")
    return cascade


def find_faces(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Frontal faces in IMAGE (uint8 RGB (H, W, 3) or grey (H, W)) as (x, y, w, h) boxes
    in IMAGE's pixel coordinates, found by OpenCV's Haar frontal face cascade."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim == 3 and array.shape[-1] == 3:
        grey = cv2.cvtColor(np.ascontiguousarray(array, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    elif array.ndim == 2:
        grey = np.ascontiguousarray(array, dtype=np.uint8)
    else:
        raise PolicyError(f"an image must be (H, W, 3) or (H, W), got shape {array.shape}")
    height, width = grey.shape
    if min(height, width) < 1:
        return []
    scale = 1.0
    if min(height, width) < UPSCALE_TO:
        scale = UPSCALE_TO / min(height, width)
    elif max(height, width) > DOWNSCALE_TO:
        scale = DOWNSCALE_TO / max(height, width)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
        grey = cv2.resize(grey, size, interpolation=interpolation)
    found = _cascade().detectMultiScale(
        cv2.equalizeHist(grey),
        scaleFactor=SCALE_FACTOR,
        minNeighbors=MIN_NEIGHBORS,
        minSize=(MIN_FACE, MIN_FACE),
    )
    return [tuple(int(round(float(v) / scale)) for v in box) for box in (found if len(found) else [])]


def image_hash(image: np.ndarray) -> str:
    """SHA-256 hex of decoded pixels: label, shape ("HxWxC" or "TxHxWxC"), uint8 bytes."""
    array = np.ascontiguousarray(np.asarray(image))
    if array.dtype != np.uint8:
        raise PolicyError(f"an image must be uint8, got {array.dtype}")
    if array.ndim not in (3, 4):
        raise PolicyError(f"an image must be (H, W, 3) or a clip (T, H, W, 3), got {array.shape}")
    digest = hashlib.sha256(HASH_LABEL)
    digest.update(b"\0" + "x".join(str(n) for n in array.shape).encode() + b"\0")
    digest.update(array.tobytes())
    return digest.hexdigest()


def check_likeness(
    image: np.ndarray, scope: str | None = None, source: str | None = None
) -> ConsentRecord | None:
    """Refuse an input image (H, W, 3) or clip (T, H, W, 3) that shows a face without
    consent; returns the consent record relied on, or None when no face was found.

    A clip is checked on up to 8 evenly spaced frames, and its consent is for the whole
    clip's pixels. SCOPE names the use; when given, the record's scope must cover it
    (records may list several scopes separated by commas, or "*"/"any"); when None, any
    unexpired, unrevoked record for the image will do. SOURCE (a file name) only labels
    the audit entry and messages. Raises PolicyError (rule "likeness-consent") when no
    record exists, every record is revoked, expired (naming the date) or of another scope.
    """
    array = np.asarray(image)
    frames = array if array.ndim == 4 else array[None]
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), CLIP_FRAMES_CHECKED)))
    faces = 0
    for index in picks.astype(int):
        faces = len(find_faces(frames[index]))
        if faces:
            break
    digest = image_hash(array)
    label = f"{source} " if source else "image "
    log = {"image_sha256": digest, "source": source, "scope": scope}
    if not faces:
        audit.append("policy.likeness", decision="pass", reason="no face found", faces=0, **log)
        return None
    today = _today()
    records = consents_for(digest)
    usable = [r for r in records if r.revoked is None and r.expires >= today]
    matching = [r for r in usable if scope is None or scope_covers(r.scope, scope)]
    if matching:
        record = max(matching, key=lambda r: r.expires)
        audit.append(
            "policy.likeness",
            decision="pass",
            reason="consent record",
            faces=faces,
            consent_id=record.id,
            **log,
        )
        return record
    reason = _refusal(label.strip(), digest, records, usable, scope, today)
    audit.append("policy.likeness", decision="refuse", reason=reason, faces=faces, **log)
    raise PolicyError(reason, RULE_LIKENESS)


def _refusal(label, digest, records, usable, scope, today) -> str:
    hint = "register it with `kinema consent add`"
    rule = f"(rule: {RULE_LIKENESS})"
    if not records:
        return f"{label} shows a face and has no consent record {rule}; {hint}"
    if usable:  # there are valid records, but none for this scope
        scopes = ", ".join(sorted({f"'{r.scope}'" for r in usable}))
        return (
            f"{label} shows a face and its consent covers {scopes}, not '{scope}' {rule}; {hint} with --scope"
        )
    live = [r for r in records if r.revoked is None]
    if live:
        last = max(live, key=lambda r: r.expires)
        return (
            f"{label} shows a face and its consent record {last.id} expired on "
            f"{last.expires.isoformat()} {rule}; {hint} with a new --expires"
        )
    last = max(records, key=lambda r: r.revoked or "")
    return f"{label} shows a face and its consent record {last.id} was revoked on {last.revoked} {rule}"


# ----------------------------------------------------------------------------- consent registry


@dataclass(frozen=True)
class ConsentRecord:
    """One likeness consent (a record of the consent registry, kind "likeness"): who gave
    it (owner), for what (scope), until when (expires, inclusive, UTC), for which image
    (image_sha256, see image_hash; source names the file it was registered from)."""

    id: str
    image_sha256: str
    owner: str
    scope: str
    expires: dt.date
    created: str
    source: str
    faces: int
    revoked: str | None = None

    @classmethod
    def of(cls, record: consent.Consent) -> ConsentRecord:
        """The likeness view of a registry record (kind "likeness")."""
        names = [f.name for f in fields(cls)]
        return cls(**record.view(names, {"image_sha256": "subject_sha256", "source": "subject"}))

    def status(self, today: dt.date | None = None) -> str:
        """'valid', 'expired' or 'revoked'."""
        return consent.status(self.revoked, self.expires, today or _today())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the status as of today."""
        data = asdict(self)
        data["expires"] = self.expires.isoformat()
        data["status"] = self.status()
        return data


def add_consent(
    image_path: str | os.PathLike, owner: str, scope: str, expires: dt.date | str
) -> ConsentRecord:
    """Register consent for the image (or clip, or frame folder) at IMAGE_PATH.

    EXPIRES is a date or "YYYY-MM-DD"; the consent holds through that day (UTC).
    Refuses (PolicyError) an empty owner or scope, an expiry in the past or not a date,
    and a file that is not a decodable image or clip. Returns the new record.
    """
    try:
        owner, scope, until = consent.check_terms(owner, scope, expires)
    except consent.ConsentError as exc:
        raise PolicyError(str(exc)) from None
    path = Path(os.fspath(image_path))
    pixels = _load_pixels(path)
    first = pixels[0] if pixels.ndim == 4 else pixels
    stored = consent.add(
        "likeness", path.name, image_hash(pixels), owner, scope, until, {"faces": len(find_faces(first))}
    )
    record = ConsentRecord.of(stored)
    audit.append("consent.add", **record.to_dict())
    return record


def list_consents(include_revoked: bool = True) -> list[ConsentRecord]:
    """Every likeness consent record, oldest first (revoked ones too unless asked not to)."""
    return [ConsentRecord.of(r) for r in consent.records("likeness", include_revoked=include_revoked)]


def consents_for(image_sha256: str) -> list[ConsentRecord]:
    """Every record (valid, expired or revoked) for an image hash, oldest first."""
    return [ConsentRecord.of(r) for r in consent.records("likeness", subject_sha256=image_sha256)]


def find_consent(image_sha256: str, scope: str | None = None) -> ConsentRecord | None:
    """The record that allows using the image now (not revoked, not expired, covering
    SCOPE when given), the one lasting longest; None when there is none."""
    usable = consent.usable("likeness", scope, subject_sha256=image_sha256, on=_today())
    return ConsentRecord.of(max(usable, key=lambda r: r.expires)) if usable else None


def get_consent(consent_id: str) -> ConsentRecord:
    """The likeness record with this id; PolicyError when there is none."""
    try:
        record = consent.get(consent_id)
    except consent.ConsentError as exc:
        raise PolicyError(str(exc)) from None
    if record.kind != "likeness":
        raise PolicyError(
            f"consent record '{consent_id}' is a {record.kind} consent: "
            f"manage it with `kinema voice` (revoke the voice '{record.subject}')"
        )
    return ConsentRecord.of(record)


def revoke_consent(consent_id: str, reason: str | None = None) -> ConsentRecord:
    """Revoke a record from now on; returns it. PolicyError for an unknown id or a record
    already revoked. (The record stays in the registry, marked, for the audit trail.)"""
    get_consent(consent_id)  # a likeness record, or refused with a message that says which
    try:
        revoked = ConsentRecord.of(consent.revoke(consent_id))
    except consent.ConsentError as exc:
        raise PolicyError(str(exc)) from None
    audit.append("consent.revoke", reason=reason, **revoked.to_dict())
    return revoked


def _load_pixels(path: Path) -> np.ndarray:
    """An image file as (H, W, 3); a clip or frame folder as (T, H, W, 3)."""
    if not path.exists():
        raise PolicyError(f"'{path}' does not exist")
    is_image = path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    try:
        if is_image:
            return read_image(path)
        return read_video(path).frames
    except VideoError as exc:
        kind = "an image" if is_image else "an image or a clip"
        raise PolicyError(f"'{path}' is not {kind} kinema can read ({exc})") from None
