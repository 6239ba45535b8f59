"""LoRA on kinema's own DiT: which layers an adapter may touch, whether a file fits a
model (keys, shapes, the DiT it was trained on), and mixing adapters into the weights
for the calls of one request.

An adapter adds scale · (alpha / rank) · B·A to a linear layer's weight. Mixing merges
the sum over the adapters into the weights once (no cost per sampler step) and puts the
original tensors back on exit, bit for bit: the next request is the base model's.
Training (kinema.train.lora) goes through peft, whose key layout the files keep:
`transformer.<module path>.lora_A.weight` (rank × in) and `.lora_B.weight` (out × rank).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from kinema.errors import InputError
from kinema.pipelines.adapters import FORMAT, AdapterFile

PREFIX = "transformer."
# Inside each block: the attention and cross-attention projections and the MLP's two layers.
BLOCK_TARGETS = ("attn.qkv", "attn.out", "cross.q", "cross.kv", "cross.out", "mlp.0", "mlp.2")
# Outside the blocks: the projections of the text into the model's width (a new word's
# meaning enters there).
TEXT_TARGETS = ("text_embed.1", "text_embed.3", "text_pool")


def is_target(name: str) -> bool:
    """True for the DiT's linear layers an adapter may change (by module path)."""
    if name in TEXT_TARGETS:
        return True
    parts = name.split(".")
    return len(parts) >= 3 and parts[0] == "blocks" and ".".join(parts[2:]) in BLOCK_TARGETS


def target_names(dit: nn.Module) -> list[str]:
    """Module paths of the DiT's linear layers an adapter may change, in model order
    (peft's `target_modules`)."""
    return [name for name, m in dit.named_modules() if isinstance(m, nn.Linear) and is_target(name)]


def linear_shapes(dit: nn.Module) -> dict[str, tuple[int, int]]:
    """(out, in) of every target linear layer, by module path."""
    modules = dict(dit.named_modules())
    return {name: tuple(modules[name].weight.shape) for name in target_names(dit)}


