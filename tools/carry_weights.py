"""Carry a checkpoint to a GPU machine in half its fp16 size, to warm-start a run there.

The device tool sends at most 64 MiB, and the built-in model's fp16 DiT (24 MB) beside
the packed text encoder (45 MB) does not fit. A warm start needs no exact weights: every
matrix is stored as int8 with one fp32 scale per output row (at most half a step of
1/127 of the row's largest value off), vectors stay fp16. `unpack` writes an fp32
checkpoint folder that `kinema train --init-from` (or `tools/gpu_train.py --init`) reads;
training goes on from there and the rounding is trained away within its first steps.

    python tools/carry_weights.py pack src/kinema/weights/builtin/dit .devcarry/dit
    python tools/carry_weights.py unpack .devcarry/dit /tmp/dit-init   # there
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PACKED = "int8.safetensors"


def pack(source: Path, dest: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {}
    for name, value in load_file(str(source / "model.safetensors")).items():
        value = value.float()
        if value.dim() >= 2:
            rows = value.reshape(value.shape[0], -1)
            scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127
            tensors[f"{name}.q"] = torch.round(rows / scale[:, None]).to(torch.int8).reshape(value.shape)
            tensors[f"{name}.scale"] = scale
        else:
            tensors[f"{name}.half"] = value.half()
    dest.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dest / PACKED))
    shutil.copy(source / "config.json", dest / "config.json")
    print(f"packed {source} into {dest} ({(dest / PACKED).stat().st_size / 2**20:.1f} MB)")


def unpack(pack_dir: Path, dest: Path) -> None:
    from safetensors.torch import load_file, save_file

    packed = load_file(str(pack_dir / PACKED))
    weights = {}
    for key, value in packed.items():
        name, kind = key.rsplit(".", 1)
        if kind == "q":
            scale = packed[f"{name}.scale"]
            weights[name] = value.float() * scale.reshape(-1, *[1] * (value.dim() - 1))
        elif kind == "half":
            weights[name] = value.float()
    dest.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(dest / "model.safetensors"))
    shutil.copy(pack_dir / "config.json", dest / "config.json")
    print(f"unpacked {len(weights)} tensors into {dest}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in ("pack", "unpack"):
        (pack if sys.argv[1] == "pack" else unpack)(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
