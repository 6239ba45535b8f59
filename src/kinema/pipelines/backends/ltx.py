"""LTX-Video through diffusers: LTXPipeline (text to video), LTXImageToVideoPipeline
(first image), LTXConditionPipeline (keyframes and a last image, where the installed
diffusers has it).

All three share one transformer and VAE, so whichever the folder names, the others are
made from it with from_pipe and every mode is served.
"""

from __future__ import annotations

import diffusers

from kinema.errors import InputError
from kinema.pipelines.backends.base import DiffusersBackend, Family, Request, to_pil

CLASSES = ("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline")
# frame conditioning arrived in diffusers 0.33; older releases have only the first two
_CONDITION = getattr(diffusers, "LTXConditionPipeline", None)


def _frames_ok(pipe, n: int) -> bool:
    # 1 + 8k for LTX-Video's VAE: the first frame is encoded alone, then 8 frames a latent
    return (n - 1) % pipe.vae_temporal_compression_ratio == 0


def _size_multiple(pipe) -> int:
    # diffusers' check_inputs refuses sizes that are not multiples of 32
    return max(32, pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size)


def _route(backend: DiffusersBackend, request: Request) -> tuple[object, dict]:
    # LTX-Video scales its temporal position code by the frame rate it is asked for
    rate = {"frame_rate": max(1, round(request.fps))}
    if not request.keyframes and request.last_image is None:
        if request.first_image is None:
            return backend.derived(diffusers.LTXPipeline), rate
        pipe = backend.derived(diffusers.LTXImageToVideoPipeline)
        return pipe, {"image": to_pil(request.first_image), **rate}
    if _CONDITION is None:
        raise InputError(
            f"keyframes and a last image with LTX-Video need diffusers with LTXConditionPipeline "
            f"(>= 0.33); this one is {diffusers.__version__}"
        )
    step = backend.pipe.vae_temporal_compression_ratio
    images = dict(request.keyframes)
    if request.first_image is not None:
        images[0] = request.first_image
    if request.last_image is not None:
        images[request.frames - 1] = request.last_image
    for index in images:
        if index % step:
            raise InputError(f"LTX-Video keyframes sit at multiples of {step}; frame {index} is not")
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    conditions = [
        LTXVideoCondition(image=to_pil(image), frame_index=i) for i, image in sorted(images.items())
    ]
    return backend.derived(_CONDITION), {"conditions": conditions, **rate}


def _modes(class_name: str) -> frozenset[str]:
    # every LTX folder serves all three pipelines (from_pipe); keyframes need the third
    return frozenset({"t2v", "i2v"} | ({"keyframes"} if _CONDITION is not None else set()))


FAMILY = Family(
    name="LTX-Video",
    defaults={"frames": 121, "size": 512, "fps": 24.0, "steps": 50, "guidance": 3.0},
    frames_ok=_frames_ok,
    size_multiple=_size_multiple,
    route=_route,
    modes=_modes,
)
