"""Wan 2.1 / 2.2 through diffusers: WanPipeline (text to video) and
WanImageToVideoPipeline (image to video, first–last frame with last_image).

A Wan checkpoint is either text-to-video or image-to-video: the I2V transformer takes
the image latents and mask as extra input channels, so one folder serves one of the two.
"""

from __future__ import annotations

from kinema.errors import InputError
from kinema.pipelines.backends.base import DiffusersBackend, Family, Request, to_pil

T2V, I2V = "WanPipeline", "WanImageToVideoPipeline"
CLASSES = (T2V, I2V)


def _frames_ok(pipe, n: int) -> bool:
    # the causal VAE makes 1 + k·temporal frames; diffusers would round others silently
    return (n - 1) % pipe.vae_scale_factor_temporal == 0


def _size_multiple(pipe) -> int:
    return pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]


def _route(backend: DiffusersBackend, request: Request) -> tuple[object, dict]:
    if request.keyframes:
        raise InputError(f"Wan takes a first and a last image, not keyframes at {sorted(request.keyframes)}")
    if backend.class_name == T2V:
        if request.first_image is not None or request.last_image is not None:
            raise InputError(f"{backend.name} is a text-to-video Wan checkpoint: it takes no first image")
        return backend.pipe, {}
    if request.first_image is None:
        raise InputError(f"{backend.name} is an image-to-video Wan checkpoint: it needs a first image")
    extra = {"image": to_pil(request.first_image)}
    if request.last_image is not None:
        extra["last_image"] = to_pil(request.last_image)
    return backend.pipe, extra


def _modes(class_name: str) -> frozenset[str]:
    # an image-to-video checkpoint needs its first image; a last image makes it first–last frame
    return frozenset({"i2v", "keyframes"} if class_name == I2V else {"t2v"})


FAMILY = Family(
    name="Wan",
    defaults={"frames": 81, "size": 480, "fps": 16.0, "steps": 50, "guidance": 5.0},
    frames_ok=_frames_ok,
    size_multiple=_size_multiple,
    route=_route,
    modes=_modes,
)
