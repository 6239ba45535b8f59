"""One backend over a diffusers pipeline: kinema's options in, a Video out.

A backend is a Pipeline (kinema.pipelines.protocol), as kinema's own TextToVideo is, so
the layers above need no branch for it; it serves the modes its family and folder can.
What differs between model families (which frame counts and sizes a model can make,
which diffusers pipeline serves which mode, how images are passed) lives in a `Family`;
this file holds the steps every family shares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kinema.errors import InputError
from kinema.io import Video
from kinema.pipelines.protocol import MODES, resolve_settings

# only safetensors are hashed, as only safetensors are loaded (use_safetensors=True)
WEIGHT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class Request:
    """One generation, validated: what a family needs to pick a pipeline and its inputs."""

    frames: int
    fps: float
    width: int
    height: int
    first_image: np.ndarray | None  # uint8 (H, W, 3): the clip starts on it
    keyframes: dict[int, np.ndarray]  # frame index > 0 → uint8 image the clip shows there
    last_image: np.ndarray | None  # uint8 (H, W, 3): the clip ends on it


@dataclass(frozen=True)
class Family:
    """What one model family (Wan, LTX-Video, CogVideoX) brings to a backend.

    frames_ok(pipe, n): whether the model makes exactly n frames.
    size_multiple(pipe): width and height must be multiples of it.
    fixed_size(pipe): (width, height) a model can only make (learned position tables), or None.
    route(backend, request): the diffusers pipeline for the request's mode and its extra
    keyword arguments; raises InputError for a mode the folder cannot serve.
    modes(class_name): the modes (kinema.pipelines.protocol.MODES) a folder whose
    model_index.json names class_name serves; known without loading any weights.
    """

    name: str
    defaults: dict
    frames_ok: Callable[[object, int], bool]
    size_multiple: Callable[[object], int]
    route: Callable[[DiffusersBackend, Request], tuple[object, dict]]
    modes: Callable[[str], frozenset[str]]
    fixed_size: Callable[[object], tuple[int, int] | None] = lambda pipe: None


def model_hash(folder: Path) -> str:
    """SHA-256 over the folder's weight files in path order, each path hashed with its bytes
    so that moving a file between components changes the hash."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob(f"*{WEIGHT_SUFFIX}")):
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def nearest_valid(value: int, ok: Callable[[int], bool], lowest: int = 1) -> int:
    """The valid count closest to value (the smaller one on a tie)."""
    for distance in range(0, value + 4096):
        for candidate in (value - distance, value + distance):
            if candidate >= lowest and ok(candidate):
                return candidate
    raise InputError(f"no valid frame count near {value}")


