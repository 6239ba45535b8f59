"""Finding and loading a model: the built-in one, or a model folder.

A kinema model folder holds model.json (name, defaults, text encoder), vae/ and dit/
(each config.json + model.safetensors) and README.md (the model card). Only safetensors
are read: a checkpoint can never run code when loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from importlib import resources
from pathlib import Path

import torch

from kinema.errors import InputError
from kinema.models.checkpoint import build_with_weights, load_config, load_weights
from kinema.models.dit import DiT, DiTConfig
from kinema.models.vae import VAEConfig, VideoVAE
from kinema.pipelines.protocol import Pipeline
from kinema.pipelines.t2v import TextToVideo
from kinema.pipelines.weights_hash import cached_hash, sha256_files

BUILTIN = "builtin"
# memory savers of diffusers pipelines, by the keyword load_backend takes
SAVERS = ("cpu_offload", "vae_tiling", "vae_slicing", "attention_slicing")
_ENCODERS: dict[str, object] = {}  # one text encoder per name, shared by every pipeline


def builtin_folder() -> Path:
    """Where the built-in model's folder is installed (package data)."""
    return Path(str(resources.files("kinema") / "weights" / BUILTIN))


def resolve_model(name_or_dir: str | os.PathLike | None) -> Path:
    """The folder of a model: the built-in one by default, else a path.

    Refuses (InputError) a path that is not a folder, or not a kinema or diffusers model
    folder, and the built-in model when its weights are not installed."""
    if name_or_dir is None or str(name_or_dir) == BUILTIN:
        folder = builtin_folder()
        if not (folder / "model.json").is_file():
            raise InputError(
                "the built-in model's weights are not installed yet (train them with "
                "`kinema train --preset vae` then `--preset dit`, or load a model folder)"
            )
        return folder
    folder = Path(os.fspath(name_or_dir))
    if not folder.is_dir():
        raise InputError(f"model '{folder}' is not a folder (or a known model name: {BUILTIN})")
    if not (folder / "model.json").is_file() and not (folder / "model_index.json").is_file():
        raise InputError(
            f"'{folder}' is not a kinema model folder: model.json is missing (and no model_index.json "
            "makes it a diffusers one)"
        )
    return folder


def model_hash(folder: Path) -> str:
    """SHA-256 over the model's weight files (the VAE's bytes, then the DiT's), as the
    manifest names the model; kept in KINEMA_HOME until a file changes (weights_hash)."""
    files = [folder / part / "model.safetensors" for part in ("vae", "dit")]
    return cached_hash(files, lambda: sha256_files(files))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"'{path}' is not readable JSON: {e}") from None


def _text_encoder(spec: str, folder: Path, device: str):
    key = f"{spec}@{folder}@{device}" if spec != "minilm" else f"minilm@{device}"
    if key not in _ENCODERS:
        from kinema.models.text import HFTextEncoder, MiniLMTextEncoder

        _ENCODERS[key] = (
            MiniLMTextEncoder(device=device)
            if spec == "minilm"
            else HFTextEncoder(folder / spec, device=device)
        )
    return _ENCODERS[key]


def load(
    name_or_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    *,
    savers: Collection[str] = (),
    int8: bool = False,
) -> Pipeline:
    """The pipeline of a kinema model folder (the built-in model by default), or the
    backend of a diffusers model folder (one with model_index.json and no model.json).

    `savers` names memory savers from SAVERS; they are diffusers features and refused for
    kinema's own models. `int8` quantises kinema's DiT dynamically for CPU inference and
    is refused for diffusers models. Both kinds satisfy kinema.pipelines.protocol.Pipeline.
    """
    if device not in ("cpu", "cuda"):
        raise InputError(f"device must be cpu or cuda, got {device}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda asked for, but no CUDA device is available")
    unknown = sorted(set(savers) - set(SAVERS))
    if unknown:
        raise InputError(f"unknown memory saver {unknown[0]}; kinema knows {', '.join(SAVERS)}")
    folder = resolve_model(name_or_dir)
    if not (folder / "model.json").is_file():
        from kinema.pipelines.backends import load_backend

        if int8:
            raise InputError(
                f"int8 applies to kinema's own models; '{folder}' is a diffusers model "
                f"(its memory savers are {', '.join(SAVERS)})"
            )
        return load_backend(folder, device, **dict.fromkeys(savers, True))
    if savers:
        raise InputError(
            f"memory saver {sorted(savers)[0]} applies to diffusers models; '{folder}' is a kinema "
            "model (int8 saves memory on it)"
        )
    meta = _read_json(folder / "model.json")
    vae_config = VAEConfig.from_dict(load_config(folder / "vae")["model"])
    vae = build_with_weights(lambda: VideoVAE(vae_config), load_weights(folder / "vae", widen=False))
    dit_config = DiTConfig(**load_config(folder / "dit")["model"])
    dit = build_with_weights(lambda: DiT(dit_config), load_weights(folder / "dit", widen=False))
    if int8:
        from kinema.pipelines.quantize import quantize_int8

        dit = quantize_int8(dit.eval(), device)
    encoder = _text_encoder(meta.get("text_encoder", "minilm"), folder, device)
    return TextToVideo(
        vae.to(device),
        dit.to(device),
        encoder,
        name=meta.get("name", folder.name),
        model_hash=model_hash(folder),
        defaults=meta.get("defaults"),
        folder=folder,
    )
