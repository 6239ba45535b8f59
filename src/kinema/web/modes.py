"""The generation modes a job may ask for, and the check that turns a request into the
params a worker runs (kinema.jobs.worker does the work; this only refuses bad requests).

    t2v        prompt → clip                          loop: the last frame flows into the first
    i2v        + image: the clip starts on an uploaded image
    keyframes  + last_image (and optionally image): the clip ends (and starts) on them
    extend     source + frames new frames, after it (or before it: backward)
    remix      source + strength in [0, 1] (0 keeps the take, 1 ignores it)
    inpaint    source + mask: an uploaded PNG of the source's size, white = regenerate
    outpaint   source + outpaint [L, T, R, B]: grow the canvas and fill the new area

An edit's source is a finished take (`source`) or an uploaded clip (`source_clip`).

Everything a request names is checked here, before it is queued: uploads and source takes
must be this token's, sizes and lengths must be ones the model makes (ModelFacts reads the
model folder's JSON, no weights), so a bad request gets a 4xx with a message instead of a
job that fails later.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kinema.errors import InputError
from kinema.jobs.queue import JobError, JobQueue
from kinema.jobs.worker import EDITS, GENERATE, MODES
from kinema.pipelines.conditioning import mask_region

__all__ = ["EDITS", "MODES", "JobRequest", "ModelFacts", "job_params", "recheck"]

# the optional fields and the modes that take them (any other mode refuses them)
TAKES: dict[str, tuple[str, ...]] = {
    "image": ("i2v", "keyframes"),
    "last_image": ("keyframes",),
    "loop": ("t2v", "i2v"),
    "size": GENERATE,
    "fps": GENERATE,
    "frames": (*GENERATE, "extend"),
    "source": EDITS,
    "source_clip": EDITS,
    "backward": ("extend",),
    "strength": ("remix",),
    "mask": ("inpaint",),
    "outpaint": ("outpaint",),
}
NEEDS: dict[str, tuple[str, ...]] = {  # besides an edit's source (a take or a clip)
    "i2v": ("image",),
    "keyframes": ("last_image",),
    "extend": ("frames",),
    "inpaint": ("mask",),
    "outpaint": ("outpaint",),
}
HELP = {
    "image": "the id of an uploaded first image (POST /api/uploads)",
    "last_image": "the id of an uploaded last image (POST /api/uploads)",
    "source": "the id of a finished take of yours",
    "source_clip": "the id of an uploaded mp4 or webm clip of yours (POST /api/uploads)",
    "frames": "how many frames to add",
    "mask": "the id of an uploaded PNG mask (white = regenerate)",
    "outpaint": "[left, top, right, bottom] pixels to add",
}
SIZE = re.compile(r"^\s*([0-9]{1,5})(?:\s*x\s*([0-9]{1,5}))?\s*$", re.IGNORECASE)


class JobRequest(BaseModel):
    """A generation job. `mode` says which; the fields each mode takes are listed in
    kinema.web.modes (a field another mode takes is refused, not ignored)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["t2v", "i2v", "keyframes", "extend", "remix", "inpaint", "outpaint"] = "t2v"
    prompt: str = Field(min_length=1, max_length=2000, description="the whole scene (after an edit)")
    negative: str = Field(default="", max_length=2000, description="what to steer away from")
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="random when not given")
    frames: int | None = Field(
        default=None, ge=1, le=100_000, description="clip length; for extend: frames to add"
    )
    size: str | None = Field(default=None, max_length=20, description="S or WxH in pixels")
    steps: int | None = Field(default=None, ge=1, le=1000, description="sampler steps")
    guidance: float | None = Field(default=None, ge=0, le=50, description="classifier-free guidance")
    fps: float | None = Field(default=None, gt=0, le=240, description="frames per second written")
    loop: bool = Field(default=False, description="t2v, i2v: the last frame flows into the first")
    image: str | None = Field(
        default=None, max_length=64, description="i2v, keyframes: upload id of the first image"
    )
    last_image: str | None = Field(
        default=None, max_length=64, description="keyframes: upload id of the last image"
    )
    source: str | None = Field(default=None, max_length=64, description="edits: the id of a finished take")
    source_clip: str | None = Field(
        default=None, max_length=64, description="edits: upload id of a clip to edit, instead of a take"
    )
    backward: bool = Field(default=False, description="extend: add the frames before the take")
    strength: float | None = Field(
        default=None, ge=0, le=1, description="remix: 0 keeps the take, 1 ignores it"
    )
    mask: str | None = Field(default=None, max_length=64, description="inpaint: upload id of a PNG mask")
    outpaint: list[int] | None = Field(
        default=None, min_length=4, max_length=4, description="outpaint: [left, top, right, bottom] pixels"
    )


