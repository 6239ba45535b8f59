"""A random LoRA adapter that fits a kinema model's DiT (keys, shapes and DiT hash), for
tests that need an adapter without training one."""

import torch
from safetensors.torch import save_file

from kinema.pipelines.adapters import FORMAT
from kinema.pipelines.lora import PREFIX, dit_sha256, dit_shapes


def random_adapter(model_folder, path, rank=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for module, (out_features, in_features) in dit_shapes(model_folder).items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = torch.randn(rank, in_features, generator=g).half()
        tensors[f"{PREFIX}{module}.lora_B.weight"] = (
            0.05 * torch.randn(out_features, rank, generator=g)
        ).half()
    meta = {
        "format": FORMAT,
        "rank": str(rank),
        "alpha": str(rank),
        "base_dit_sha256": dit_sha256(model_folder),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={**meta, "base_model": "test"})
    return path
