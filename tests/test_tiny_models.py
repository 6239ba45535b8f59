"""tools/tiny_models.py: every folder it names builds offline and loads through the same
code as real weights; --list prints the names."""

import subprocess
import sys
from pathlib import Path

import pytest

from kinema.pipelines.loading import load
from tests.pipelines.backends import tiny_models

TOOL = Path(__file__).resolve().parents[1] / "tools" / "tiny_models.py"
NAMES = [
    "wan-t2v",
    "wan-i2v",
    "wan-vace",
    "ltx",
    "ltx-condition",
    "cogvideox",
    "cogvideox-i2v",
    "cogvideox-v2v",
    "cogvideox-fun-control",
]


def test_list_prints_every_name():
    listed = subprocess.run([sys.executable, TOOL, "--list"], capture_output=True, text=True, check=True)
    assert listed.stdout.split() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_name_builds_and_loads(tmp_path, name):
    folder = tiny_models.build(name, tmp_path / name)
    pipe = load(folder)
    assert len(pipe.model_hash) == 64 and (folder / "model_index.json").is_file()
    assert {"scheduler", "tokenizer", "text_encoder", "vae", "transformer"} <= {
        p.name for p in folder.iterdir()
    }


def test_the_command_writes_a_folder(tmp_path):
    done = subprocess.run(
        [sys.executable, TOOL, "ltx", tmp_path / "ltx"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"wrote {tmp_path / 'ltx'} (ltx)"
    assert load(tmp_path / "ltx").class_name == "LTXPipeline"


def test_the_command_writes_a_lora_file_for_a_folder(tmp_path):
    from kinema.pipelines.adapters import read_adapter

    folder = tiny_models.build("cogvideox", tmp_path / "cog")
    out = tmp_path / "cog-lora.safetensors"
    done = subprocess.run(
        [sys.executable, TOOL, "--lora", folder, out], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"wrote {out} (LoRA for {folder})"
    adapter = read_adapter(str(out))
    assert adapter.rank == 2 and all(
        key.startswith("transformer.transformer_blocks.") for key in adapter.shapes
    )
