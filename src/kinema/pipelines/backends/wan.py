"""Wan 2.1 / 2.2 through diffusers: WanPipeline (text to video; remix through
WanVideoToVideoPipeline on the same components), WanImageToVideoPipeline (image to
video, first–last frame with last_image, loops) and WanVACEPipeline (text or image to
video, keyframes and loops, a control video and a reference image; inpaint, outpaint and
extension, all through its video and masks).

A Wan checkpoint is text-to-video, image-to-video or VACE: the I2V transformer takes the
image latents and mask as extra input channels and the VACE one has a control branch,
so one folder serves one of the three.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from kinema.errors import InputError
from kinema.pipelines.backends.base import DiffusersBackend, Family, Request, Routed, Run, to_pil

T2V, I2V, VACE = "WanPipeline", "WanImageToVideoPipeline", "WanVACEPipeline"
CLASSES = (T2V, I2V, VACE)


def _frames_ok(pipe, n: int) -> bool:
    # the causal VAE makes 1 + k·temporal frames; diffusers would round others silently
    return (n - 1) % pipe.vae_scale_factor_temporal == 0


def _max_frames(pipe) -> int:
    # the rotary code covers rope_max_seq_len latent frames
    config = pipe.transformer.config
    return (config.rope_max_seq_len // config.patch_size[0] - 1) * pipe.vae_scale_factor_temporal + 1


def _size_multiple(pipe) -> int:
    return pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]


def _route(backend: DiffusersBackend, request: Request) -> Routed:
    if backend.class_name == VACE:
        return _vace(backend, request)
    if request.keyframes:
        raise InputError(f"Wan takes a first and a last image, not keyframes at {sorted(request.keyframes)}")
    if backend.class_name == T2V:
        if request.first_image is not None or request.last_image is not None:
            raise InputError(f"{backend.name} is a text-to-video Wan checkpoint: it takes no first image")
        return Routed(backend.pipe, {})
    if request.first_image is None:
        raise InputError(f"{backend.name} is an image-to-video Wan checkpoint: it needs a first image")
    extra = {"image": to_pil(request.first_image)}
    if request.last_image is not None:
        extra["last_image"] = to_pil(request.last_image)
    return Routed(backend.pipe, extra)


def _vace(backend: DiffusersBackend, request: Request) -> Routed:
    """VACE's inputs for a generated clip: the control clip (or grey) as its video, every
    image (first, keyframes, last) placed on its frame with the mask keeping that frame,
    and the reference image; the kept frames come back exactly."""
    images = request.images
    if not images and request.control is None and request.reference is None:
        return Routed(backend.pipe, {})  # text to video: VACE's own empty video and mask
    shape = (request.frames, request.height, request.width)
    canvas = np.full((*shape, 3), 127, np.uint8) if request.control is None else request.control.copy()
    regenerate = np.ones(shape, bool)
    for index, image in images.items():
        canvas[index], regenerate[index] = image, False
    inputs = _vace_inputs(canvas, regenerate)
    if request.control is not None:
        inputs["conditioning_scale"] = float(request.control_scale)
    if request.reference is not None:
        inputs["reference_images"] = [to_pil(request.reference)]
    return Routed(backend.pipe, inputs, exact=images)


def _vace_inputs(canvas: np.ndarray, regenerate: np.ndarray) -> dict:
    # VACE reads the clip and a mask per frame (white: make anew, black: keep)
    video = [to_pil(frame) for frame in canvas]
    mask = [Image.fromarray(np.where(m, 255, 0).astype(np.uint8), "L").convert("RGB") for m in regenerate]
    return {"video": video, "mask": mask}


def _remix(backend: DiffusersBackend, run: Run, frames: np.ndarray, strength: float) -> np.ndarray:
    import diffusers

    pipe = backend.derived(diffusers.WanVideoToVideoPipeline)
    height, width = frames.shape[1:3]
    video = [to_pil(frame) for frame in frames]
    return run.call(pipe, len(frames), video=video, strength=strength, height=height, width=width)


def _fill(backend: DiffusersBackend, run: Run, canvas: np.ndarray, regenerate: np.ndarray) -> np.ndarray:
    # VACE generates the whole clip from the clip and the mask
    height, width = canvas.shape[1:3]
    inputs = _vace_inputs(canvas, regenerate)
    return run.call(backend.pipe, len(canvas), **inputs, num_frames=len(canvas), height=height, width=width)


_MODES = {
    T2V: {"t2v", "remix"},
    # an image-to-video checkpoint needs its first image; a last image makes it first–last
    # frame, and the first image as the last too closes a loop
    I2V: {"i2v", "keyframes", "loop"},
    # VACE places images on any frame by its mask: first, keyframes, a loop's both ends
    VACE: {"t2v", "i2v", "keyframes", "loop", "extend", "inpaint", "outpaint"},
}


def _modes(class_name: str) -> frozenset[str]:
    return frozenset(_MODES.get(class_name, ()))


def _steering(class_name: str) -> frozenset[str]:
    # every Wan pipeline loads diffusers LoRA files; only VACE has the control branch
    # (its video input) and reference images
    if class_name not in CLASSES:
        return frozenset()
    return frozenset({"lora", "control", "reference"} if class_name == VACE else {"lora"})


FAMILY = Family(
    name="Wan",
    defaults={"frames": 81, "size": 480, "fps": 16.0, "steps": 50, "guidance": 5.0},
    frames_ok=_frames_ok,
    size_multiple=_size_multiple,
    route=_route,
    modes=_modes,
    max_frames=_max_frames,
    remix=_remix,
    fill=_fill,
    steering=_steering,
)
