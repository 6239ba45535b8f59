"""LoRA on kinema's own models: which layers an adapter may touch, whether a file fits a
model (keys, shapes, the weights it was trained on), and mixing adapters into the
weights for the calls of one request.

An adapter adds scale · (alpha / rank) · B·A to a layer's weight: the DiT's linear layers
(`transformer.<module path>.lora_A.weight`, rank × in, and `.lora_B.weight`, out × rank)
and, in adapters that also teach the codec (a colour the VAE never learned), the VAE
decoder's convolutions (`vae.<module path>.lora_A.weight`, rank × in × kt × kh × kw, and
`.lora_B.weight`, out × rank × 1 × 1 × 1: peft's convolution pairs). Mixing merges the sum
over the adapters into the weights once (no cost per sampler step or decoded frame) and
puts the original tensors back on exit, bit for bit: the next request is the base
model's. Training (kinema.train.lora) goes through peft, whose key layout the files keep.
An adapter is bound to the DiT it was trained on (base_dit_sha256); one with decoder
pairs also to the VAE (base_vae_sha256).
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
VAE_PREFIX = "vae."
# Inside each block: the attention and cross-attention projections and the MLP's two layers.
BLOCK_TARGETS = ("attn.qkv", "attn.out", "cross.q", "cross.kv", "cross.out", "mlp.0", "mlp.2")
# Outside the blocks: the projections of the text into the model's width (a new word's
# meaning enters there).
TEXT_TARGETS = ("text_embed.1", "text_embed.3", "text_pool")
# The VAE's decoder: every convolution under its dec_ modules (the encoder stays as it is,
# so the latents the DiT learned, and an adapter's DiT pairs were trained on, stay valid).
DECODER = "dec_"


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


def _header_shapes(file: Path, keep) -> dict[str, tuple[int, ...]]:
    """The shapes of a safetensors file's `<module>.weight` tensors for which
    keep(module, shape) holds, by module path, from its header alone (no tensor read, no
    model built: building one even on the meta device costs a cold start 1.7 s of torch
    imports)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    with safe_open(str(file), framework="np") as f:
        for key in f.keys():
            module, shape = key.removesuffix(".weight"), tuple(f.get_slice(key).get_shape())
            if key.endswith(".weight") and keep(module, shape):
                shapes[module] = shape
    return shapes


def _weights_sha256(folder: Path, part: str) -> str:
    """SHA-256 of a kinema model folder's PART weights ("dit", "vae"), kept in KINEMA_HOME
    until the file changes."""
    from kinema.pipelines.weights_hash import cached_hash, sha256_files

    files = [folder / part / "model.safetensors"]
    return cached_hash(files, lambda: sha256_files(files))


def dit_shapes(folder: Path) -> dict[str, tuple[int, int]]:
    """linear_shapes of the DiT in a kinema model folder, from its weights file's header."""
    return _header_shapes(
        folder / "dit" / "model.safetensors", lambda module, shape: is_target(module) and len(shape) == 2
    )


def dit_sha256(folder: Path) -> str:
    """SHA-256 of a kinema model folder's DiT weights: what an adapter is bound to."""
    return _weights_sha256(folder, "dit")


def decoder_target_names(vae: nn.Module) -> list[str]:
    """Module paths of the VAE decoder's convolutions an adapter may change (peft's
    `target_modules` for a decoder pair)."""
    return [name for name, m in vae.named_modules() if isinstance(m, nn.Conv3d) and name.startswith(DECODER)]


def vae_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """The weight shapes of the decoder convolutions of the VAE in a kinema model folder,
    by module path, from its weights file's header."""
    return _header_shapes(
        folder / "vae" / "model.safetensors",
        lambda module, shape: module.startswith(DECODER) and len(shape) == 5,
    )


def vae_sha256(folder: Path) -> str:
    """SHA-256 of a kinema model folder's VAE weights: what an adapter's decoder pairs are
    bound to."""
    return _weights_sha256(folder, "vae")


def has_decoder_pairs(adapter: AdapterFile) -> bool:
    """True when ADAPTER also changes the VAE decoder (it teaches the codec)."""
    return any(key.startswith(VAE_PREFIX) for key in adapter.shapes)


def modules_of(adapter: AdapterFile) -> dict[str, int]:
    """The layers an adapter changes, by prefixed module path (`transformer.…` or
    `vae.…`), each with its rank."""
    modules: dict[str, int] = {}
    for key, shape in adapter.shapes.items():
        if key.endswith(".lora_A.weight"):
            modules[key[: -len(".lora_A.weight")]] = shape[0]
    return modules


