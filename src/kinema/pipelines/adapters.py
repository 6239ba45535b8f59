"""LoRA adapter files: where a name points, what a file holds, and the one record of an
adapter a pipeline is handed (name, path, scale, SHA-256, metadata, tensor shapes).

An adapter is a safetensors file with diffusers/peft key names
(`transformer.<module path>.lora_A.weight` / `.lora_B.weight`). kinema's own adapters
carry metadata {format: "kinema-lora/1", rank, alpha, base_dit_sha256, base_model}, and
those with pairs on the VAE decoder also {decoder_rank, decoder_alpha, base_vae_sha256};
diffusers-format files for the large models may carry none. `--lora X[:S]` names X in
KINEMA_HOME/loras first (X.safetensors), then as a path.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from kinema.errors import InputError
from kinema.state import kinema_home

FORMAT = "kinema-lora/1"
SUFFIX = ".safetensors"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def loras_dir(create: bool = False) -> Path:
    """KINEMA_HOME/loras: the adapters `--lora NAME` finds and `kinema lora train` writes."""
    folder = kinema_home(create=create) / "loras"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_name(name: str) -> str:
    """NAME if it can name an adapter file (letters, digits, '_', '.', '-'; at most 64)."""
    if not NAME.match(name) or name.endswith(SUFFIX):
        raise InputError(
            f"adapter name '{name}' is not valid: use 1-64 letters, digits, '_', '.' or '-' "
            "(no path, no extension)"
        )
    return name


@dataclass(frozen=True)
class AdapterFile:
    """One adapter as a pipeline is handed it: its name (the file's stem), the file, the
    scale it is mixed in at, the file's SHA-256, its metadata and its tensors' shapes by
    key."""

    name: str
    path: Path
    scale: float
    sha256: str
    metadata: dict = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def rank(self) -> int | None:
        """The rank (from the metadata, else the lora_A shapes), None if it has no lora_A."""
        if "rank" in self.metadata:
            return int(self.metadata["rank"])
        ranks = {shape[0] for key, shape in self.shapes.items() if key.endswith("lora_A.weight")}
        return ranks.pop() if len(ranks) == 1 else None

    def record(self) -> dict:
        """What a sidecar and a manifest record of it: name, scale, SHA-256."""
        return {"name": self.name, "scale": self.scale, "sha256": self.sha256}


def find_adapter(source: str) -> Path:
    """The file SOURCE names: KINEMA_HOME/loras/SOURCE.safetensors first, then a path."""
    text = str(source).strip()
    if not text:
        raise InputError("an adapter needs a name or a file")
    if NAME.match(text) and not text.endswith(SUFFIX):
        named = loras_dir() / f"{text}{SUFFIX}"
        if named.is_file():
            return named
    path = Path(text).expanduser()
    if path.is_file():
        return path
    name, _, tail = text.rpartition(":")
    try:
        scale = float(tail) if name else None
    except ValueError:
        scale = None
    if scale is not None:  # X:S with S out of range reads as a name; say what went wrong
        raise InputError(f"adapter {name}: scale {tail} is outside [-2, 2]")
    known = sorted(p.stem for p in loras_dir().glob(f"*{SUFFIX}")) if loras_dir().is_dir() else []
    have = f"adapters here: {', '.join(known)}" if known else "no adapters in KINEMA_HOME/loras yet"
    raise InputError(f"no adapter '{text}': not a name in {loras_dir()} nor a file ({have})")


def read_adapter(source: str, scale: float = 1.0) -> AdapterFile:
    """The AdapterFile SOURCE names, read without loading its tensors: metadata and shapes.

    Refuses (InputError, one line) a missing file, a file that is not safetensors and one
    without any LoRA pair (lora_A / lora_B keys)."""
    from safetensors import SafetensorError, safe_open

    if not -2 <= scale <= 2:
        raise InputError(f"adapter {source}: scale must be between -2 and 2, got {scale}")
    path = find_adapter(source)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"adapter '{path}' is not a readable safetensors file: {e}") from None
    if not any(k.endswith("lora_A.weight") for k in shapes) or not any(
        k.endswith("lora_B.weight") for k in shapes
    ):
        raise InputError(f"adapter '{path}' holds no LoRA weights (no lora_A / lora_B keys)")
    for key in ("rank", "alpha", "decoder_rank", "decoder_alpha"):
        if key in metadata:
            try:
                metadata[key] = float(metadata[key]) if key.endswith("alpha") else int(metadata[key])
            except ValueError:
                raise InputError(f"adapter '{path}': metadata {key} is not a number") from None
    if "card" in metadata:
        try:
            metadata["card"] = json.loads(metadata["card"])
        except ValueError:
            raise InputError(f"adapter '{path}': its card is not JSON") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return AdapterFile(path.stem, path, float(scale), digest, metadata, shapes)


def adapter_list() -> list[dict]:
    """The adapters in KINEMA_HOME/loras, by name: name, path, bytes, SHA-256, base model,
    rank, alpha and card (from each file's metadata; a file that cannot be read is listed
    with its error)."""
    folder = loras_dir()
    out = []
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        entry: dict = {"name": path.stem, "path": str(path), "bytes": path.stat().st_size}
        try:
            adapter = read_adapter(str(path))
        except InputError as e:
            entry["error"] = str(e)
        else:
            meta = adapter.metadata
            entry.update(
                sha256=adapter.sha256,
                base_model=meta.get("base_model"),
                base_dit_sha256=meta.get("base_dit_sha256"),
                rank=adapter.rank,
                alpha=meta.get("alpha"),
                card=meta.get("card"),
            )
        out.append(entry)
    return out
