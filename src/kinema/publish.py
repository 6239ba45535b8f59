"""The one output path: every file kinema hands to a user, from any door, is finished here.

    Video ─► watermark (model output only) ─► writer (temporary name) ─► C2PA manifest
          ─► JSON sidecar ─► rename into place ─► review queue ("pending")

The watermark payload is derived from the signing key, the model hash, the seed, the
prompt hash and the settings, so the same command gives the same file. Nothing appears
at the output path until every step has succeeded. Clips, stills (one frame: .png, .jpg,
.webp) and narration (.wav) all take this path.

The Python door marks a model's Video when it is made (`attach`) and publishes it when
it is saved; the pixels and the file are those the command line writes for the same
request.
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
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.governance import review
from kinema.io import Video, check_output_path, is_still, output_kind, write_video
from kinema.io.atomic import publishable, write_json
from kinema.io.video import check_still
from kinema.io.wav import write_wav
from kinema.provenance.c2pa import (
    ALGORITHMIC_MEDIA,
    Generation,
    ManifestSpec,
    SoftBinding,
    sidecar_path,
    sign_file,
)
from kinema.provenance.keys import ensure_keys, watermark_key
from kinema.provenance.origin import WORLD_RENDERER, Origin
from kinema.provenance.watermark import ALGORITHM as WATERMARK_ALGORITHM
from kinema.provenance.watermark import PAYLOAD_BYTES, embed, payload_bytes
from kinema.state import kinema_home
from kinema.version import __version__

__all__ = [
    "WORLD_RENDERER",
    "Origin",
    "attach",
    "mark",
    "publish",
    "publish_audio",
    "publish_rendered",
    "settings_path",
    "write_narration",
]


def settings_path(output: str | os.PathLike) -> Path:
    """The JSON sidecar: OUT.json beside a file, settings.json inside a frame folder."""
    out = Path(os.fspath(output))
    if out.suffix.lower() != ".wav" and output_kind(output) == "frames":
        return out / "settings.json"
    return out.with_name(out.name + ".json")


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
    record.update(model=origin.name, model_hash=origin.model_hash, kinema_version=__version__)
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
    payload: bytes | None = None,
    creator: str | None = None,
) -> dict:
    """Finish `video` as a working file at `output`; returns its sidecar record.

    The record carries "id" (the review item: a fresh one each time, so a rerun is a new
    item and an earlier item of the same path becomes superseded), "path", "seed" and, on
    the first write on this machine, "keys_created" (the folder where the signing chain
    was made). `settings` holds prompt, seed and the generation settings; with
    `hide_prompt` only the prompt's hash is written, in the sidecar and the manifest
    alike. `payload` is given when `mark` has already watermarked the pixels (the Python
    door). `creator` is who the review item is filed under (default local:<uid>; the web
    worker: token:<id>). A broken audit log refuses before anything is written.
    """
    kind = check_output_path(output)
    if is_still(kind):
        check_still(video, kind)
    target = Path(os.fspath(output))
    review.check_gate()
    home = kinema_home()
    keys, created = ensure_keys(home)
    record = _sidecar_record(settings, origin, hide_prompt)
    binding = None
    if origin.trained:
        if payload is None:
            video, payload = mark(video, settings, origin)
        binding = SoftBinding(WATERMARK_ALGORITHM, payload.hex())
        record["watermark"] = {"algorithm": WATERMARK_ALGORITHM, "payload": payload.hex()}
    item_id = review.new_id()
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
    what = "image" if is_still(kind) else "clip"

    def register(staged: Path, install) -> None:
        review.register(
            target, record, what, spec, ingredients, item_id, creator=creator, staged=staged, install=install
        )

    if kind == "frames":
        _publish_folder(video, target, spec, keys, ingredients, record, register)
    else:
        _publish_file(video, target, spec, keys, ingredients, record, register)
    return {**record, "path": str(target), **({"keys_created": str(keys.folder)} if created else {})}


def mark(video: Video, settings: dict, origin: Origin) -> tuple[Video, bytes]:
    """VIDEO with the invisible watermark of (signing key, model, seed, prompt, settings),
    and the payload its pixels carry (8 bytes, or the first 4 on frames under 96 px). Only
    a trained model's output is marked."""
    if not origin.trained:
        raise ValueError(f"{origin.name} is not a trained model; its output is not watermarked")
    key = watermark_key(kinema_home())
    # what the pixels carry (the first 32 bits on frames under 96 px) is the soft binding
    payload = watermark_payload(key, origin, settings)[: payload_bytes(video.height, video.width)]
    return embed(video, payload, key), payload


def publish_rendered(rendered: Any, output: str | os.PathLike, **options: Any) -> dict:
    """Publish what kinema.render made (a Rendered: video, settings, origin, edit,
    ingredients) at OUTPUT; OPTIONS are publish's (hide_prompt, creator: the review item's
    owner, default local:<uid>; payload). Returns the sidecar record (see publish)."""
    r = rendered
    return publish(
        r.video, output, r.settings, r.origin, edit=r.edit, ingredients=list(r.ingredients), **options
    )


