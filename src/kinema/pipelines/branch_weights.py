"""A trained branch's files beside a model: <kind>/model.safetensors (fp16) and
<kind>/config.json (the branch's shape, the DiT it was trained on, the run's card), for
the control branch (control/) and the reference branch (reference/).

A branch is bound to the DiT's weights: it steers that DiT's tokens (the control branch
runs copies of its blocks), so a branch trained on another DiT is refused, never run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from kinema.errors import InputError
from kinema.io.atomic import publishable
from kinema.models.control import ControlBranch, ControlConfig
from kinema.models.dit import DiT
from kinema.models.reference import ReferenceBranch, ReferenceConfig
from kinema.pipelines.lora import dit_sha256

KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "control": (ControlBranch, ControlConfig),
    "reference": (ReferenceBranch, ReferenceConfig),
}


def load_branch(folder: Path, dit: DiT) -> nn.Module:
    """The branch in FOLDER (control/ or reference/ of a model folder), built for DIT and
    checked against its model folder's DiT hash."""
    from safetensors.torch import load_file

    config_path = folder / "config.json"
    try:
        meta = json.loads(config_path.read_text())
        kind = meta["kind"]
        cls, config_cls = KINDS[kind]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"the branch config '{config_path}' is not readable: {e}") from None
    bound = meta.get("base_dit_sha256")
    actual = dit_sha256(folder.parent)
    if bound != actual:
        raise InputError(
            f"the {kind} branch in '{folder}' was trained on another DiT "
            f"({str(bound)[:12]}…, this one is {actual[:12]}…): train it again on this model"
        )
    branch = cls(config_cls(**meta["model"]), dit.config)
    weights = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    missing, unexpected = branch.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise InputError(
            f"the {kind} branch in '{folder}' does not fit this DiT ({(missing or unexpected)[0]})"
        )
    return branch


def save_branch(folder: Path, branch: nn.Module, kind: str, card: dict) -> None:
    """Write BRANCH (fp16) and its config with CARD into FOLDER, beside a model's DiT."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().to(torch.float16).contiguous() for k, v in branch.state_dict().items()}
    save_file(weights, str(folder / "model.tmp"))
    publishable(folder / "model.tmp")  # package data: readable by whoever installs it
    config = {
        "kind": kind,
        "model": dataclasses.asdict(branch.config),
        "base_dit_sha256": dit_sha256(folder.parent),
        **card,
    }
    (folder / "config.tmp").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "model.tmp").replace(folder / "model.safetensors")
    (folder / "config.tmp").replace(folder / "config.json")