@dataclass(frozen=True)
class ModelFacts:
    """What the server knows of its model without loading it: name, defaults, the VAE's
    factors, and whether it is kinema's own (edits and loops) or a diffusers backend.
    `known` is False when the folder could not be read; the worker's pipeline checks then."""

    known: bool = False
    name: str | None = None
    own: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)
    spatial: int | None = None
    temporal: int = 4

    @classmethod
    def read(cls, model: str | os.PathLike | None) -> ModelFacts:
        """The facts of MODEL (a folder; None or "builtin": the built-in model)."""
        if model is None or str(model) == "builtin":
            folder = Path(str(resources.files("kinema") / "weights" / "builtin"))
        else:
            folder = Path(os.fspath(model))
        try:
            if not (folder / "model.json").is_file():
                if (folder / "model_index.json").is_file():
                    return cls(known=True, name=folder.name, own=False)
                return cls()
            meta = json.loads((folder / "model.json").read_text())
            vae = json.loads((folder / "vae" / "config.json").read_text())["model"]
            spatial = int(vae.get("patch", 4)) * 2 ** (len(vae.get("channels", (0, 0))) - 1)
            return cls(
                known=True,
                name=str(meta.get("name", folder.name)),
                defaults=dict(meta.get("defaults") or {}),
                spatial=spatial,
                temporal=int(vae.get("temporal_factor", 4)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return cls()

    @property
    def modes(self) -> list[str]:
        """The modes this model serves (all of them when unknown)."""
        return list(MODES) if self.own or not self.known else list(GENERATE)

    def default(self, name: str, fallback: int) -> int:
        return int(self.defaults.get(name, fallback))

    def latent_frames(self, frames: int) -> int:
        return 1 + math.ceil((frames - 1) / self.temporal)

    def summary(self) -> dict[str, Any]:
        """What /api/me tells the pages: name, modes and defaults."""
        return {
            "name": self.name,
            "modes": self.modes,
            "loop": self.own,
            "defaults": self.defaults,
            "size_multiple": self.spatial,
        }


def job_params(request: JobRequest, owner: str, queue: JobQueue, limits, facts: ModelFacts) -> dict[str, Any]:
    """Check REQUEST for OWNER and return the params a worker runs; raises InputError (a
    400 with its message) for anything the server, the model or the mode refuses."""
    from kinema.provenance.policy import screen_prompt

    mode = request.mode
    prompt = request.prompt.strip()
    negative = request.negative.strip()
    if not prompt:
        raise InputError("empty prompt: say what the clip should show")
    for name, text in (("prompt", prompt), ("negative", negative)):
        if len(text) > limits.prompt_chars:
            raise InputError(f"{name} is {len(text)} characters; at most {limits.prompt_chars}")
        if text:
            screen_prompt(text)
    for name, modes in TAKES.items():
        if getattr(request, name) not in (None, False) and mode not in modes:
            raise InputError(f"'{name}' is for mode {' or '.join(modes)}, not {mode}")
    if mode in EDITS and (request.source is None) == (request.source_clip is None):
        raise InputError(
            f"mode {mode} needs one source: 'source' ({HELP['source']}) or 'source_clip' ({HELP['source_clip']})"
        )
    for name in NEEDS.get(mode, ()):
        if getattr(request, name) is None:
            raise InputError(f"mode {mode} needs '{name}': {HELP[name]}")
    if facts.known and not facts.own and (mode in EDITS or request.loop):
        what = mode if mode in EDITS else "loop"
        raise InputError(
            f"{what} works with kinema's own model; the diffusers model {facts.name} only generates"
        )
    if request.frames is not None and request.frames > limits.frames:
        raise InputError(f"frames must be between 1 and {limits.frames}, got {request.frames}")
    if request.steps is not None and request.steps > limits.steps:
        raise InputError(f"steps must be between 1 and {limits.steps}, got {request.steps}")
    params: dict[str, Any] = {
        "mode": mode,
        "prompt": prompt,
        "negative": negative,
        "seed": request.seed if request.seed is not None else secrets.randbelow(2**31),
        "steps": request.steps,
        "guidance": request.guidance,
    }
    if mode in GENERATE:
        params.update(_generation(request, owner, queue, limits, facts))
    else:
        params.update(_edit(request, owner, queue, limits, facts))
    return params


def recheck(params: dict[str, Any], owner: str, queue: JobQueue) -> None:
    """Refuse re-running stored PARAMS (more like this) whose uploads or source take are gone."""
    for name in ("image", "last_image", "mask", "source_clip"):
        if params.get(name):
            queue.input_path(params[name], owner)
    if params.get("source"):
        _source(params["source"], owner, queue, params.get("mode", "edit"))


def parse_size(text: str, side: int, multiple: int | None = None) -> list[int]:
    """'S' or 'WxH' → [W, H], each 16..SIDE and a multiple of MULTIPLE when given."""
    match = SIZE.match(text)
    if not match:
        raise InputError(f"size takes S or WxH in pixels, got '{text[:40]}'")
    width = int(match.group(1))
    height = int(match.group(2)) if match.group(2) else width
    _check_sides(width, height, side, multiple, f"size '{text.strip()}'")
    return [width, height]


# ---------------------------------------------------------------------- per mode


def _generation(request: JobRequest, owner, queue: JobQueue, limits, facts: ModelFacts) -> dict[str, Any]:
    size = parse_size(request.size, limits.side, facts.spatial) if request.size else None
    frames = request.frames
    out: dict[str, Any] = {"frames": frames, "size": size, "fps": request.fps, "loop": request.loop}
    window = facts.default("window", 17)
    if request.loop and facts.known:
        period = facts.default("loop_period", 30)
        frames = period if frames is None else frames
        if frames % period:
            nearest = max(period, round(frames / period) * period)
            raise InputError(
                f"a loop makes whole periods of {period} frames; frames {frames} is not (nearest: {nearest})"
            )
        if frames > limits.frames:
            raise InputError(f"a loop of {frames} frames is longer than the limit of {limits.frames}")
        if facts.latent_frames(frames + 1) <= facts.latent_frames(window):
            raise InputError(f"a loop needs more than {window - 1} frames (the model's window)")
    if request.mode == "keyframes" and facts.known:
        length = facts.default("frames", 16) if frames is None else frames
        if facts.latent_frames(length) > facts.latent_frames(window):
            raise InputError(
                f"a last image works up to the model's window of {window} frames; frames is {length}"
            )
    for name in ("image", "last_image"):
        value = getattr(request, name)
        if value is not None:
            queue.input_path(value, owner)  # refuses an unknown or another token's upload
            out[name] = value
    return out


def _edit(request: JobRequest, owner, queue: JobQueue, limits, facts: ModelFacts) -> dict[str, Any]:
    mode = request.mode
    if request.source_clip is not None:
        width, height, length = _clip_facts(request.source_clip, owner, queue)
        _check_sides(width, height, limits.side, facts.spatial, f"the clip ({width}x{height})")
        out: dict[str, Any] = {"source_clip": request.source_clip, "size": [width, height]}
        what = "clip"
    else:
        source = _source(request.source, owner, queue, mode)
        record = source.record or {}
        width, height = (int(v) for v in record.get("size") or (0, 0))
        length = int(record.get("frames") or 0)
        out = {"source": source.id, "size": [width, height]}
        what = "take"
    if mode == "extend":
        if length + request.frames > limits.frames:
            raise InputError(
                f"the {what} has {length} frames; adding {request.frames} passes the limit of {limits.frames}"
            )
        out.update(frames=request.frames, backward=request.backward)
    elif mode == "remix":
        out["strength"] = 0.6 if request.strength is None else request.strength
    elif mode == "inpaint":
        from kinema.io import read_image

        path = queue.input_path(request.mask, owner)
        if path.suffix != ".png":
            raise InputError("the mask must be a PNG (black = keep, white = regenerate)")
        mask_region(read_image(path), width, height)
        out["mask"] = request.mask
    else:
        left, top, right, bottom = request.outpaint
        if min(left, top, right, bottom) < 0 or left + top + right + bottom == 0:
            raise InputError("outpaint takes four non-negative pixel counts [L, T, R, B], not all zero")
        grown = (width + left + right, height + top + bottom)
        _check_sides(*grown, limits.side, facts.spatial, f"the outpainted clip ({grown[0]}x{grown[1]})")
        out["outpaint"] = [left, top, right, bottom]
        out["size"] = list(grown)
    return out


def _clip_facts(upload_id: str, owner: str, queue: JobQueue) -> tuple[int, int, int]:
    """Width, height and frame count of an uploaded clip of OWNER's: decoded in full and
    checked at upload, which saved them with the file (a queue's older uploads: the
    stream's header, or a count of frames without converting them to pixels where the
    container does not record it)."""
    from kinema.io.video import video_header

    path, facts = queue.input_record(upload_id, owner)
    if path.suffix not in (".mp4", ".webm"):
        raise InputError(f"upload {upload_id} is not a clip; upload an mp4 or webm to edit it")
    if "frames" in facts:
        return int(facts["width"]), int(facts["height"]), int(facts["frames"])
    width, height, frames = video_header(path)
    if not frames:  # webm keeps no count: count the frames, without converting them to pixels
        import av

        with av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(container.streams.video[0]))
    return width, height, frames


def _source(source_id: str, owner: str, queue: JobQueue, mode: str):
    try:
        source = queue.get(source_id, owner)
    except JobError:
        raise InputError(f"no take with id '{source_id[:40]}' to {mode}") from None
    if queue.output_path(source) is None:
        raise InputError(f"take {source.id} is {source.status}; only a finished take can be used for {mode}")
    return source


def _check_sides(width: int, height: int, side: int, multiple: int | None, what: str) -> None:
    for value in (width, height):
        if not 16 <= value <= side:
            raise InputError(f"{what}: sides must be 16..{side} pixels")
        if multiple and value % multiple:
            nearest = min(side // multiple * multiple, max(multiple, round(value / multiple) * multiple))
            raise InputError(
                f"{what}: the model makes sides that are multiples of {multiple}; "
                f"{value} is not (nearest valid: {nearest})"
            )
