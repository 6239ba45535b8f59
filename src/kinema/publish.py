"""The one output path: every file a command hands to a user is finished here.

    Video ─► watermark (model output only) ─► writer (temporary name) ─► C2PA manifest
          ─► JSON sidecar ─► rename into place ─► review queue ("pending")

The watermark payload is derived from the signing key, the model hash, the seed, the
prompt hash and the settings, so the same command gives the same file. Nothing appears
at the output path until every step has succeeded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kinema
from kinema.io import Video, check_output_path, output_kind, write_video
from kinema.io.atomic import replacing, write_json
from kinema.provenance import review
from kinema.provenance.c2pa import Generation, ManifestSpec, SoftBinding, sidecar_path, sign_file
from kinema.provenance.keys import ensure_keys, watermark_key
from kinema.provenance.watermark import ALGORITHM as WATERMARK_ALGORITHM
from kinema.provenance.watermark import PAYLOAD_BYTES, embed
from kinema.state import kinema_home


@dataclass(frozen=True)
class Origin:
    """What made the pixels.

    A model's output is watermarked and declared trainedAlgorithmicMedia; a procedure's
    (the world renderer) is declared algorithmicMedia and left unmarked.
    """

    name: str
    model_hash: str | None = None
    trained: bool = True

    @property
    def source_type(self) -> str:
        return "trainedAlgorithmicMedia" if self.trained else "algorithmicMedia"


WORLD_RENDERER = Origin("kinema world renderer (WORLD.md v1)", trained=False)


def clip_settings(
    pipe,
    video: Video,
    *,
    prompt: str,
    seed: int,
    negative: str = "",
    steps: int | None = None,
    guidance: float | None = None,
    **flags,
) -> dict:
    """The settings a generated clip's sidecar and mark record: what was asked, the model's
    defaults where nothing was, and the flags that were set (loop, int8, memory_savers)."""
    d = pipe.defaults
    return {
        "prompt": prompt,
        "negative_prompt": negative,
        "seed": seed,
        "frames": video.num_frames,
        "size": [video.width, video.height],
        "fps": video.fps,
        "steps": d["steps"] if steps is None else steps,
        "guidance": d["guidance"] if guidance is None else guidance,
        "sampler": d["sampler"],
        **{name: value for name, value in flags.items() if value},
    }


def settings_path(output: str | os.PathLike) -> Path:
    """The JSON sidecar: OUT.json beside a file, settings.json inside a frame folder."""
    out = Path(os.fspath(output))
    if output_kind(output) == "frames":
        return out / "settings.json"
    return out.with_name(out.name + ".json")


def review_item_id(record: dict, target: Path) -> str:
    """The review item's id of a file: a digest of its settings record and where it lies."""
    data = {"settings": record, "path": str(target.resolve())}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def watermark_payload(key: bytes, origin: Origin, settings: dict) -> bytes:
    """The payload: a keyed hash of model, seed, prompt hash and the other settings."""
    prompt = settings.get("prompt")
    fields = {
        "model_hash": origin.model_hash,
        "seed": settings.get("seed"),
        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest() if isinstance(prompt, str) else None,
        "settings": {k: v for k, v in settings.items() if k not in ("prompt", "seed")},
    }
    return hmac.new(key, json.dumps(fields, sort_keys=True, default=str).encode(), "sha256").digest()[
        :PAYLOAD_BYTES
    ]


def _sidecar_record(settings: dict, origin: Origin, hide_prompt: bool) -> dict:
    record = dict(settings)
    for name in ("prompt", "negative_prompt"):
        if hide_prompt and isinstance(record.get(name), str):
            record[f"{name}_sha256"] = hashlib.sha256(record.pop(name).encode()).hexdigest()
    record.update(model=origin.name, model_hash=origin.model_hash, kinema_version=kinema.__version__)
    return record


def publish(
    video: Video,
    output: str | os.PathLike,
    settings: dict,
    origin: Origin,
    *,
    edit: str | None = None,
    ingredients: Sequence[Path] = (),
    hide_prompt: bool = False,
) -> dict:
    """Finish `video` as a working file at `output`; returns its sidecar record.

    The record carries "id" (the review item), "path", "seed" and, on the first write
    on this machine, "keys_created" (the folder where the signing chain was made).
    `settings` holds prompt, seed and the generation settings; with `hide_prompt` only
    the prompt's hash is written, in the sidecar and the manifest alike.
    """
    kind = check_output_path(output)
    target = Path(os.fspath(output))
    home = kinema_home()
    keys, created = ensure_keys(home)
    record = _sidecar_record(settings, origin, hide_prompt)
    binding = None
    if origin.trained:
        payload = watermark_payload(watermark_key(home), origin, settings)
        video = embed(video, payload, watermark_key(home))
        binding = SoftBinding(WATERMARK_ALGORITHM, payload.hex())
        record["watermark"] = {"algorithm": WATERMARK_ALGORITHM, "payload": payload.hex()}
    item_id = review_item_id(record, target)
    record = {"id": item_id, **record}
    spec = ManifestSpec(
        title=target.name,
        digital_source_type=origin.source_type,
        edit=edit,
        generation=Generation(
            model=origin.name,
            model_hash=origin.model_hash,
            seed=settings.get("seed"),
            prompt=settings.get("prompt"),
            negative_prompt=settings.get("negative_prompt"),
            settings={k: v for k, v in settings.items() if k not in ("prompt", "negative_prompt", "seed")},
            hide_prompt=hide_prompt,
        ),
        soft_binding=binding,
    )
    if kind == "frames":
        _publish_folder(video, target, spec, keys, ingredients, record)
    else:
        _publish_file(video, target, spec, keys, ingredients, record)
    review.register(target, record, "clip", manifest=spec, ingredients=ingredients, item_id=item_id)
    return {**record, "path": str(target), **({"keys_created": str(keys.folder)} if created else {})}


def _publish_file(video, target: Path, spec, keys, ingredients, record) -> None:
    # the clip is renamed into place last, when its sidecars already are
    with replacing(target) as tmp:
        try:
            write_video(video, tmp)
            manifest_sidecar = sign_file(
                tmp, dataclasses.replace(spec, format=target.suffix[1:]), keys, ingredients
            )
            write_json(settings_path(target), record)
            if manifest_sidecar is not None:
                os.replace(manifest_sidecar, sidecar_path(target))
        finally:
            sidecar_path(tmp).unlink(missing_ok=True)


def _publish_folder(video, target: Path, spec, keys, ingredients, record) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = target.with_name(f".{target.name}.old")
    try:
        frames = staging / "frames"
        write_video(video, frames)
        sign_file(frames, dataclasses.replace(spec, format="png"), keys, ingredients)
        write_json(frames / "settings.json", {**record, "fps": video.fps})
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(frames, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