def attach(rendered: Any, *, hide_prompt: bool = False) -> Video:
    """The Python door's model output: the rendered Video watermarked now, whose save(path)
    publishes it (sign, sidecar, review) as the command line would, so the same request
    gives the same pixels and file from either door."""
    marked, payload = mark(rendered.video, rendered.settings, rendered.origin)

    def save(video: Video, path: str | os.PathLike) -> Path:
        saved = dataclasses.replace(rendered, video=video)
        return Path(publish_rendered(saved, path, hide_prompt=hide_prompt, payload=payload)["path"])

    return marked.with_publisher(save)


def check_wav_path(output: str | os.PathLike) -> Path:
    """Refuse a .wav output that cannot be written (before any speech is made)."""
    target = Path(os.fspath(output))
    if target.suffix.lower() != ".wav" or os.fspath(output).endswith(("/", os.sep)):
        raise InputError(f"'{target}' is not a .wav path")
    if target.is_dir():
        raise InputError(f"'{target}' is a directory; give a file name ending in .wav")
    if not (target.parent if str(target.parent) else Path(".")).is_dir():
        raise InputError(f"output folder '{target.parent}' does not exist")
    return target


def publish_audio(
    track: Any,
    output: str | os.PathLike,
    origin: Origin,
    *,
    edit: str | None = None,
    ingredients: Sequence[Path] = (),
    creator: str | None = None,
) -> dict:
    """Finish speech (a kinema.voice.narrate.SpeechTrack, its audio already watermarked)
    as a .wav working file: write, sign (algorithmicMedia, naming the voice profile and
    consent record), sidecar OUTPUT.json, rename into place, review queue (a fresh item,
    filed under CREATOR). Returns the sidecar record with "id", "path" and "seed".
    Refuses an output that is not a .wav in an existing folder."""
    target = check_wav_path(output)
    review.check_gate()
    home = kinema_home()
    keys, created = ensure_keys(home)
    record = _sidecar_record(track.settings, origin, hide_prompt=False)
    item_id = review.new_id()
    record = {"id": item_id, **record}
    spec = ManifestSpec(
        title=target.name,
        format="wav",
        digital_source_type=ALGORITHMIC_MEDIA,
        edit=edit,
        generation=Generation(
            model=origin.name, prompt=track.text, settings=track.generation_settings, details=track.details
        ),
        soft_binding=track.soft_binding,
    )

    def write(tmp: Path) -> Path | None:
        write_wav(track.audio, tmp)
        return sign_file(tmp, spec, keys, list(ingredients))

    def register(staged: Path, install) -> None:
        review.register(
            target,
            record,
            "audio",
            spec,
            list(ingredients),
            item_id,
            creator=creator,
            staged=staged,
            install=install,
        )

    _install_file(target, record, write, register)
    return {**record, "path": str(target), **({"keys_created": str(keys.folder)} if created else {})}


def _publish_file(video, target: Path, spec, keys, ingredients, record, register) -> None:
    def write(tmp: Path) -> Path | None:
        write_video(video, tmp)
        return sign_file(tmp, dataclasses.replace(spec, format=target.suffix[1:]), keys, ingredients)

    _install_file(target, record, write, register)


def _install_file(target: Path, record: dict, write, register) -> None:
    """WRITE(tmp) makes and signs the file under a temporary name beside TARGET (returning
    its manifest sidecar, if any); the settings record goes to a temporary too. REGISTER
    (staged, install) files the review item; install renames the sidecars and then the
    file into place (the file last, when its sidecars already are). Whatever was not
    renamed is removed."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    settings_tmp = tmp.with_name(tmp.name + ".json")
    manifest_sidecar = None
    try:
        manifest_sidecar = write(tmp)
        write_json(settings_tmp, record)
        publishable(tmp)

        def install() -> None:
            os.replace(settings_tmp, settings_path(target))
            if manifest_sidecar is not None:
                os.replace(manifest_sidecar, sidecar_path(target))
            os.replace(tmp, target)

        register(tmp, install)
    finally:
        for leftover in (tmp, settings_tmp, sidecar_path(tmp)):
            leftover.unlink(missing_ok=True)


def _publish_folder(video, target: Path, spec, keys, ingredients, record, register) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = target.with_name(f".{target.name}.old")
    try:
        frames = staging / "frames"
        write_video(video, frames)
        sign_file(frames, dataclasses.replace(spec, format="png"), keys, ingredients)
        write_json(frames / "settings.json", {**record, "fps": video.fps})

        def install() -> None:
            moved = target.exists()
            if moved:
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
            try:
                os.replace(frames, target)
            except BaseException:
                if moved:
                    os.replace(old, target)
                raise

        register(frames, install)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_narration(
    text: str,
    output: str | os.PathLike,
    *,
    seconds: float | None = None,
    ingredients: Sequence[Path] = (),
    **voice: Any,
) -> dict:
    """Speak TEXT into the .wav OUTPUT (fitted to SECONDS when given) and publish it; VOICE
    takes what `kinema.voice.narrate.speech_track` takes (voice, scope, rate_wpm,
    pitch_semitones, disclose_aloud). Nothing is written when anything is refused."""
    from kinema.voice.narrate import SYNTHESIZER, speech_track

    check_wav_path(output)
    track = speech_track(text, seconds=seconds, **voice)
    origin = Origin(SYNTHESIZER, trained=False)
    return publish_audio(
        track, output, origin, edit="narrate" if ingredients else None, ingredients=ingredients
    )
