"""The generation modes a job may ask for, and the check that turns a request into the
params a worker runs (kinema.jobs.worker does the work; this only refuses bad requests).
The web keeps its own limits here (prompt length, frames, steps, sides, ownership of
uploads and takes); everything else is the request layer's one check (kinema.render),
run on the very ClipRequest the worker will render.

    t2v        prompt → clip                          loop: the last frame flows into the first
                                                      still: one frame, written as a PNG image
    i2v        + image: the clip starts on an uploaded image (loop and still as t2v)
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

import re
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kinema.errors import InputError
from kinema.jobs.queue import JobQueue
from kinema.jobs.requests import EDITS, GENERATE, MODES, adapter_file, clip_request, source_path
from kinema.pipelines.facts import ModelFacts
from kinema.render import check

__all__ = [
    "EDITS",
    "MAX_FRAMES",
    "MAX_SIDE",
    "MAX_STEPS",
    "MODES",
    "PROMPT_CHARS",
    "JobRequest",
    "ModelFacts",
    "job_params",
    "recheck",
]

# The web's own limits: JobRequest's schema bounds below, and the defaults and ceilings of
# kinema.web.context.Limits (an app's OpenAPI states its own Limits; a test compares them).
PROMPT_CHARS = 500
MAX_FRAMES = 256
MAX_STEPS = 100
MAX_SIDE = 512
MAX_ADAPTERS = 4

# the optional fields and the modes that take them (any other mode refuses them)
TAKES: dict[str, tuple[str, ...]] = {
    "image": ("i2v", "keyframes"),
    "last_image": ("keyframes",),
    "loop": ("t2v", "i2v"),
    "still": ("t2v", "i2v"),
    "size": GENERATE,
    "fps": GENERATE,
    "frames": (*GENERATE, "extend"),
    "source": EDITS,
    "source_clip": EDITS,
    "backward": ("extend",),
    "strength": ("remix",),
    "mask": ("inpaint",),
    "outpaint": ("outpaint",),
    "path": ("t2v", "i2v"),
    "control_clip": ("t2v", "i2v"),
    "reference": ("t2v", "i2v"),
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
    "path": "the id of an uploaded motion path (POST /api/uploads)",
    "control_clip": "the id of an uploaded clip whose object's motion to follow (POST /api/uploads)",
    "reference": "the id of an uploaded image of one object, whose colour and shape to take (POST /api/uploads)",
}
SIZE = re.compile(r"^\s*([0-9]{1,5})(?:\s*x\s*([0-9]{1,5}))?\s*$", re.IGNORECASE)


class AdapterChoice(BaseModel):
    """A LoRA adapter on this server (GET /api/adapters) by name, and its scale."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    scale: float = Field(default=1.0, ge=-2, le=2, description="0 drops it: the base model's output")


