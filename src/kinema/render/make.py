"""render(pipe, checked): one function makes the clip of every mode, and the settings
record every door writes for it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinema.io import Video
from kinema.pipelines.preview import Preview
from kinema.provenance.origin import Origin
from kinema.render.check import Checked
from kinema.render.request import DEFAULT_STRENGTH, ClipRequest, file_sha256


@dataclass(frozen=True)
class Rendered:
    """What render made: the clip, the settings its sidecar and mark record, the C2PA
    edit action (None for a generated clip), the ingredient files, and its origin."""

    video: Video
    settings: dict
    edit: str | None
    ingredients: tuple[Path, ...]
    origin: Origin


# ---------------------------------------------------------------------- render


def render(
    pipe,
    checked: Checked,
    progress: Callable[[int, int], None] | None = None,
    preview: Preview | None = None,
) -> Rendered:
    """Make the clip of a Checked request with PIPE (kinema's TextToVideo or a diffusers
    backend); returns the Rendered clip with its settings record, edit action, ingredient
    files and origin. The pipeline refuses what only it can know (a diffusers model's
    sizes and lengths). PROGRESS(step, total) is called after every sampler step;
    PREVIEW (kinema.pipelines.preview) is shown the clip as sampled so far every few
    steps, where the pipeline can make previews (a diffusers backend whose latents it
    cannot read shows none); neither changes the clip."""
    r, inputs = checked.request, checked.inputs
    hooks: dict[str, Any] = {"progress": progress}
    if preview is not None:  # passed only when asked for: a pipeline may not take it
        hooks["preview"] = preview
    if inputs.adapters:
        # the adapters are mixed in for this clip only; the pipeline is its own again after
        with pipe.adapted(inputs.adapters):
            video, ingredients = _make(pipe, checked, hooks)
    else:
        video, ingredients = _make(pipe, checked, hooks)
    narrated: dict[str, Any] = {}
    if r.narration is not None:
        from kinema.voice.narrate import narrate_video

        n = r.narration
        video, narrated = narrate_video(
            video, n.text, voice=n.voice, scope=n.scope, disclose_aloud=n.disclose_aloud
        )
    settings = {**settings_record(pipe, r, video, typed=checked.typed_prompt), **narrated}
    if inputs.adapters:
        settings["adapters"] = [a.record() for a in inputs.adapters]
    ingredients += tuple(a.path for a in inputs.adapters)
    return Rendered(video, settings, r.edit, ingredients, Origin(pipe.name, pipe.model_hash))


def _make(pipe, checked: Checked, hooks: dict[str, Any]) -> tuple[Video, tuple[Path, ...]]:
    """The clip of the checked request and its input files (the manifest's ingredients);
    HOOKS are the progress and preview keywords every pipeline method is given."""
    r, inputs = checked.request, checked.inputs
    common = {"seed": r.seed, "steps": r.steps, "guidance": r.guidance, "negative": r.negative}
    if r.mode == "generate":
        if r.size is not None:
            pipe.check_size(*r.size)
        size = r.size or (pipe.defaults["size"], pipe.defaults["size"])
        first, last, reference = (_fitted(i, size) for i in (inputs.first, inputs.last, inputs.reference))
        steering: dict[str, Any] = {}
        if inputs.track is not None:  # kinema's branch: the control's or the path's track
            steering.update(control=inputs.track, control_scale=r.control_scale)
        elif inputs.control is not None:
            frames = inputs.control.frames
            if frames.shape[1:3] != (size[1], size[0]):
                frames = np.stack([_fitted(frame, size) for frame in frames])
            steering.update(control=Video(frames, inputs.control.fps), control_scale=r.control_scale)
        if reference is not None:
            steering["reference"] = reference
        video = pipe(
            r.prompt,
            frames=r.frames,
            size=r.size,
            fps=r.fps,
            keyframes={0: first} if first is not None else None,
            last_image=last,
            loop=r.loop,
            **hooks,
            **steering,
            **common,
        )
        files = (r.image, r.last_image, r.control, r.path, r.reference)
        ingredients = tuple(p for p in files if p is not None)
    else:
        source = inputs.source
        if r.mode == "extend":
            video = pipe.extend(source, r.prompt, r.add_frames, backward=r.backward, **hooks, **common)
        elif r.mode == "remix":
            strength = DEFAULT_STRENGTH if r.strength is None else r.strength
            video = pipe.remix(source, r.prompt, strength=strength, **hooks, **common)
        elif r.mode == "inpaint":
            video = pipe.inpaint(source, r.prompt, inputs.region, **hooks, **common)
        else:
            video = pipe.outpaint(source, r.prompt, *r.outpaint, **hooks, **common)
        ingredients = (r.source,)
    return video, ingredients


def _fitted(image, size: tuple[int, int]):
    """An input image at the pipeline's size (check fits images to the size the model's
    facts name; only the loaded pipeline knows a diffusers model's default size)."""
    if image is None or image.shape[:2] == (size[1], size[0]):
        return image
    from kinema.pipelines.conditioning import fit_image

    return fit_image(image, *size)[0]


def settings_record(pipe, request: ClipRequest, video: Video, typed: str | None = None) -> dict:
    """The settings a clip's sidecar, manifest and watermark payload record: what was
    asked, the model's defaults where nothing was, the inputs by content hash (so every
    door records the same), and the options that were set.

    "prompt" is the TYPED prompt (the request's own when None); when the model was given
    other words (the reader's understood prompt, request.prompt) they are recorded as
    "understood_prompt", or only as its hash with hide_prompt, as the prompt itself is."""
    r, d = request, pipe.defaults
    record: dict[str, Any] = {
        "mode": r.kind,
        "prompt": r.prompt if typed is None else typed,
        "negative_prompt": r.negative,
        "seed": r.seed,
        "frames": video.num_frames,
        "size": [video.width, video.height],
        "fps": video.fps,
        "steps": d["steps"] if r.steps is None else r.steps,
        "guidance": d["guidance"] if r.guidance is None else r.guidance,
        "sampler": d["sampler"],
    }
    if typed is not None and typed != r.prompt:
        if r.hide_prompt:
            record["understood_prompt_sha256"] = hashlib.sha256(r.prompt.encode()).hexdigest()
        else:
            record["understood_prompt"] = r.prompt
    for option in ("image", "last_image", "source", "mask", "control", "path", "reference"):
        path = getattr(r, option)
        if path is not None:
            record[f"{option}_sha256"] = file_sha256(Path(path))
    if r.control is not None or r.path is not None:
        record["control_scale"] = r.control_scale
    branches = getattr(pipe, "branch_sha256", None)  # kinema's own models: the branch that steered
    if branches is not None:
        for kind, used in (("control", r.control or r.path), ("reference", r.reference)):
            if used is not None:
                record[f"{kind}_branch_sha256"] = branches(kind)
    if r.mode == "extend":
        record.update(added_frames=r.add_frames, backward=r.backward)
    if r.mode == "remix":
        record["strength"] = DEFAULT_STRENGTH if r.strength is None else r.strength
    if r.mode == "outpaint":
        record["outpaint"] = list(r.outpaint)
    flags = {
        "loop": r.loop,
        "still": r.still,
        "literal": r.literal,
        "int8": r.int8,
        "memory_savers": list(r.savers),
    }
    record.update({name: value for name, value in flags.items() if value})
    return record
