"""What a kinema C2PA manifest claims, built as the definition c2pa signs.

A ManifestSpec says what one output is: its title, digital source type (IPTC
trainedAlgorithmicMedia for model output, algorithmicMedia for the world renderer), the
edit it makes of a source file, and the assertions kinema adds: `org.kinema.generation`
(model, seed, prompt or its hash, settings), the watermark as a `c2pa.soft-binding`, a
review decision (`org.kinema.review`) and, in frame folders, `org.kinema.frame`.
`manifest_definition` turns a spec and its ingredients into c2pa's manifest JSON with
the actions (c2pa.created, or c2pa.opened + c2pa.edited; c2pa.published after review).
This module also knows which formats c2pa embeds a manifest into and which get a
sidecar (`embeds`, `sidecar_path`). Signing and reading are c2pa.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinema.provenance.keys import ProvenanceError
from kinema.version import __version__

__all__ = [
    "ALGORITHMIC_MEDIA",
    "EMBEDDED_FORMATS",
    "FRAME_PATTERN",
    "SIDECAR_FORMATS",
    "TRAINED_ALGORITHMIC_MEDIA",
    "Generation",
    "Ingredient",
    "ManifestSpec",
    "Review",
    "SoftBinding",
    "embeds",
    "ingredient_label",
    "ingredient_list",
    "manifest_definition",
    "mime_for",
    "sidecar_path",
]

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = IPTC_SOURCE_TYPES + "trainedAlgorithmicMedia"
ALGORITHMIC_MEDIA = IPTC_SOURCE_TYPES + "algorithmicMedia"

GENERATION_LABEL = "org.kinema.generation"
REVIEW_LABEL = "org.kinema.review"
FRAME_LABEL = "org.kinema.frame"
SOFT_BINDING_LABEL = "c2pa.soft-binding"
ACTIONS_LABEL = "c2pa.actions"
SIDECAR_SUFFIX = ".c2pa"
FRAME_PATTERN = re.compile(r"^frame_(\d{4,})\.png$")

# Suffix → MIME type, split by whether c2pa can embed a manifest into the file.
EMBEDDED_FORMATS = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".png": "image/png",
    ".gif": "image/gif",
    ".wav": "audio/wav",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
}
SIDECAR_FORMATS = {
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
}
# Relationships an ingredient may have to the new asset (C2PA 2.x).
RELATIONSHIPS = ("parentOf", "componentOf", "inputTo")


@dataclass(frozen=True)
class Generation:
    """What made the asset: the custom assertion `org.kinema.generation`.

    With hide_prompt the prompt (and negative prompt) appear only as SHA-256 hashes.
    `details` carries anything else worth recording (voice profile, consent record, ...).
    """

    model: str
    model_hash: str | None = None
    seed: int | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    hide_prompt: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_assertion(self) -> dict[str, Any]:
        """The assertion's data, with the prompt replaced by its hash when hidden."""
        data: dict[str, Any] = {
            "model": self.model,
            "model_hash": self.model_hash,
            "seed": self.seed,
        }
        for name, text in (("prompt", self.prompt), ("negative_prompt", self.negative_prompt)):
            if text is None:
                continue
            data[f"{name}_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if not self.hide_prompt:
                data[name] = text
        data["settings"] = dict(self.settings)
        data.update(self.details)
        return data


@dataclass(frozen=True)
class SoftBinding:
    """The invisible watermark as a C2PA soft binding: its algorithm and payload (hex)."""

    algorithm: str
    payload_hex: str

    def to_assertion(self) -> dict[str, Any]:
        try:
            payload = bytes.fromhex(self.payload_hex)
        except ValueError as exc:
            raise ProvenanceError(f"soft binding payload is not hex: {self.payload_hex!r}") from exc
        value = base64.b64encode(payload).decode("ascii")
        return {"alg": self.algorithm, "blocks": [{"scope": {}, "value": value}]}


@dataclass(frozen=True)
class Review:
    """A human review decision, recorded in exported files as `org.kinema.review`."""

    decision: str
    reviewer: str
    note: str = ""
    time: str = ""

    def to_assertion(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reviewer": self.reviewer,
            "note": self.note,
            "time": self.time or _now(),
        }


@dataclass(frozen=True)
class Ingredient:
    """A file the asset was made from, and how (parentOf, componentOf or inputTo)."""

    path: Path
    relationship: str = "parentOf"
    title: str | None = None


@dataclass(frozen=True)
class ManifestSpec:
    """What a manifest claims about one output.

    edit names the operation (extend, remix, inpaint, ...) when the output edits a
    source file; the source must then be given to `sign_file` as the parentOf
    ingredient. Without edit the action is c2pa.created. digital_source_type takes the
    IPTC short name ("trainedAlgorithmicMedia", "algorithmicMedia") or the full URI.
    """

    title: str
    format: str = ""
    digital_source_type: str = TRAINED_ALGORITHMIC_MEDIA
    edit: str | None = None
    generation: Generation | None = None
    soft_binding: SoftBinding | None = None
    review: Review | None = None
    when: str | None = None
    software_version: str = __version__
    extra_assertions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def embeds(path: Path) -> bool:
    """Whether c2pa embeds a manifest into files like this one (else: a sidecar)."""
    return Path(path).suffix.lower() in EMBEDDED_FORMATS


def sidecar_path(path: Path) -> Path:
    """Where the manifest of a file that cannot embed one lives: OUT.c2pa."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


# Files that go into a manifest only as ingredients, never signed themselves: model
# weights (a LoRA adapter a clip was made with), typed as C2PA's AI-model asset.
MODEL_FORMATS = {".safetensors": "application/octet-stream"}
# inputs that are data, not media: a motion path (JSON). Ingredients by hash, never signed.
DATA_FORMATS = {".json": "application/json"}
MODEL_DATA_TYPE = "c2pa.types.model"


def mime_for(path: Path) -> str:
    """The MIME type c2pa is told for PATH, from its suffix."""
    suffix = path.suffix.lower()
    mime = EMBEDDED_FORMATS.get(suffix) or SIDECAR_FORMATS.get(suffix)
    if mime is None:
        raise ProvenanceError(f"cannot sign {path.name}: format {suffix or '(none)'} not supported")
    return mime


def ingredient_list(spec: ManifestSpec, items: Sequence[Path | Ingredient]) -> list[Ingredient]:
    """Ingredients with explicit relationships: a bare path is the edit's parent if it comes
    first in an edit, else an input; an edit must have exactly one parent."""
    result = []
    for index, item in enumerate(items):
        if not isinstance(item, Ingredient):
            relation = "parentOf" if spec.edit and index == 0 else "inputTo"
            item = Ingredient(Path(item), relation)
        if item.relationship not in RELATIONSHIPS:
            raise ProvenanceError(f"ingredient relationship must be one of {RELATIONSHIPS}")
        if not Path(item.path).exists():
            raise ProvenanceError(f"ingredient {item.path} does not exist")
        result.append(item)
    parents = sum(1 for i in result if i.relationship == "parentOf")
    if spec.edit and parents != 1:
        raise ProvenanceError(f"an edit ({spec.edit}) needs its source file as the one parent")
    if not spec.edit and parents:
        raise ProvenanceError("a parentOf ingredient needs an edit name in the manifest")
    return result


def manifest_definition(spec: ManifestSpec, mime: str, parts: Sequence[Ingredient]) -> dict:
    """The c2pa manifest definition for SPEC."""
    assertions = [{"label": ACTIONS_LABEL, "data": {"actions": _actions(spec, parts)}}]
    if spec.generation is not None:
        assertions.append({"label": GENERATION_LABEL, "data": spec.generation.to_assertion()})
    if spec.soft_binding is not None:
        assertions.append({"label": SOFT_BINDING_LABEL, "data": spec.soft_binding.to_assertion()})
    if spec.review is not None:
        assertions.append({"label": REVIEW_LABEL, "data": spec.review.to_assertion()})
    for label, data in spec.extra_assertions.items():
        assertions.append({"label": label, "data": dict(data)})
    return {
        "claim_generator_info": [{"name": "kinema", "version": spec.software_version}],
        "title": spec.title,
        "format": spec.format or mime,
        "assertions": assertions,
    }


def _actions(spec: ManifestSpec, parts: Sequence[Ingredient]) -> list[dict]:
    """c2pa.created (or c2pa.opened + c2pa.edited for an edit), then c2pa.published
    when the manifest records a review."""
    when = spec.when or _now()
    main: dict[str, Any] = {
        "action": "c2pa.edited" if spec.edit else "c2pa.created",
        "digitalSourceType": _source_type_uri(spec.digital_source_type),
        "softwareAgent": {"name": "kinema", "version": spec.software_version},
        "when": when,
    }
    if spec.edit:
        main["description"] = spec.edit
    inputs = [ingredient_label(i) for i, p in enumerate(parts) if p.relationship != "parentOf"]
    if inputs:
        main["parameters"] = {"ingredientIds": inputs}
    actions = [main]
    if spec.edit:
        parent = next(i for i, p in enumerate(parts) if p.relationship == "parentOf")
        opened = {
            "action": "c2pa.opened",
            "parameters": {"ingredientIds": [ingredient_label(parent)]},
        }
        actions.insert(0, opened)
    if spec.review is not None:
        actions.append({"action": "c2pa.published", "when": spec.review.time or when})
    return actions


def _source_type_uri(name: str) -> str:
    """The full IPTC digital source type URI for a short name or URI."""
    return name if name.startswith("http") else IPTC_SOURCE_TYPES + name


def ingredient_label(index: int) -> str:
    return f"ingredient{index}"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