def _pair_shapes(weight: tuple[int, ...], rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (lora_A, lora_B) shapes of a rank-RANK pair on a weight of shape WEIGHT: a
    linear layer's (rank × in, out × rank), a convolution's (rank × in × kernel,
    out × rank × 1…)."""
    if len(weight) == 2:
        return (rank, weight[1]), (weight[0], rank)
    return (rank, *weight[1:]), (weight[0], rank, *(1,) * (len(weight) - 2))


def check_fits(
    adapter: AdapterFile, shapes: dict[str, tuple[int, ...]], hashes: dict[str, str], model: str
) -> None:
    """Refuse (InputError, one line) an adapter that does not fit a model: not a kinema
    adapter, keys that name no layer an adapter may change or miss their pair, shapes
    that differ, or trained on another DiT (base_dit_sha256) or, for decoder pairs,
    another VAE (base_vae_sha256). SHAPES are the model's target weights by prefixed
    module path; HASHES its "base_dit_sha256" and (when the adapter has decoder pairs)
    "base_vae_sha256"."""
    name = adapter.name
    if adapter.metadata.get("format") != FORMAT:
        found = adapter.metadata.get("format") or "no kinema-lora/1 metadata"
        raise InputError(
            f"adapter '{name}' is not a kinema adapter ({found}): it was made for another model, not {model}"
        )
    strange = [
        k
        for k in adapter.shapes
        if not k.startswith((PREFIX, VAE_PREFIX)) or not k.endswith((".lora_A.weight", ".lora_B.weight"))
    ]
    modules = modules_of(adapter)
    unknown = [m for m in modules if m not in shapes]
    if strange or unknown:
        first = (strange or unknown)[0]
        raise InputError(
            f"adapter '{name}' does not fit {model}: {len(strange) + len(unknown)} keys name no layer "
            f"an adapter may change (first: {first})"
        )
    for module, rank in modules.items():
        a = adapter.shapes[f"{module}.lora_A.weight"]
        b = adapter.shapes.get(f"{module}.lora_B.weight")
        if b is None:
            raise InputError(f"adapter '{name}': {module} has lora_A but no lora_B")
        if (a, b) != _pair_shapes(shapes[module], rank):
            size = "x".join(map(str, shapes[module][:2]))
            raise InputError(
                f"adapter '{name}' does not fit {model}: {module.split('.', 1)[1]} is {size}, "
                f"the adapter's pair is {b[0]}x{b[1]} · {a[0]}x{a[1]}"
            )
    pairs_b = {k[: -len(".lora_B.weight")] for k in adapter.shapes if k.endswith(".lora_B.weight")}
    lonely = sorted(pairs_b - set(modules))
    if lonely:
        raise InputError(f"adapter '{name}': {lonely[0]} has lora_B but no lora_A")
    trained_on = adapter.metadata.get("base_dit_sha256")
    if trained_on != hashes["base_dit_sha256"]:
        raise InputError(
            f"adapter '{name}' was trained on another DiT ({str(trained_on)[:12]}…; "
            f"{model}'s is {hashes['base_dit_sha256'][:12]}…): train it again on this model"
        )
    if has_decoder_pairs(adapter):
        decoded_by = adapter.metadata.get("base_vae_sha256")
        if decoded_by != hashes.get("base_vae_sha256"):
            raise InputError(
                f"adapter '{name}' carries decoder pairs for another VAE ({str(decoded_by)[:12]}…; "
                f"{model}'s is {str(hashes.get('base_vae_sha256'))[:12]}…): train it again on this model"
            )


def check_fits_folder(adapter: AdapterFile, folder: Path, model: str) -> None:
    """check_fits against the DiT (and, for decoder pairs, the VAE) of a kinema model folder."""
    shapes: dict[str, tuple[int, ...]] = {f"{PREFIX}{m}": s for m, s in dit_shapes(folder).items()}
    hashes = {"base_dit_sha256": dit_sha256(folder)}
    if has_decoder_pairs(adapter):
        shapes.update({f"{VAE_PREFIX}{m}": s for m, s in vae_shapes(folder).items()})
        hashes["base_vae_sha256"] = vae_sha256(folder)
    check_fits(adapter, shapes, hashes, model)


def deltas(adapters: Sequence[AdapterFile]) -> dict[str, torch.Tensor]:
    """Σ scale · (alpha / rank) · B·A per prefixed module path over ADAPTERS, in fp32: a
    linear layer's (out × in), a convolution's (out × in × kernel)."""
    from safetensors.torch import load_file

    total: dict[str, torch.Tensor] = {}
    for adapter in adapters:
        tensors = load_file(str(adapter.path))
        for module, rank in modules_of(adapter).items():
            alpha = float(adapter.metadata.get("alpha", rank))
            if module.startswith(VAE_PREFIX):
                alpha = float(adapter.metadata.get("decoder_alpha", rank))
            a = tensors[f"{module}.lora_A.weight"].float()
            b = tensors[f"{module}.lora_B.weight"].float()
            delta = (adapter.scale * alpha / rank) * (b.flatten(1) @ a.flatten(1)).view(
                b.shape[0], *a.shape[1:]
            )
            total[module] = total[module] + delta if module in total else delta
    return total


def _layers(dit: nn.Module, vae: nn.Module | None) -> dict[str, nn.Module]:
    """The layers adapters may change, by prefixed module path."""
    modules = dict(dit.named_modules())
    layers = {f"{PREFIX}{name}": modules[name] for name in target_names(dit)}
    if vae is not None:
        modules = dict(vae.named_modules())
        layers.update({f"{VAE_PREFIX}{name}": modules[name] for name in decoder_target_names(vae)})
    return layers


@contextmanager
def mixed_in(
    dit: nn.Module, adapters: Sequence[AdapterFile], vae: nn.Module | None = None
) -> Iterator[nn.Module]:
    """DIT (and VAE's decoder, for adapters with decoder pairs) with ADAPTERS merged into
    their weights by their scales, for the block's duration; the original weights are
    restored exactly on exit (also after an error)."""
    layers = _layers(dit, vae)
    for adapter in adapters:
        for module in modules_of(adapter):
            if module not in layers:
                what = "this VAE's decoder" if module.startswith(VAE_PREFIX) else "this DiT"
                raise InputError(
                    f"adapter '{adapter.name}' changes {module.split('.', 1)[1]}, which {what} lacks"
                )
    kept: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for module, delta in deltas(adapters).items():
                weight = layers[module].weight
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
                layers[module].weight.copy_(original)