def dit_shapes(folder: Path) -> dict[str, tuple[int, int]]:
    """linear_shapes of the DiT in a kinema model folder, from its weights file's header
    (no tensor read, no model built: building one even on the meta device costs a cold
    start 1.7 s of torch imports)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, int]] = {}
    with safe_open(str(folder / "dit" / "model.safetensors"), framework="np") as f:
        for key in f.keys():
            module = key.removesuffix(".weight")
            if key.endswith(".weight") and is_target(module):
                shape = tuple(f.get_slice(key).get_shape())
                if len(shape) == 2:
                    shapes[module] = shape
    return shapes


def dit_sha256(folder: Path) -> str:
    """SHA-256 of a kinema model folder's DiT weights (kept in KINEMA_HOME until the file
    changes): what an adapter is bound to."""
    from kinema.pipelines.weights_hash import cached_hash, sha256_files

    files = [folder / "dit" / "model.safetensors"]
    return cached_hash(files, lambda: sha256_files(files))


def modules_of(adapter: AdapterFile) -> dict[str, int]:
    """The module paths an adapter changes, each with its rank."""
    modules: dict[str, int] = {}
    for key, shape in adapter.shapes.items():
        if key.endswith(".lora_A.weight"):
            modules[key[: -len(".lora_A.weight")].removeprefix(PREFIX)] = shape[0]
    return modules


def check_fits(adapter: AdapterFile, shapes: dict[str, tuple[int, int]], dit_hash: str, model: str) -> None:
    """Refuse (InputError, one line) an adapter that does not fit a DiT: not a kinema
    adapter, keys that name no target layer or miss their pair, shapes that differ, or
    trained on another DiT (its base_dit_sha256)."""
    name = adapter.name
    if adapter.metadata.get("format") != FORMAT:
        found = adapter.metadata.get("format") or "no kinema-lora/1 metadata"
        raise InputError(
            f"adapter '{name}' is not a kinema adapter ({found}): it was made for another model, not {model}"
        )
    strange = [
        k
        for k in adapter.shapes
        if not k.startswith(PREFIX) or not k.endswith((".lora_A.weight", ".lora_B.weight"))
    ]
    modules = modules_of(adapter)
    unknown = [m for m in modules if m not in shapes]
    if strange or unknown:
        first = (strange or [f"{PREFIX}{unknown[0]}"])[0]
        raise InputError(
            f"adapter '{name}' does not fit {model}: {len(strange) + len(unknown)} keys name no layer "
            f"an adapter may change (first: {first})"
        )
    for module, rank in modules.items():
        out_features, in_features = shapes[module]
        a = adapter.shapes[f"{PREFIX}{module}.lora_A.weight"]
        b = adapter.shapes.get(f"{PREFIX}{module}.lora_B.weight")
        if b is None:
            raise InputError(f"adapter '{name}': {module} has lora_A but no lora_B")
        if a != (rank, in_features) or b != (out_features, rank):
            raise InputError(
                f"adapter '{name}' does not fit {model}: {module} is {out_features}x{in_features}, "
                f"the adapter's pair is {b[0]}x{b[1]} · {a[0]}x{a[1]}"
            )
    pairs_b = {k[: -len(".lora_B.weight")] for k in adapter.shapes if k.endswith(".lora_B.weight")}
    lonely = sorted(pairs_b - {f"{PREFIX}{m}" for m in modules})
    if lonely:
        raise InputError(f"adapter '{name}': {lonely[0]} has lora_B but no lora_A")
    trained_on = adapter.metadata.get("base_dit_sha256")
    if trained_on != dit_hash:
        raise InputError(
            f"adapter '{name}' was trained on another DiT ({str(trained_on)[:12]}…; "
            f"{model}'s is {dit_hash[:12]}…): train it again on this model"
        )


def check_fits_folder(adapter: AdapterFile, folder: Path, model: str) -> None:
    """check_fits against the DiT of a kinema model folder."""
    check_fits(adapter, dit_shapes(folder), dit_sha256(folder), model)


def deltas(adapters: Sequence[AdapterFile]) -> dict[str, torch.Tensor]:
    """Σ scale · (alpha / rank) · B·A per module path over ADAPTERS, in fp32."""
    from safetensors.torch import load_file

    total: dict[str, torch.Tensor] = {}
    for adapter in adapters:
        tensors = load_file(str(adapter.path))
        for module, rank in modules_of(adapter).items():
            alpha = float(adapter.metadata.get("alpha", rank))
            a = tensors[f"{PREFIX}{module}.lora_A.weight"].float()
            b = tensors[f"{PREFIX}{module}.lora_B.weight"].float()
            delta = (adapter.scale * alpha / rank) * (b @ a)
            total[module] = total[module] + delta if module in total else delta
    return total


@contextmanager
def mixed_in(dit: nn.Module, adapters: Sequence[AdapterFile]) -> Iterator[nn.Module]:
    """DIT with ADAPTERS merged into its weights by their scales, for the block's duration;
    the original weights are restored exactly on exit (also after an error)."""
    shapes = linear_shapes(dit)
    for adapter in adapters:
        for module in modules_of(adapter):
            if module not in shapes:
                raise InputError(f"adapter '{adapter.name}' changes {module}, which this DiT lacks")
    modules = dict(dit.named_modules())
    kept: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for module, delta in deltas(adapters).items():
                weight = modules[module].weight
                if tuple(delta.shape) != tuple(weight.shape):
                    raise InputError(
                        f"adapter delta for {module} is {tuple(delta.shape)}, not {tuple(weight.shape)}"
                    )
                kept[module] = weight.detach().clone()
                weight.add_(delta.to(weight.dtype, copy=False).to(weight.device))
        yield dit
    finally:
        with torch.no_grad():
            for module, original in kept.items():
                modules[module].weight.copy_(original)