class JobRequest(BaseModel):
    """A generation job. `mode` says which; the fields each mode takes are listed in
    kinema.web.modes (a field another mode takes is refused, not ignored)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["t2v", "i2v", "keyframes", "extend", "remix", "inpaint", "outpaint"] = "t2v"
    prompt: str = Field(min_length=1, max_length=PROMPT_CHARS, description="the whole scene (after an edit)")
    negative: str = Field(default="", max_length=PROMPT_CHARS, description="what to steer away from")
    seed: int | None = Field(strict=True, default=None, ge=0, lt=2**63, description="random when not given")
    frames: int | None = Field(
        strict=True, default=None, ge=1, le=MAX_FRAMES, description="clip length; for extend: frames to add"
    )
    size: str | None = Field(default=None, max_length=20, description="S or WxH in pixels")
    steps: int | None = Field(strict=True, default=None, ge=1, le=MAX_STEPS, description="sampler steps")
    guidance: float | None = Field(
        strict=True, default=None, ge=0, le=50, description="classifier-free guidance"
    )
    fps: float | None = Field(
        strict=True, default=None, gt=0, le=240, description="frames per second written"
    )
    loop: bool = Field(
        strict=True, default=False, description="t2v, i2v: the last frame flows into the first"
    )
    still: bool = Field(
        strict=True,
        default=False,
        description="t2v, i2v: an image: one frame, written as a PNG (frames 1 or unset; no loop)",
    )
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
    backward: bool = Field(strict=True, default=False, description="extend: add the frames before the take")
    strength: float | None = Field(
        strict=True, default=None, ge=0, le=1, description="remix: 0 keeps the take, 1 ignores it"
    )
    mask: str | None = Field(default=None, max_length=64, description="inpaint: upload id of a PNG mask")
    outpaint: list[int] | None = Field(
        default=None, min_length=4, max_length=4, description="outpaint: [left, top, right, bottom] pixels"
    )
    literal: bool = Field(
        strict=True,
        default=False,
        description="send the prompt as typed (the built-in model otherwise reads it into its own words)",
    )
    fast: bool = Field(
        strict=True,
        default=False,
        description="few-step generation with the model's fast adapter (its steps, no guidance, unless given)",
    )
    adapters: list[AdapterChoice] = Field(
        default_factory=list, max_length=MAX_ADAPTERS, description="LoRA adapters mixed in by their scales"
    )
    path: str | None = Field(
        default=None,
        max_length=64,
        description="t2v, i2v: upload id of a motion path the object follows (leave the motion out of the prompt)",
    )
    control_clip: str | None = Field(
        default=None,
        max_length=64,
        description="t2v, i2v: upload id of a clip whose object's motion and size the clip follows",
    )
    reference: str | None = Field(
        default=None,
        max_length=64,
        description="t2v, i2v: upload id of an image of one object whose colour and shape the clip takes",
    )
    control_scale: float = Field(
        strict=True,
        default=1.0,
        ge=0,
        le=2,
        description="how strongly a path or control clip steers (0 drops it)",
    )


def job_params(request: JobRequest, owner: str, queue: JobQueue, limits, facts: ModelFacts) -> dict[str, Any]:
    """Check REQUEST for OWNER and return the params a worker runs; raises InputError (a
    400 with its message) for anything the server, the model or the mode refuses."""
    mode = request.mode
    prompt = request.prompt.strip()
    negative = request.negative.strip()
    if not prompt:
        raise InputError("empty prompt: say what the clip should show")
    for name, text in (("prompt", prompt), ("negative", negative)):
        if len(text) > limits.prompt_chars:
            raise InputError(f"{name} is {len(text)} characters; at most {limits.prompt_chars}")
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
        size = parse_size(request.size, limits.side) if request.size else None
        params.update(
            frames=request.frames, size=size, fps=request.fps, loop=request.loop, still=request.still
        )
        params.update(
            {name: getattr(request, name) for name in ("image", "last_image") if getattr(request, name)}
        )
        params.update(_steering(request, owner, queue))
        if request.reference is not None:
            params["reference"] = request.reference
    else:
        params.update(_edit(request, owner, queue, limits))
    if request.literal:
        params["literal"] = True
    if request.fast:
        params["fast"] = True
    adapters = [{"name": a.name, "scale": a.scale} for a in request.adapters if a.scale != 0]
    for adapter in adapters:
        if not adapter_file(adapter["name"]).is_file():
            raise InputError(f"no adapter '{adapter['name']}' on this server (GET /api/adapters lists them)")
    if adapters:
        params["adapters"] = adapters
    # the request layer's one check, on the very request the worker will render
    checked = check(clip_request(params, owner, queue), facts)
    return {**params, **reading_params(checked)}


def _steering(request: JobRequest, owner: str, queue: JobQueue) -> dict[str, Any]:
    """A generated clip's path or control clip (uploads of OWNER's, of the right kind) and
    its scale; at scale 0 they are dropped, as the request layer drops them."""
    out: dict[str, Any] = {}
    for name, suffixes, kind in (
        ("path", (".json",), "motion path"),
        ("control_clip", (".mp4", ".webm"), "clip"),
    ):
        upload = getattr(request, name)
        if upload is not None and queue.input_path(upload, owner).suffix not in suffixes:
            raise InputError(f"'{name}' must be the id of an uploaded {kind} ({HELP[name]})")
        if upload is not None and request.control_scale != 0:
            out[name] = upload
    if out:
        out["control_scale"] = request.control_scale
    return out


def reading_params(checked) -> dict[str, Any]:
    """How the prompt was read, for the studio to show with the job (the worker reads it
    again, to the same words): "understood" (the prompt the model is given, when it was
    read into the world's words) and "warnings" (words the model does not know)."""
    out: dict[str, Any] = {}
    if checked.understood_prompt is not None:
        out["understood"] = checked.understood_prompt
    if checked.warnings:
        out["warnings"] = list(checked.warnings)
    return out


def recheck(params: dict[str, Any], owner: str, queue: JobQueue) -> None:
    """Refuse re-running stored PARAMS (more like this) whose uploads or source take are gone."""
    for name in ("image", "last_image", "mask", "source_clip", "path", "control_clip", "reference"):
        if params.get(name):
            queue.input_path(params[name], owner)
    if params.get("source"):
        source_path(params, owner, queue, params.get("mode", "edit"))


def parse_size(text: str, side: int) -> list[int]:
    """'S' or 'WxH' → [W, H], each 16..SIDE pixels (the model's own sizes are its check's)."""
    match = SIZE.match(text)
    if not match:
        raise InputError(f"size takes S or WxH in pixels, got '{text[:40]}'")
    width = int(match.group(1))
    height = int(match.group(2)) if match.group(2) else width
    _check_sides(width, height, side, f"size '{text.strip()}'")
    return [width, height]


# ---------------------------------------------------------------------- edits


def _edit(request: JobRequest, owner, queue: JobQueue, limits) -> dict[str, Any]:
    """An edit's params: its source (a take or an uploaded clip of OWNER's) and the
    mode's own fields, within the web's limits."""
    mode = request.mode
    if request.source_clip is not None:
        width, height, length = _clip_facts(request.source_clip, owner, queue)
        _check_sides(width, height, limits.side, f"the clip ({width}x{height})")
        out: dict[str, Any] = {"source_clip": request.source_clip, "size": [width, height]}
        what = "clip"
    else:
        source_path({"source": request.source}, owner, queue, mode)  # a finished take of OWNER's
        record = queue.get(request.source, owner).record or {}
        width, height = (int(v) for v in record.get("size") or (0, 0))
        length = int(record.get("frames") or 0)
        out = {"source": request.source, "size": [width, height]}
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
        if queue.input_path(request.mask, owner).suffix != ".png":
            raise InputError("the mask must be a PNG (black = keep, white = regenerate)")
        out["mask"] = request.mask
    else:
        left, top, right, bottom = request.outpaint
        grown = (width + left + right, height + top + bottom)
        _check_sides(*grown, limits.side, f"the outpainted clip ({grown[0]}x{grown[1]})")
        out.update(outpaint=list(request.outpaint), size=list(grown))
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


def _check_sides(width: int, height: int, side: int, what: str) -> None:
    for value in (width, height):
        if not 16 <= value <= side:
            raise InputError(f"{what}: sides must be 16..{side} pixels")
