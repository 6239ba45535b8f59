"""LoRA adapters on the diffusers backends: checked against the transformer, loaded by
diffusers (load_lora_weights, set_adapters) for the calls inside `adapted`, unloaded after.

diffusers loads a LoRA whose keys name no module of the transformer with a warning and
nothing else, and one whose shapes differ fails deep inside peft; so each file's keys and
shapes are held to the transformer's modules first, and a file made for another family,
another model size or kinema's own DiT is refused with one line before any is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from kinema.errors import InputError
from kinema.pipelines.adapters import FORMAT, AdapterFile
from kinema.pipelines.backends.base import quiet

if TYPE_CHECKING:
    from kinema.pipelines.backends.base import DiffusersBackend

PREFIX = "transformer."  # diffusers' name for the denoiser in a pipeline's LoRA files
# the LoRA pair's parts: which dimension of the module's weight each must match
PARTS = {".lora_A.weight": "A", ".lora_B.weight": "B", ".lora_B.bias": "bias"}


def diffusers_shapes(backend: DiffusersBackend, adapter: AdapterFile) -> dict[str, tuple[int, ...]]:
    """The adapter's tensors' shapes by key as diffusers will load them: the file's own
    when its keys are in diffusers' layout, else after diffusers converts them (the
    original Wan and LTX-Video trainers' layouts), which reads the tensors."""
    if all(key.startswith(PREFIX) for key in adapter.shapes):
        return dict(adapter.shapes)
    try:
        with quiet():
            state = type(backend.pipe).lora_state_dict(str(adapter.path))
    except (ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"adapter {adapter.name} could not be read as a diffusers LoRA: {first}") from None
    state = state[0] if isinstance(state, tuple) else state
    return {key: tuple(value.shape) for key, value in state.items()}


def check_fit(backend: DiffusersBackend, adapter: AdapterFile) -> None:
    """Refuse (InputError, one line) an adapter that does not fit the backend's transformer:
    kinema's own format, keys that name no module of it, or shapes that differ."""
    what = f"the {backend.family.name} transformer of {backend.name}"
    if adapter.metadata.get("format") == FORMAT:
        raise InputError(
            f"adapter {adapter.name} is made for kinema's own DiT ({FORMAT}), not {what}; "
            "it takes diffusers-format LoRA files"
        )
    modules = dict(backend.pipe.transformer.named_modules())
    unplaced: list[str] = []
    ranks: dict[str, dict[str, int]] = {}
    for key, shape in sorted(diffusers_shapes(backend, adapter).items()):
        part = next((p for p in PARTS if key.endswith(p)), None)
        if part is None:
            if key.endswith(".alpha"):  # a pair's scale, read by diffusers with the pair
                continue
            unplaced.append(key)
            continue
        path = key[len(PREFIX) : -len(part)] if key.startswith(PREFIX) else None
        weight = getattr(modules.get(path), "weight", None) if path else None
        if weight is None:
            unplaced.append(key)
            continue
        role = PARTS[part]
        # lora_A is (rank, in, *kernel), lora_B (out, rank, *ones), the bias (out,)
        fits = {
            "A": len(shape) == weight.dim() and shape[1:2] == tuple(weight.shape[1:2]),
            "B": len(shape) == weight.dim() and shape[0] == weight.shape[0],
            "bias": shape == tuple(weight.shape[:1]),
        }[role]
        if not fits:
            raise InputError(
                f"adapter {adapter.name} does not fit {what}: shape mismatch at {key} "
                f"({'x'.join(map(str, shape))} against the module's weight {'x'.join(map(str, weight.shape))})"
            )
        if role != "bias":
            ranks.setdefault(path, {})[role] = shape[0] if role == "A" else shape[1]
    if unplaced:
        raise InputError(
            f"adapter {adapter.name} does not fit {what}: {len(unplaced)} keys name no module "
            f"(first: {unplaced[0]})"
        )
    for path, pair in ranks.items():
        if set(pair) != {"A", "B"} or pair["A"] != pair["B"]:
            raise InputError(
                f"adapter {adapter.name} does not fit {what}: {PREFIX}{path} has no whole lora_A/lora_B pair"
            )
    if not ranks:
        raise InputError(f"adapter {adapter.name} holds no LoRA pair for {what}")


@contextmanager
def adapted(backend: DiffusersBackend, adapters: tuple[AdapterFile, ...]) -> Iterator[None]:
    """The backend with the adapters mixed in at their scales inside the block; on exit
    every LoRA layer is unloaded, so the model is the base model again, bit for bit.

    Every file is checked (check_fit) before the first is loaded."""
    from diffusers.utils import USE_PEFT_BACKEND

    adapters = tuple(a for a in adapters if a.scale != 0)  # scale 0 is the base model
    if not adapters:
        yield
        return
    if not USE_PEFT_BACKEND:
        raise InputError("LoRA adapters on diffusers models need the peft package (pip install peft)")
    for adapter in adapters:
        check_fit(backend, adapter)
    pipe = backend.pipe
    names = [f"kinema_{i}" for i in range(len(adapters))]  # peft names may not hold '.'
    try:
        try:
            with quiet():
                for adapter, name in zip(adapters, names, strict=True):
                    pipe.load_lora_weights(str(adapter.path), adapter_name=name)
                pipe.set_adapters(names, [a.scale for a in adapters])
        except (ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"adapter {adapter.name} could not be loaded: {first}") from None
        yield
    finally:
        with quiet():
            pipe.unload_lora_weights()
