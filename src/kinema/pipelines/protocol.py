"""What every pipeline offers, whoever made its model: kinema's TextToVideo and the
diffusers backends alike, so the layers above hold a `Pipeline` and never ask which.

A pipeline returns a Video and writes nothing. It lists the modes it serves in `modes`;
asked for one it does not serve, it raises InputError naming what it can do. The
settings a request leaves out come from the pipeline's `defaults` through one function,
resolve_settings, which every pipeline calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from kinema.errors import InputError
from kinema.io import Video

# every mode a pipeline may serve: text to video, first image to video, keyframes (a last
# image, images at later frames), a seamless loop, and the edits of an existing clip
MODES = ("t2v", "i2v", "keyframes", "loop", "extend", "remix", "inpaint", "outpaint")

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class ResolvedSettings:
    """A generation's settings, every one given: the request's, or the model's default."""

    frames: int
    width: int
    height: int
    steps: int
    guidance: float
    fps: float


def resolve_settings(
    defaults: Mapping,
    frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    fps: float | None = None,
) -> ResolvedSettings:
    """The settings of a request, each None taken from `defaults` (a pipeline's: frames,
    size as S or (W, H), steps, guidance, fps). Size is S (square) or (W, H).

    Refuses (InputError) frames or steps below 1, a negative guidance and a rate that is
    not positive. Whether the model can make the size or the frame count is the
    pipeline's own check (check_size and its frame rule), not this one's.
    """
    frames = defaults["frames"] if frames is None else frames
    size = defaults["size"] if size is None else size
    width, height = (size, size) if isinstance(size, int) else size
    steps = defaults["steps"] if steps is None else steps
    guidance = defaults["guidance"] if guidance is None else guidance
    fps = defaults["fps"] if fps is None else fps
    if frames < 1:
        raise InputError(f"frames must be at least 1, got {frames}")
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    if guidance < 0:
        raise InputError(f"guidance must not be negative, got {guidance}")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    return ResolvedSettings(frames, width, height, steps, guidance, fps)


# The keyword options each method takes (TextToVideo's docstrings say what they mean); a
# pipeline may take more, never fewer. Named once here rather than restated per method.
# Steering is offered only where the model's facts list it (the request layer refuses it
# elsewhere before any work): __call__ takes control (a Video, one frame per output frame,
# at the clip's size), control_scale and reference (uint8 H×W×3 at the clip's size) where
# facts.controls names them, and a pipeline whose facts.adapters holds "lora" has
# `adapted(adapters)`: a context manager that mixes AdapterFiles (kinema.pipelines.adapters)
# in by their scales for the calls inside it and leaves the model as it was on exit.
EDIT_OPTIONS = ("seed", "steps", "guidance", "negative", "progress", "preview")
OPTIONS = {
    "__call__": ("seed", "frames", "size", "steps", "guidance", "negative", "fps", "keyframes", "last_image")
    + ("loop", "progress", "preview"),
    "extend": (*EDIT_OPTIONS, "backward"),
    "remix": (*EDIT_OPTIONS, "strength"),
    "inpaint": EDIT_OPTIONS,
    "outpaint": EDIT_OPTIONS,
}


@runtime_checkable
class Pipeline(Protocol):
    """A loaded model that makes and edits clips.

    name and model_hash identify the model (the manifest and sidecar name them);
    defaults holds at least frames, size, fps, steps, guidance and sampler; modes is the
    subset of MODES it serves. Each method takes the keyword options OPTIONS names for it.
    """

    name: str
    model_hash: str | None
    defaults: dict

    @property
    def modes(self) -> frozenset[str]:
        """The modes (from MODES) this pipeline serves."""
        ...

    def check_size(self, width: int, height: int) -> None:
        """Raise InputError, naming the nearest valid size, if the model cannot make W×H."""
        ...

    def __call__(self, prompt: str, **options) -> Video:
        """A new clip (t2v; i2v with keyframes={0: image}; keyframes; loop)."""
        ...

    def extend(self, video: Video, prompt: str, frames: int, **options) -> Video:
        """The clip with `frames` new frames after it (before it, backward)."""
        ...

    def remix(self, video: Video, prompt: str, **options) -> Video:
        """The clip redone under a new prompt; strength 0 keeps it, 1 ignores it."""
        ...

    def inpaint(self, video: Video, prompt: str, region: np.ndarray, **options) -> Video:
        """The clip with `region` (bool H×W, True = regenerate) made anew in every frame."""
        ...

    def outpaint(
        self, video: Video, prompt: str, left: int, top: int, right: int, bottom: int, **options
    ) -> Video:
        """The clip on a canvas grown by the given pixels on each side, the new area filled."""
        ...
