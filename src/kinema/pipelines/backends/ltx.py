"""LTX-Video through diffusers: LTXPipeline (text to video), LTXImageToVideoPipeline
(first image), LTXConditionPipeline (keyframes and a last image, loops closed by the
first frame as the last keyframe; remix as a whole-clip condition of partial strength;
extension as the clip's last frames held at the start).

All three share one transformer and VAE, so whichever the folder names, the others are
made from it with from_pipe and every mode is served.
"""

from __future__ import annotations

import diffusers
import numpy as np

from kinema.errors import InputError
from kinema.pipelines.backends.base import DiffusersBackend, Family, Request, Routed, Run, to_pil

CLASSES = ("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline")
# frame conditioning arrived in diffusers 0.33; older releases have only the first two
_CONDITION = getattr(diffusers, "LTXConditionPipeline", None)


def _frames_ok(pipe, n: int) -> bool:
    # 1 + 8k for LTX-Video's VAE: the first frame is encoded alone, then 8 frames a latent
    return (n - 1) % pipe.vae_temporal_compression_ratio == 0


def _size_multiple(pipe) -> int:
    # diffusers' check_inputs refuses sizes that are not multiples of 32
    return max(32, pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size)


def _route(backend: DiffusersBackend, request: Request) -> Routed:
    # LTX-Video scales its temporal position code by the frame rate it is asked for
    rate = {"frame_rate": max(1, round(request.fps))}
    if not request.keyframes and request.last_image is None:
        if request.first_image is None:
            return Routed(backend.derived(diffusers.LTXPipeline), rate)
        pipe = backend.derived(diffusers.LTXImageToVideoPipeline)
        return Routed(pipe, {"image": to_pil(request.first_image), **rate})
    if _CONDITION is None:
        raise InputError(
            f"keyframes and a last image with LTX-Video need diffusers with LTXConditionPipeline "
            f"(>= 0.33); this one is {diffusers.__version__}"
        )
    step = backend.pipe.vae_temporal_compression_ratio
    for index in request.keyframes:
        if request.position(index) % step:
            raise InputError(f"LTX-Video keyframes sit at multiples of {step}; frame {index} is not")
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    conditions = [
        LTXVideoCondition(image=to_pil(image), frame_index=i) for i, image in request.images.items()
    ]
    return Routed(backend.derived(_CONDITION), {"conditions": conditions, **rate})


def _video_condition(frames: np.ndarray, strength: float):
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    return LTXVideoCondition(video=[to_pil(f) for f in frames], frame_index=0, strength=strength)


def _remix(backend: DiffusersBackend, run: Run, frames: np.ndarray, strength: float) -> np.ndarray:
    # a condition of strength s starts its latents at noise level 1 - s and holds them
    # there, which is SDEdit at strength 1 - s over the whole clip
    height, width = frames.shape[1:3]
    return run.call(
        backend.derived(_CONDITION),
        len(frames),
        conditions=[_video_condition(frames, 1.0 - strength)],
        num_frames=len(frames),
        height=height,
        width=width,
        frame_rate=max(1, round(run.fps)),
    )


def _extend(backend: DiffusersBackend, run: Run, frames: np.ndarray, added: int) -> np.ndarray:
    # the clip's last 1 + 8m frames (up to 17: two latents past the first) are held at the
    # start, and the frames after them are the new ones
    step = backend.pipe.vae_temporal_compression_ratio
    context = frames[len(frames) - (1 + step * min((len(frames) - 1) // step, 2)) :]
    made = backend.frames_to_make(len(context) + added)
    height, width = frames.shape[1:3]
    clip = run.call(
        backend.derived(_CONDITION),
        made,
        conditions=[_video_condition(context, 1.0)],
        num_frames=made,
        height=height,
        width=width,
        frame_rate=max(1, round(run.fps)),
    )
    return clip[len(context) : len(context) + added]


def _modes(class_name: str) -> frozenset[str]:
    # every LTX folder serves all three pipelines (from_pipe); keyframes, loops (the
    # first frame as the last keyframe too), remix and extension need the third
    edits = {"keyframes", "loop", "remix", "extend"} if _CONDITION is not None else set()
    return frozenset({"t2v", "i2v"} | edits) if class_name in CLASSES else frozenset()


def _steering(class_name: str) -> frozenset[str]:
    # each of the three pipelines loads diffusers LoRA files; none has a control branch
    return frozenset({"lora"}) if class_name in CLASSES else frozenset()


FAMILY = Family(
    name="LTX-Video",
    defaults={"frames": 121, "size": 512, "fps": 24.0, "steps": 50, "guidance": 3.0},
    frames_ok=_frames_ok,
    size_multiple=_size_multiple,
    route=_route,
    modes=_modes,
    remix=_remix,
    extend=_extend,
    steering=_steering,
)
