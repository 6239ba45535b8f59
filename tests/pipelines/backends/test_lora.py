"""LoRA adapters on the diffusers backends: a diffusers-format file changes the output on
every family and leaves the model as it was; scale 0 is no adapter; a file for another
family, another model size or kinema's own DiT is refused with one line before loading."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from kinema.errors import InputError
from kinema.io import Video, read_video, write_png
from kinema.pipelines.adapters import read_adapter
from kinema.pipelines.backends import load_backend
from tests.pipelines.backends import tiny_models
from tests.pipelines.backends.test_backends import PROMPT, run


def _inputs(kind: str) -> dict:
    """What a folder needs to generate: a first image for the I2V ones, a control clip for Fun."""
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = (220, 40, 40)
    if kind.endswith("i2v"):
        return {"keyframes": {0: image}}
    if kind == "cogvideox-fun-control":
        frames = np.random.default_rng(0).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
        return {"control": Video(frames, 8.0)}
    return {}


FAMILIES = ["wan", "wan-i2v", "wan-vace", "ltx", "cogvideox", "cogvideox-i2v", "cogvideox-fun-control"]


@pytest.mark.parametrize("kind", FAMILIES)
def test_a_lora_changes_the_output_and_leaves_the_model_as_it_was(tiny_folders, tiny_loras, kind):
    backend = load_backend(tiny_folders[kind])
    assert "lora" in backend.steering
    make = lambda: backend(PROMPT, frames=9, size=64, steps=2, seed=1, **_inputs(kind)).frames  # noqa: E731
    before = make()
    with backend.adapted((read_adapter(str(tiny_loras[kind]), 1.0),)):
        adapted = make()
    assert not np.array_equal(adapted, before)
    assert np.array_equal(make(), before)  # unloaded: the base model exactly
    with backend.adapted((read_adapter(str(tiny_loras[kind]), 0.0),)):
        assert np.array_equal(make(), before)  # scale 0 is no adapter


def test_two_adapters_mix_by_their_scales(tiny_folders, tiny_loras, tmp_path):
    backend = load_backend(tiny_folders["ltx"])
    other = tiny_models.lora(tiny_folders["ltx"], tmp_path / "other.safetensors", seed=5)
    make = lambda: backend(PROMPT, frames=9, size=64, steps=2, seed=1).frames  # noqa: E731
    one, two = read_adapter(str(tiny_loras["ltx"]), 1.0), read_adapter(str(other), 0.5)
    with backend.adapted((one,)):
        alone = make()
    with backend.adapted((one, two)):
        mixed = make()
    assert not np.array_equal(alone, mixed)


@pytest.mark.parametrize("kind", FAMILIES)
def test_lora_through_the_cli_is_recorded(capsys, tmp_path, tiny_folders, tiny_loras, control_clip, kind):
    first = tmp_path / "first.png"
    write_png(_inputs("wan-i2v")["keyframes"][0], first)
    needs = {"wan-i2v": ["--image", first], "cogvideox-i2v": ["--image", first]}
    needs["cogvideox-fun-control"] = ["--control", control_clip]
    out = tmp_path / "clip"
    code, stdout, err = run(
        capsys, "generate", PROMPT, "-o", out, "--model", tiny_folders[kind], "--frames", 9, "--size", 64,
        "--steps", 2, "--lora", f"{tiny_loras[kind]}:0.8", "--json", *needs.get(kind, []),
    )  # fmt: skip
    assert code == 0, err
    assert read_video(out).num_frames == 9
    assert '"scale": 0.8' in json.dumps(json.loads(stdout))


def _kinema_format(tiny_folders, path):
    return tiny_models.lora(
        tiny_folders["wan"], path, metadata={"format": "kinema-lora/1", "rank": "2", "alpha": "2"}
    )


def _mismatched(tiny_loras, path):
    tensors = load_file(str(tiny_loras["wan"]))
    key = sorted(k for k in tensors if k.endswith("lora_A.weight"))[0]
    tensors[key] = torch.zeros(2, tensors[key].shape[1] + 4)  # another model size's width
    save_file(tensors, str(path))
    return path, key


@pytest.mark.parametrize(
    "source,message",
    [
        ("ltx", "does not fit the Wan transformer of wan: 16 keys name no module (first: transformer."),
        ("cogvideox", "does not fit the Wan transformer of wan: 8 keys name no module"),
        ("kinema", "is made for kinema's own DiT (kinema-lora/1), not the Wan transformer of wan"),
        ("mismatch", "does not fit the Wan transformer of wan: shape mismatch at transformer.blocks.0.attn1"),
    ],
)
def test_a_file_that_does_not_fit_is_refused_in_one_line(
    capsys, tmp_path, tiny_folders, tiny_loras, source, message
):
    if source == "kinema":
        path = _kinema_format(tiny_folders, tmp_path / "mine.safetensors")
    elif source == "mismatch":
        path, _ = _mismatched(tiny_loras, tmp_path / "wide.safetensors")
    else:
        path = tiny_loras[source]
    out = tmp_path / "out.mp4"
    code, _, err = run(
        capsys, "generate", PROMPT, "-o", out, "--model", tiny_folders["wan"], "--frames", 5, "--size", 64,
        "--steps", 2, "--lora", path,
    )  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_refused_files_leave_nothing_loaded(tiny_folders, tiny_loras):
    backend = load_backend(tiny_folders["wan"])
    before = backend(PROMPT, frames=5, size=32, steps=2).frames
    fits, foreign = read_adapter(str(tiny_loras["wan"])), read_adapter(str(tiny_loras["ltx"]))
    with pytest.raises(InputError, match="name no module"), backend.adapted((fits, foreign)):
        pass  # every file is checked before the first is loaded
    assert not any("lora" in name for name, _ in backend.pipe.transformer.named_modules())
    assert np.array_equal(backend(PROMPT, frames=5, size=32, steps=2).frames, before)
