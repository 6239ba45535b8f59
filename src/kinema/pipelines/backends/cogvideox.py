"""CogVideoX through diffusers: CogVideoXPipeline (text to video; remix through
CogVideoXVideoToVideoPipeline on the same components) and CogVideoXImageToVideoPipeline
(first image). No keyframes and no last image: the model conditions on its first frame
only.

A CogVideoX checkpoint is text-to-video, image-to-video or CogVideoX-Fun control (the
I2V transformer takes the image latents as extra channels, the control one the control
video's), so one folder serves one of the three. A control folder makes text to video
driven by a control clip (`control`), as long as the clip.
"""

from __future__ import annotations

import diffusers
import numpy as np

from kinema.errors import InputError
from kinema.pipelines.backends.base import DiffusersBackend, Family, Request, Routed, Run, to_pil

T2V, I2V = "CogVideoXPipeline", "CogVideoXImageToVideoPipeline"
V2V, CONTROL = "CogVideoXVideoToVideoPipeline", "CogVideoXFunControlPipeline"
CLASSES = (T2V, I2V, V2V, CONTROL)


def decoded_frames(latent_frames: int, batch: int, factor: int) -> int:
    """Frames CogVideoX's VAE decodes from latent_frames latents.

    It decodes `batch` latents at a time (the first chunk also takes the remainder), and
    each of its log2(factor) temporal upsamplers doubles a chunk of several frames, except
    that an odd chunk keeps its first frame single: 2 latents → 8 frames, 3 → 9, 13 → 49.
    """
    chunks = max(latent_frames // batch, 1)
    sizes = [latent_frames - batch * (chunks - 1)] + [batch] * (chunks - 1)
    total = 0
    for size in sizes:
        for _ in range(factor.bit_length() - 1):
            size = size if size == 1 else 2 * size - (size % 2)
        total += size
    return total


def _frames_ok(pipe, n: int) -> bool:
    # the pipeline makes (n - 1) // factor + 1 latents and returns what they decode to, so
    # only counts that survive that round trip come out as asked: 8k and 8k + 1 for CogVideoX
    factor = pipe.vae_scale_factor_temporal
    batch = getattr(pipe.vae, "num_latent_frames_batch_size", 2)
    return decoded_frames((n - 1) // factor + 1, batch, factor) == n


def _size_multiple(pipe) -> int:
    return pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size


def _fixed_size(pipe) -> tuple[int, int] | None:
    # CogVideoX-5b-I2V learned its position table for one latent grid only
    config = pipe.transformer.config
    if not config.use_learned_positional_embeddings:
        return None
    s = pipe.vae_scale_factor_spatial
    return config.sample_width * s, config.sample_height * s


def _route(backend: DiffusersBackend, request: Request) -> Routed:
    if request.keyframes or request.last_image is not None:
        raise InputError(
            "CogVideoX conditions on a first image only: keyframes and a last image are not supported"
        )
    # the transformer's text positions are sized for exactly this many tokens
    extra = {"max_sequence_length": backend.pipe.transformer.config.max_text_seq_length}
    if backend.class_name == CONTROL:
        return _control(backend, request, extra)
    if backend.class_name in (T2V, V2V):
        if request.first_image is not None:
            raise InputError(
                f"{backend.name} is a text-to-video CogVideoX checkpoint: it takes no first image"
            )
        return Routed(backend.derived(diffusers.CogVideoXPipeline), extra)
    if request.first_image is None:
        raise InputError(f"{backend.name} is an image-to-video CogVideoX checkpoint: it needs a first image")
    return Routed(backend.pipe, {"image": to_pil(request.first_image), **extra})


def _control(backend: DiffusersBackend, request: Request, extra: dict) -> Routed:
    # CogVideoX-Fun makes as many frames as its control clip has, at full strength: its
    # control latents are input channels, with no scale to weigh them by
    if request.control is None:
        raise InputError(
            f"{backend.name} is a CogVideoX-Fun control checkpoint: it needs a control clip (control)"
        )
    if request.first_image is not None:
        raise InputError(f"{backend.name} is a CogVideoX-Fun control checkpoint: it takes no first image")
    if request.control_scale != 1.0:
        raise InputError(
            f"CogVideoX-Fun control has no control scale; drop control_scale {request.control_scale:g} "
            "(it steers at 1)"
        )
    video = [to_pil(frame) for frame in request.control]
    return Routed(backend.pipe, {"control_video": video, "num_frames": None, **extra})


def _remix(backend: DiffusersBackend, run: Run, frames: np.ndarray, strength: float) -> np.ndarray:
    height, width = frames.shape[1:3]
    return run.call(
        backend.derived(diffusers.CogVideoXVideoToVideoPipeline),
        len(frames),
        video=[to_pil(f) for f in frames],
        strength=strength,
        height=height,
        width=width,
        max_sequence_length=backend.pipe.transformer.config.max_text_seq_length,
    )


# a Fun control folder makes text to video with its control clip, which it needs
_MODES = {T2V: {"t2v", "remix"}, V2V: {"t2v", "remix"}, I2V: {"i2v"}, CONTROL: {"t2v"}}


def _modes(class_name: str) -> frozenset[str]:
    return frozenset(_MODES.get(class_name, ()))


def _steering(class_name: str) -> frozenset[str]:
    # every CogVideoX pipeline loads diffusers LoRA files; only Fun control takes a control clip
    if class_name not in CLASSES:
        return frozenset()
    return frozenset({"lora", "control"} if class_name == CONTROL else {"lora"})


FAMILY = Family(
    name="CogVideoX",
    defaults={"frames": 49, "size": 480, "fps": 8.0, "steps": 50, "guidance": 6.0},
    frames_ok=_frames_ok,
    size_multiple=_size_multiple,
    route=_route,
    modes=_modes,
    remix=_remix,
    fixed_size=_fixed_size,
    steering=_steering,
)
