"""Backends for large open models in diffusers format (Wan 2.1/2.2, LTX-Video, CogVideoX).

A diffusers model folder names its pipeline class in model_index.json (`_class_name`);
that name picks the family. Weights are read from disk only (local_files_only) and only
as safetensors, so loading a folder never downloads anything and never runs its code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kinema.errors import InputError
from kinema.pipelines.backends import cogvideox, ltx, wan
from kinema.pipelines.backends.base import DiffusersBackend, Family, quiet

FAMILIES: dict[str, Family] = {
    **dict.fromkeys(wan.CLASSES, wan.FAMILY),
    **dict.fromkeys(ltx.CLASSES, ltx.FAMILY),
    **dict.fromkeys(cogvideox.CLASSES, cogvideox.FAMILY),
}


def is_diffusers_folder(folder: Path) -> bool:
    return (folder / "model_index.json").is_file()


def detect(folder: Path) -> tuple[str, Family]:
    """The pipeline class a diffusers folder names, and its family; InputError if kinema
    has no backend for it."""
    try:
        class_name = json.loads((folder / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError) as e:
        raise InputError(f"'{folder}/model_index.json' is not readable JSON: {e}") from None
    if class_name not in FAMILIES:
        raise InputError(
            f"'{folder}' holds a diffusers {class_name or 'pipeline without _class_name'}; "
            f"kinema runs {', '.join(FAMILIES)}"
        )
    return class_name, FAMILIES[class_name]


def load_backend(
    folder: Path,
    device: str = "cpu",
    *,
    cpu_offload: bool = False,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    attention_slicing: bool = False,
    dtype: torch.dtype | None = None,
) -> DiffusersBackend:
    """The backend of a diffusers model folder on device.

    The memory savers trade speed for memory: cpu_offload keeps each component on the
    CPU until it runs (CUDA only), vae_tiling / vae_slicing decode in tiles / one clip at
    a time, attention_slicing computes attention in slices where the pipeline offers it.
    On CUDA the weights load in bfloat16, the precision these models ship and run in, on
    the CPU in float32; dtype chooses another.
    """
    import diffusers

    folder = Path(folder)
    class_name, family = detect(folder)
    if cpu_offload and not torch.cuda.is_available():
        raise InputError("cpu offload needs a CUDA device, and none is available")
    if dtype is None:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
    cls = getattr(diffusers, class_name, None)
    if cls is None:
        raise InputError(f"this diffusers ({diffusers.__version__}) has no {class_name}; upgrade diffusers")
    try:
        with quiet():
            pipe = cls.from_pretrained(folder, dtype=dtype, use_safetensors=True, local_files_only=True)
    except (OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"'{folder}' could not be loaded as {class_name}: {first_line}") from None
    pipe.set_progress_bar_config(disable=True)  # kinema draws its own progress bar
    if cpu_offload:
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(device)
    if vae_tiling:
        pipe.vae.enable_tiling()
    if vae_slicing:
        pipe.vae.enable_slicing()
    if attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    return DiffusersBackend(pipe, family, folder)
