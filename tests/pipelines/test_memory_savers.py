import json

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.errors import InputError
from kinema.pipelines.loading import load
from kinema.pipelines.quantize import quantize_int8

PROMPT = "a big red circle moving right on a black background"


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_int8_pipeline_makes_a_clip_close_to_fp32(tiny_model):
    fp32 = load(tiny_model)(PROMPT, seed=3, frames=16, steps=3)
    pipe = load(tiny_model, int8=True)
    assert not any(isinstance(m, torch.nn.Linear) for m in pipe.dit.modules())
    int8 = pipe(PROMPT, seed=3, frames=16, steps=3)
    assert int8.frames.shape == fp32.frames.shape == (16, 64, 64, 3)
    difference = np.abs(int8.frames.astype(np.float32) - fp32.frames.astype(np.float32)).mean()
    assert difference < 4.0, difference  # of 255: quantisation noise, not a different clip


def test_quantize_refuses_cuda():
    with pytest.raises(InputError, match="CPU"):
        quantize_int8(torch.nn.Linear(4, 4), "cuda")


def test_diffusers_savers_are_refused_for_kinema_models(capsys, tmp_path, tiny_model):
    out = tmp_path / "clip.mp4"
    for flag in ("--cpu-offload", "--vae-tiling", "--vae-slicing", "--attention-slicing"):
        code, _, err = run(capsys, "generate", PROMPT, "-o", str(out), "--model", str(tiny_model), flag)
        saver = flag[2:].replace("-", "_")  # the option as the library names it
        assert code == 2 and f"memory saver {saver} applies to diffusers models" in err, err
        assert len(err.strip().splitlines()) == 1 and not out.exists()
    with pytest.raises(InputError, match="unknown memory saver"):
        load(tiny_model, savers=["magic"])


def test_generate_int8_records_it(capsys, tmp_path, tiny_model):
    out = tmp_path / "clip.gif"
    code, stdout, err = run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        str(out),
        "--model",
        str(tiny_model),
        "--int8",
        "--seed",
        "1",
        "--json",
    )
    assert code == 0, err
    assert json.loads(stdout)["int8"] is True
    assert json.loads((tmp_path / "clip.gif.json").read_text())["int8"] is True


def test_bench_memory_measures_each_configuration(capsys, tiny_model):
    code, stdout, err = run(capsys, "bench", "--memory", "--model", str(tiny_model))
    assert code == 0, err
    result = json.loads(stdout)
    rows = {row["config"]: row for row in result["memory"]}
    assert list(rows) == ["imports only", "fp32", "int8"] and result["model"] == "tiny-test"
    for row in rows.values():
        assert row["peak_rss_mb"] > 0 and "error" not in row
    assert rows["fp32"]["peak_rss_mb"] > rows["imports only"]["peak_rss_mb"]
    assert rows["int8"]["frames"] == rows["fp32"]["frames"] == 16


def test_savers_reach_the_diffusers_backend_and_int8_does_not(tmp_path, monkeypatch):
    import kinema.pipelines.backends as backends

    folder = tmp_path / "wan"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "WanPipeline"}')
    seen = {}
    monkeypatch.setattr(
        backends, "load_backend", lambda f, device, **savers: seen.update(savers) or "backend"
    )
    assert load(folder, savers=["vae_tiling", "attention_slicing"]) == "backend"
    assert seen == {"vae_tiling": True, "attention_slicing": True}
    with pytest.raises(InputError, match="int8 applies to kinema's own models"):
        load(folder, int8=True)
