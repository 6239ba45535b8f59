"""One backend over a diffusers pipeline: kinema's options in, a Video out.

A backend is a Pipeline (kinema.pipelines.protocol), as kinema's own TextToVideo is, so
the layers above need no branch for it; it serves the modes its family and folder can.
What differs between model families (which frame counts and sizes a model can make,
which diffusers pipeline serves which mode, how images are passed) lives in a `Family`;
this file holds the steps every family shares.

Live previews (kinema.pipelines.preview) are not shown for diffusers models: a step-end
callback sees each family's latents in its own packing and normalisation (LTX-Video's
are token sequences), and as the noisy sample, not the clean estimate, so a backend
accepts a `preview` and the run goes on without one (the web studio keeps its step
counter), never failing for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from kinema.errors import InputError
from kinema.io import Video
from kinema.pipelines.adapters import AdapterFile
from kinema.pipelines.preview import Preview
from kinema.pipelines.protocol import MODES, resolve_settings
from kinema.pipelines.weights_hash import cached_hash

# only safetensors are hashed, as only safetensors are loaded (use_safetensors=True)
WEIGHT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class Request:
    """One generation, validated: what a family needs to pick a pipeline and its inputs.

    `frames` is the count the model makes, `wanted` the count the clip keeps: its first
    `wanted` frames, or, with a last image, `wanted` frames spread evenly over all made so
    that the last image stays on the last one (`position` says which made frame each kept
    frame is)."""

    frames: int
    fps: float
    width: int
    height: int
    first_image: np.ndarray | None  # uint8 (H, W, 3): the clip starts on it
    keyframes: dict[int, np.ndarray]  # frame index > 0 → uint8 image the clip shows there
    last_image: np.ndarray | None  # uint8 (H, W, 3): the clip ends on it
    wanted: int = 0  # 0: as many as are made
    control: np.ndarray | None = None  # uint8 (frames, H, W, 3): one control frame a frame made
    control_scale: float = 1.0
    reference: np.ndarray | None = None  # uint8 (H, W, 3): an image the clip's content follows

    def kept(self) -> np.ndarray:
        """The made frames' indices the clip keeps, in order."""
        wanted = self.wanted or self.frames
        if self.last_image is None:
            return np.arange(wanted)
        return np.linspace(0, self.frames - 1, wanted).round().astype(int)

    def position(self, index: int) -> int:
        """The made frame that the kept clip's frame `index` is."""
        return int(self.kept()[index])

    @property
    def images(self) -> dict[int, np.ndarray]:
        """Every image the clip must show, by made frame: first, keyframes, last."""
        placed = {self.position(i): image for i, image in self.keyframes.items()}
        if self.first_image is not None:
            placed[0] = self.first_image
        if self.last_image is not None:
            placed[self.frames - 1] = self.last_image
        return dict(sorted(placed.items()))


@dataclass(frozen=True)
class Routed:
    """A family's answer to a request: the diffusers pipeline, its own arguments besides
    prompt, steps, guidance and seed (num_frames, height and width are added unless given;
    None drops one the pipeline does not take), and the made frames it returns exactly
    (the family's masks keep them, and they are composited back over the decoded ones)."""

    pipe: object
    inputs: dict
    exact: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """What one model family (Wan, LTX-Video, CogVideoX) brings to a backend.

    frames_ok(pipe, n): whether the model makes exactly n frames (it makes the smallest
    such n that covers a request, and the clip is trimmed to the request).
    max_frames(pipe): the most frames the model can make (its position code's reach), or
    None for no limit of its own.
    size_multiple(pipe): width and height must be multiples of it.
    fixed_size(pipe): (width, height) a model can only make (learned position tables), or None.
    route(backend, request): the Routed pipeline and inputs for the request's mode;
    raises InputError for a mode or a steering input the folder cannot serve.
    modes(class_name): the modes (kinema.pipelines.protocol.MODES) a folder whose
    model_index.json names class_name serves; known without loading any weights.
    remix(backend, run, frames, strength): the clip (uint8 (T, H, W, 3)) redone.
    fill(backend, run, canvas, regenerate): canvas (uint8 (T, H, W, 3)) with the pixels
    where regenerate (bool (T, H, W)) is True made anew: serves inpaint, outpaint and
    extension by masks. extend(backend, run, frames, added): `added` new frames after
    the clip `frames`, for families that continue a clip by conditioning on it rather
    than by masks. Each is None where the family has no such pipeline; whether a folder
    serves the mode is `modes`'s answer, which the backend checks first.
    steering(class_name): what else steers such a folder, known without loading weights:
    some of "lora" (diffusers-format LoRA files), "control" (a control video) and
    "reference" (a reference image).
    """

    name: str
    defaults: dict
    frames_ok: Callable[[object, int], bool]
    size_multiple: Callable[[object], int]
    route: Callable[[DiffusersBackend, Request], Routed]
    modes: Callable[[str], frozenset[str]]
    fixed_size: Callable[[object], tuple[int, int] | None] = lambda pipe: None
    max_frames: Callable[[object], int | None] = lambda pipe: None
    remix: Callable | None = None
    fill: Callable | None = None
    extend: Callable | None = None
    steering: Callable[[str], frozenset[str]] = lambda class_name: frozenset()