@contextmanager
def quiet() -> Iterator[None]:
    """diffusers and transformers keep their loading bars and advice off kinema's stderr,
    where one error line or kinema's own progress bar is all a user should see."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    saved = [(m, m.get_verbosity(), m.is_progress_bar_enabled()) for m in (dlog, tlog)]
    for m, _, _ in saved:
        m.set_verbosity_error()
        m.disable_progress_bar()
    try:
        yield
    finally:
        for m, level, bars in saved:
            m.set_verbosity(level)
            if bars:
                m.enable_progress_bar()


def to_pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB")


class DiffusersBackend:
    """A callable over a loaded diffusers pipeline of one family.

    `pipelines` holds the loaded pipeline under its class name; a family adds others that
    share its components (DiffusionPipeline.from_pipe, no second copy of the weights)
    through `derived`.
    """

    def __init__(self, pipe, family: Family, folder: Path, *, name: str | None = None):
        self.pipe, self.family, self.folder = pipe, family, folder
        self.name = name or folder.name
        self.model_hash = model_hash(folder)
        self.defaults = {"sampler": type(pipe.scheduler).__name__, **family.defaults}
        self._derived: dict[str, object] = {type(pipe).__name__: pipe}

    @property
    def class_name(self) -> str:
        return type(self.pipe).__name__

    @property
    def modes(self) -> frozenset[str]:
        """The modes this folder serves: some of t2v, i2v and keyframes, never the edits."""
        return self.family.modes(self.class_name)

    def derived(self, cls) -> object:
        """The pipeline of class cls over this backend's components, made once."""
        if cls.__name__ not in self._derived:
            with quiet():
                pipe = cls.from_pipe(self.pipe)
            pipe.set_progress_bar_config(disable=True)
            self._derived[cls.__name__] = pipe
        return self._derived[cls.__name__]

    # ---------------------------------------------------------------- checks

    def check_size(self, width: int, height: int) -> None:
        fixed = self.family.fixed_size(self.pipe)
        if fixed is not None:
            if (width, height) != fixed:
                raise InputError(
                    f"{self.name} only makes {fixed[0]}x{fixed[1]} (learned position table); "
                    f"{width}x{height} is not (ask for size {fixed[0]}x{fixed[1]})"
                )
            return
        m = self.family.size_multiple(self.pipe)
        for value, axis in ((width, "width"), (height, "height")):
            if value < m or value % m or value > 4096:
                nearest = min(4096 // m * m, max(m, round(value / m) * m))
                raise InputError(
                    f"{self.name} makes sizes that are multiples of {m} up to 4096; "
                    f"{axis} {value} is not (nearest valid: {nearest})"
                )

    def check_frames(self, frames: int) -> None:
        ok = lambda n: self.family.frames_ok(self.pipe, n)  # noqa: E731
        if frames < 1 or not ok(frames):
            raise InputError(
                f"{self.name} ({self.family.name}) cannot make {frames} frames "
                f"(nearest valid: {nearest_valid(max(frames, 1), ok)})"
            )

    # ---------------------------------------------------------------- generation

    @torch.inference_mode()
    def __call__(
        self,
        prompt: str,
        *,
        seed: int = 0,
        frames: int | None = None,
        size: int | tuple[int, int] | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str = "",
        fps: float | None = None,
        keyframes: dict[int, np.ndarray] | None = None,
        last_image: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
        sampler: str | None = None,
        shift: float | None = None,
        loop: bool = False,
    ) -> Video:
        """Generate a clip; the arguments mean what they mean for TextToVideo. keyframes
        maps frame indices to uint8 images (H, W, 3); 0 is the first frame (image to
        video). A setting this backend cannot honour (sampler, shift, loop, a mode the
        folder cannot serve) is refused, never silently dropped."""
        d = self.defaults
        if loop:
            raise InputError(f"loop is not supported with the diffusers model {self.name}")
        if sampler is not None and sampler != d["sampler"]:
            raise InputError(f"{self.name} samples with its own scheduler {d['sampler']}; drop the sampler")
        if shift is not None:
            raise InputError(f"{self.name} takes its shift from its scheduler config; drop the shift")
        settings = resolve_settings(d, frames, size, steps, guidance, fps)
        frames, width, height, steps = settings.frames, settings.width, settings.height, settings.steps
        self.check_size(width, height)
        self.check_frames(frames)
        keyframes = dict(keyframes or {})
        for index, image in keyframes.items():
            if not 0 <= index < frames:
                raise InputError(f"keyframe index {index} is outside the clip's {frames} frames")
            self._check_image(image, width, height, f"keyframe {index}")
        if last_image is not None:
            self._check_image(last_image, width, height, "last_image")
        first = keyframes.pop(0, None)
        request = Request(frames, settings.fps, width, height, first, keyframes, last_image)
        pipe, extra = self.family.route(self, request)

        def on_step(pipe_, i, t, tensors):
            progress(i + 1, steps)
            return tensors

        with quiet():
            out = pipe(
                prompt=prompt,
                negative_prompt=negative or None,
                num_frames=frames,
                height=height,
                width=width,
                num_inference_steps=steps,
                guidance_scale=settings.guidance,
                generator=torch.Generator().manual_seed(seed),
                output_type="np",
                callback_on_step_end=on_step if progress else None,
                **extra,
            )
        return Video(to_uint8(out.frames[0]), settings.fps)

    # ---------------------------------------------------------------- edits kinema's own model makes

    def _refuse(self, what: str):
        serves = ", ".join(mode for mode in MODES if mode in self.modes)
        raise InputError(
            f"{what} works with kinema's own model; the diffusers model {self.name} serves {serves}"
        )

    def extend(self, *args, **kwargs):
        self._refuse("extend")

    def remix(self, *args, **kwargs):
        self._refuse("remix")

    def inpaint(self, *args, **kwargs):
        self._refuse("inpaint")

    def outpaint(self, *args, **kwargs):
        self._refuse("outpaint")

    @staticmethod
    def _check_image(image: np.ndarray, width: int, height: int, what: str) -> None:
        if image.shape != (height, width, 3):
            raise InputError(f"{what} is {image.shape[1]}x{image.shape[0]}, the clip is {width}x{height}")


def to_uint8(frames) -> np.ndarray:
    """diffusers' np output (T, H, W, 3) floats in [0, 1] → uint8 frames."""
    array = np.asarray(frames, dtype=np.float32)
    return np.ascontiguousarray((array.clip(0, 1) * 255).round().astype(np.uint8))
