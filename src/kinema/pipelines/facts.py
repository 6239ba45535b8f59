"""What kinema knows of a model folder without loading its weights: name, defaults, the
VAE's factors and the modes it serves, read from the folder's JSON.

The request layer checks a request against these facts, so the web refuses a bad request
before queueing it and the command line before loading anything.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

# Every mode a pipeline may serve (kinema's own model serves them all).
ALL_MODES = ("t2v", "i2v", "keyframes", "loop", "extend", "remix", "inpaint", "outpaint")
GENERATE_MODES = ("t2v", "i2v", "keyframes")
BUILTIN = "builtin"
MAX_SIDE = 1024  # the largest side kinema's own models make
FAST_ADAPTER = "fast/fast.safetensors"  # a kinema model's few-step adapter (--fast)


def builtin_folder() -> Path:
    """The built-in model's folder (package data)."""
    return Path(str(resources.files("kinema") / "weights" / BUILTIN))


@dataclass(frozen=True)
class ModelFacts:
    """A model folder's facts. `known` is False when the folder could not be read (then
    only the loaded pipeline can check); `own` is True for kinema's own models and False
    for a diffusers folder; `adapters` lists the adapter kinds the model loads ("lora":
    LoRA files; "fast": it ships a few-step adapter) and `controls` the steering inputs it
    has branches for ("control", "path", "reference"); `world` names the procedural world a model
    was trained on (model.json's "world", e.g. "shapes-v1": its prompts are read into
    that world's words before generating), None for any other model."""

    known: bool = False
    name: str | None = None
    own: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)
    spatial: int | None = None
    temporal: int = 4
    adapters: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()
    served: tuple[str, ...] | None = None  # a diffusers folder's modes, by its pipeline class
    world: str | None = None
    folder: Path | None = None

    @classmethod
    def read(cls, model: str | os.PathLike | None) -> ModelFacts:
        """The facts of MODEL (a folder; None or "builtin": the built-in model)."""
        if model is None or str(model) == BUILTIN:
            folder = builtin_folder()
        else:
            folder = Path(os.fspath(model))
        try:
            if not (folder / "model.json").is_file():
                if (folder / "model_index.json").is_file():
                    served, steering = _diffusers_modes(folder)
                    return cls(
                        known=True,
                        folder=folder,
                        name=folder.name,
                        own=False,
                        served=served,
                        adapters=("lora",) if "lora" in steering else (),
                        controls=tuple(sorted(steering - {"lora"})),
                    )
                return cls()
            meta = json.loads((folder / "model.json").read_text())
            vae = json.loads((folder / "vae" / "config.json").read_text())["model"]
            spatial = int(vae.get("patch", 4)) * 2 ** (len(vae.get("channels", (0, 0))) - 1)
            return cls(
                known=True,
                folder=folder,
                adapters=("lora", "fast") if (folder / FAST_ADAPTER).is_file() else ("lora",),
                name=str(meta.get("name", folder.name)),
                defaults=dict(meta.get("defaults") or {}),
                spatial=spatial,
                temporal=int(vae.get("temporal_factor", 4)),
                world=str(meta["world"]) if meta.get("world") else None,
                controls=steering_inputs(folder),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return cls()

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this model serves (all of them when unknown: the pipeline checks)."""
        if self.served is not None:
            return self.served
        return ALL_MODES if self.own or not self.known else GENERATE_MODES

    def default(self, name: str, fallback: int) -> int:
        return int(self.defaults.get(name, fallback))

    def latent_frames(self, frames: int) -> int:
        """Latent frames of the shortest 1+4k clip that covers FRAMES."""
        return 1 + math.ceil((frames - 1) / self.temporal)

    def summary(self) -> dict[str, Any]:
        """What the web pages are told: name, modes, defaults, the steering it has branches
        for and whether it has a few-step adapter (fast)."""
        return {
            "name": self.name,
            "modes": [m for m in self.modes if m != "loop"],
            "loop": "loop" in self.modes,
            "defaults": self.defaults,
            "size_multiple": self.spatial,
            "controls": list(self.controls),
            "fast": "fast" in self.adapters,
        }


def steering_inputs(folder: Path | None) -> tuple[str, ...]:
    """The steering inputs a kinema model folder has trained branches for: a control branch
    steers with a control clip or a path (one signal), a reference branch with an image."""
    if folder is None:
        return ()
    inputs: tuple[str, ...] = ()
    if (folder / "control" / "model.safetensors").is_file():
        inputs += ("control", "path")
    if (folder / "reference" / "model.safetensors").is_file():
        inputs += ("reference",)
    return inputs


def _diffusers_modes(folder: Path) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    """The modes and the steering (some of "lora", "control", "reference") of a diffusers
    folder's pipeline class (its family's, from model_index.json: no weights are read);
    modes None when kinema does not know the class."""
    from kinema.pipelines.backends import FAMILIES

    class_name = json.loads((folder / "model_index.json").read_text()).get("_class_name")
    family = FAMILIES.get(class_name)
    if family is None:
        return None, frozenset()
    return tuple(m for m in ALL_MODES if m in family.modes(class_name)), frozenset(
        family.steering(class_name)
    )
