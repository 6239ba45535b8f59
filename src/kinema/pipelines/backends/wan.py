"""Wan 2.1 / 2.2 through diffusers: WanPipeline (text to video; remix through
WanVideoToVideoPipeline on the same components), WanImageToVideoPipeline (image to
video, first–last frame with last_image) and WanVACEPipeline (text to video; inpaint,
outpaint and extension through its masks).

A Wan checkpoint is text-to-video, image-to-video or VACE: the I2V transformer takes the
image latents and mask as extra input channels and the VACE one has a control branch,
so one folder serves one of the three.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from kinema.errors import InputError
from kinema.pipelines.backends.base import DiffusersBackend, Family, Request, Run, to_pil

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


def _route(backend: DiffusersBackend, request: Request) -> tuple[object, dict]:
    if request.keyframes:
        raise InputError(f"Wan takes a first and a last image, not keyframes at {sorted(request.keyframes)}")
    if backend.class_name in (T2V, VACE):
        if request.first_image is not None or request.last_image is not None:
            raise InputError(f"{backend.name} is a text-to-video Wan checkpoint: it takes no first image")
        return backend.pipe, {}
    if request.first_image is None:
        raise InputError(f"{backend.name} is an image-to-video Wan checkpoint: it needs a first image")
    extra = {"image": to_pil(request.first_image)}
    if request.last_image is not None:
        extra["last_image"] = to_pil(request.last_image)
    return backend.pipe, extra


def _remix(backend: DiffusersBackend, run: Run, frames: np.ndarray, strength: float) -> np.ndarray:
    import diffusers

    pipe = backend.derived(diffusers.WanVideoToVideoPipeline)
    height, width = frames.shape[1:3]
    video = [to_pil(frame) for frame in frames]
    return run.call(pipe, len(frames), video=video, strength=strength, height=height, width=width)


def _fill(backend: DiffusersBackend, run: Run, canvas: np.ndarray, regenerate: np.ndarray) -> np.ndarray:
    # VACE reads the clip and a mask (white: make anew) and generates the whole clip
    height, width = canvas.shape[1:3]
    video = [to_pil(frame) for frame in canvas]
    mask = [Image.fromarray(np.where(m, 255, 0).astype(np.uint8), "L").convert("RGB") for m in regenerate]
    return run.call(
        backend.pipe, len(canvas), video=video, mask=mask, num_frames=len(canvas), height=height, width=width
    )


_MODES = {
    T2V: {"t2v", "remix"},
    # an image-to-video checkpoint needs its first image; a last image makes it first–last frame
    I2V: {"i2v", "keyframes"},
    VACE: {"t2v", "extend", "inpaint", "outpaint"},
}


def _modes(class_name: str) -> frozenset[str]:
    return frozenset(_MODES.get(class_name, ()))


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
)