@dataclass(frozen=True)
class Run:
    """What every call of a diffusers pipeline takes besides its inputs."""

    prompt: str
    negative: str
    seed: int
    steps: int
    guidance: float
    fps: float
    progress: Callable[[int, int], None] | None = None

    def call(self, pipe, frames: int | None = None, **inputs) -> np.ndarray:
        """PIPE's clip for this run as uint8 (T, H, W, 3), its first `frames` frames (all
        when None); inputs are the pipeline's own arguments (size, images, videos)."""

        def on_step(pipe_, i, t, tensors):
            self.progress(i + 1, getattr(pipe_, "num_timesteps", None) or self.steps)
            return tensors

        with quiet():
            out = pipe(
                prompt=self.prompt,
                negative_prompt=self.negative or None,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                generator=torch.Generator().manual_seed(self.seed),
                output_type="np",
                callback_on_step_end=on_step if self.progress else None,
                **inputs,
            )
        made = to_uint8(out.frames[0])
        if frames is not None and len(made) < frames:
            raise RuntimeError(f"{type(pipe).__name__} made {len(made)} frames where {frames} were due")
        return made[:frames]


def model_hash(folder: Path) -> str:
    """SHA-256 over the folder's weight files in path order, each path hashed with its bytes
    so that moving a file between components changes the hash; kept in KINEMA_HOME until a
    file changes (weights_hash: a large model's gigabytes are read once, not every load)."""
    files = sorted(folder.rglob(f"*{WEIGHT_SUFFIX}"))

    def compute() -> str:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(folder).as_posix().encode())
            with path.open("rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    return cached_hash(files, compute)


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
        """The modes (kinema.pipelines.protocol.MODES) this folder serves."""
        return self.family.modes(self.class_name)

    @property
    def steering(self) -> frozenset[str]:
        """What else steers this folder: some of "lora", "control" and "reference"."""
        return self.family.steering(self.class_name)

    def adapted(self, adapters: tuple[AdapterFile, ...]):
        """A context manager that mixes the LoRA adapters in at their scales for the calls
        inside it and unloads them on exit (kinema.pipelines.backends.lora); a file that
        does not fit this model's transformer is refused before anything is loaded."""
        from kinema.pipelines.backends.lora import adapted

        if "lora" not in self.steering:
            raise InputError(f"the diffusers model {self.name} cannot load LoRA adapters")
        return adapted(self, adapters)

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

    def frames_to_make(self, frames: int) -> int:
        """The smallest count the model makes that covers `frames` (the clip is trimmed to
        `frames` after); refuses (InputError) a count above the model's maximum."""
        if frames < 1:
            raise InputError(f"frames must be at least 1, got {frames}")
        most = self.family.max_frames(self.pipe)
        if most is not None and frames > most:
            raise InputError(
                f"{self.name} ({self.family.name}) makes at most {most} frames; {frames} is more"
            )
        made = frames
        while not self.family.frames_ok(self.pipe, made):
            made += 1
        return made

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
        preview: Preview | None = None,  # accepted, not shown (module doc)
        sampler: str | None = None,
        shift: float | None = None,
        loop: bool = False,
        control: Video | None = None,
        control_scale: float = 1.0,
        reference: np.ndarray | None = None,
    ) -> Video:
        """Generate a clip; the arguments mean what they mean for TextToVideo. keyframes
        maps frame indices to uint8 images (H, W, 3); 0 is the first frame (image to
        video). control is a clip whose frames drive the clip's, one a frame (its first
        `frames` are used), at control_scale; reference an image (H, W, 3) whose content
        the clip takes up. A setting this backend cannot honour (sampler, shift, a mode or
        a steering input the folder cannot serve) is refused, never silently dropped.

        A loop is closed with keyframes, where the family places them: the clip is made
        one frame longer with its first image as the last keyframe too, and that repeat
        is dropped, so the clip's last frame leads into its first as any frame into the
        next. Without an image the model first makes the first frame (a one-frame clip of
        the same prompt and seed)."""
        d = self.defaults
        if sampler is not None and sampler != d["sampler"]:
            raise InputError(f"{self.name} samples with its own scheduler {d['sampler']}; drop the sampler")
        if shift is not None:
            raise InputError(f"{self.name} takes its shift from its scheduler config; drop the shift")
        for given, what in ((control, "control"), (reference, "reference")):
            if given is not None and what not in self.steering:
                raise InputError(
                    f"the diffusers model {self.name} has no {what} branch; {what} cannot steer it"
                )
        settings = resolve_settings(d, frames, size, steps, guidance, fps)
        frames, width, height = settings.frames, settings.width, settings.height
        self.check_size(width, height)
        keyframes = dict(keyframes or {})
        for index, image in keyframes.items():
            if not 0 <= index < frames:
                raise InputError(f"keyframe index {index} is outside the clip's {frames} frames")
            self._check_image(image, width, height, f"keyframe {index}")
        for image, what in ((last_image, "last_image"), (reference, "reference")):
            if image is not None:
                self._check_image(image, width, height, what)
        control_frames = None if control is None else self._control(control, frames, width, height)
        run = Run(prompt, negative, seed, settings.steps, settings.guidance, settings.fps, progress)
        if loop:
            self._serve("loop")
            if last_image is not None:
                raise InputError("a loop ends where it starts; it takes no last_image")
            if 0 not in keyframes:
                keyframes[0] = self._first_frame(run, width, height, control_frames, control_scale, reference)
            # one frame more, ending on the first: the wrap is then an ordinary step
            last_image, wanted = keyframes[0], frames + 1
            if control_frames is not None:
                control_frames = np.concatenate([control_frames, control_frames[:1]])
        else:
            wanted = frames
        made = self.frames_to_make(wanted)
        if control_frames is not None:
            control_frames = np.concatenate(
                [control_frames, np.repeat(control_frames[-1:], made - len(control_frames), axis=0)]
            )
        first = keyframes.pop(0, None)
        request = Request(
            made, settings.fps, width, height, first, keyframes, last_image, wanted,
            control_frames, control_scale, reference,
        )  # fmt: skip
        clip = self._generate(run, request)
        return Video(np.ascontiguousarray(clip[:frames]), settings.fps)

    def _generate(self, run: Run, request: Request) -> np.ndarray:
        """The request's kept frames as uint8 (T, H, W, 3), through the family's route."""
        routed = self.family.route(self, request)
        inputs = {"num_frames": request.frames, "height": request.height, "width": request.width}
        inputs.update(routed.inputs)
        clip = run.call(routed.pipe, request.frames, **{k: v for k, v in inputs.items() if v is not None})
        for index, image in routed.exact.items():
            clip[index] = image
        return clip[request.kept()]

    def _first_frame(self, run, width, height, control, control_scale, reference) -> np.ndarray:
        """A loop's first frame when none was given: a one-frame clip of the same run."""
        if "t2v" not in self.modes:
            raise InputError(f"{self.name} makes a loop from a first image (image); give one")
        request = Request(
            1, run.fps, width, height, None, {}, None, 1,
            None if control is None else control[:1], control_scale, reference,
        )  # fmt: skip
        return self._generate(replace(run, progress=None), request)[0]

    def _control(self, control: Video, frames: int, width: int, height: int) -> np.ndarray:
        """The control clip's first `frames` frames; refuses a shorter one or another size."""
        if control.num_frames < frames:
            raise InputError(
                f"the control clip has {control.num_frames} frames; the clip has {frames} "
                "(each frame is driven by one control frame: give a longer control or fewer frames)"
            )
        if (control.width, control.height) != (width, height):
            raise InputError(
                f"the control clip is {control.width}x{control.height}, the clip {width}x{height}"
            )
        return np.ascontiguousarray(control.frames[:frames])

    # ---------------------------------------------------------------- edits

    def _serve(self, mode: str) -> None:
        if mode not in self.modes:
            serves = ", ".join(m for m in MODES if m in self.modes)
            raise InputError(f"the diffusers model {self.name} does not do {mode}; it serves {serves}")

    def _run(self, prompt, fps, seed, steps, guidance, negative, progress) -> Run:
        settings = resolve_settings(self.defaults, 1, None, steps, guidance, fps)
        return Run(prompt, negative, seed, settings.steps, settings.guidance, fps, progress)

    def _padded(self, frames: np.ndarray) -> np.ndarray:
        """A clip lengthened to a count the model makes by repeating its last frame."""
        made = self.frames_to_make(len(frames))
        return np.concatenate([frames, np.repeat(frames[-1:], made - len(frames), axis=0)])

    @torch.inference_mode()
    def remix(
        self,
        video: Video,
        prompt: str,
        *,
        strength: float = 0.6,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str = "",
        progress: Callable[[int, int], None] | None = None,
        preview: Preview | None = None,  # accepted, not shown (module doc)
    ) -> Video:
        """The clip redone under a new prompt through the family's video-to-video pipeline;
        strength 0 keeps it (returned as is), 1 ignores it."""
        self._serve("remix")
        if not 0 <= strength <= 1:
            raise InputError(f"strength must be between 0 and 1, got {strength}")
        self.check_size(video.width, video.height)
        if strength == 0:
            return Video(video.frames.copy(), video.fps, video.audio)
        run = self._run(prompt, video.fps, seed, steps, guidance, negative, progress)
        made = self.family.remix(self, run, self._padded(video.frames), strength)
        return Video(np.ascontiguousarray(made[: video.num_frames]), video.fps, video.audio)

    @torch.inference_mode()
    def inpaint(
        self,
        video: Video,
        prompt: str,
        region: np.ndarray,
        *,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str = "",
        progress: Callable[[int, int], None] | None = None,
        preview: Preview | None = None,  # accepted, not shown (module doc)
    ) -> Video:
        """Regenerate `region` (bool H×W, True = regenerate) in every frame; every pixel
        outside it is the input's, exactly (the model's output is composited over it)."""
        self._serve("inpaint")
        region = np.asarray(region, bool)
        if region.shape != (video.height, video.width):
            raise InputError(
                f"the mask is {region.shape[1]}x{region.shape[0]}, the clip {video.width}x{video.height}"
            )
        self.check_size(video.width, video.height)
        run = self._run(prompt, video.fps, seed, steps, guidance, negative, progress)
        regenerate = np.broadcast_to(region, video.frames.shape[:3])
        return Video(self._fill(run, video.frames, regenerate), video.fps, video.audio)

    def outpaint(
        self, video: Video, prompt: str, left: int, top: int, right: int, bottom: int, **options
    ) -> Video:
        """The clip on a canvas grown by the given pixels on each side, the new area filled
        and the clip's own pixels kept exactly."""
        self._serve("outpaint")
        if min(left, top, right, bottom) < 0 or left + top + right + bottom == 0:
            raise InputError("outpaint takes four non-negative pixel counts L,T,R,B, not all zero")
        width, height = video.width + left + right, video.height + top + bottom
        self.check_size(width, height)
        canvas = np.full((video.num_frames, height, width, 3), 127, np.uint8)
        canvas[:, top : top + video.height, left : left + video.width] = video.frames
        region = np.ones((height, width), bool)
        region[top : top + video.height, left : left + video.width] = False
        return self.inpaint(Video(canvas, video.fps, video.audio), prompt, region, **options)

    @torch.inference_mode()
    def extend(
        self,
        video: Video,
        prompt: str,
        frames: int,
        *,
        backward: bool = False,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str = "",
        progress: Callable[[int, int], None] | None = None,
        preview: Preview | None = None,  # accepted, not shown (module doc)
    ) -> Video:
        """The clip followed (or, backward, preceded) by `frames` new frames; the clip's
        own frames are kept exactly. Backward runs forward on the reversed clip."""
        self._serve("extend")
        if frames < 1:
            raise InputError(f"frames to add must be at least 1, got {frames}")
        self.check_size(video.width, video.height)
        self.frames_to_make(video.num_frames + frames)  # refuses a clip past the model's maximum
        run = self._run(prompt, video.fps, seed, steps, guidance, negative, progress)
        source = np.ascontiguousarray(video.frames[::-1] if backward else video.frames)
        if self.family.extend is not None:
            added = self.family.extend(self, run, source, frames)
        else:
            canvas = np.concatenate([source, np.full((frames, *source.shape[1:]), 127, np.uint8)])
            regenerate = np.zeros(canvas.shape[:3], bool)
            regenerate[len(source) :] = True
            added = self._fill(run, canvas, regenerate)[len(source) :]
        joined = np.concatenate([added[::-1], video.frames]) if backward else np.concatenate([source, added])
        return Video(np.ascontiguousarray(joined), video.fps)

    def _fill(self, run: Run, canvas: np.ndarray, regenerate: np.ndarray) -> np.ndarray:
        """The family's fill of canvas where regenerate is True, composited so that every
        other pixel is the canvas's own."""
        frames = len(canvas)
        padded = self._padded(canvas)
        mask = np.concatenate([regenerate, np.ones((len(padded) - frames, *regenerate.shape[1:]), bool)])
        made = self.family.fill(self, run, padded, mask)[:frames]
        return np.ascontiguousarray(np.where(regenerate[..., None], made, canvas))

    @staticmethod
    def _check_image(image: np.ndarray, width: int, height: int, what: str) -> None:
        if image.shape != (height, width, 3):
            raise InputError(f"{what} is {image.shape[1]}x{image.shape[0]}, the clip is {width}x{height}")


def to_uint8(frames) -> np.ndarray:
    """diffusers' np output (T, H, W, 3) floats in [0, 1] → uint8 frames."""
    array = np.asarray(frames, dtype=np.float32)
    return np.ascontiguousarray((array.clip(0, 1) * 255).round().astype(np.uint8))
