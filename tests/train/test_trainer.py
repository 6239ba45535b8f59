import json

import pytest
import torch

from kinema.cli import main
from kinema.train.checkpoint import CheckpointError, load_config, load_weights
from kinema.train.presets import get_preset
from kinema.train.trainer import Trainer


def _same(a, b):
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_killed_and_resumed_run_continues_exactly(tmp_path):
    preset = get_preset("vae-tiny")
    first = Trainer(preset, tmp_path / "a")
    first.run(max_steps=2, progress=False)  # the "kill": stop after a checkpoint at step 2
    resumed = Trainer(preset, tmp_path / "a")
    assert resumed.step == 2
    resumed.run(progress=False)
    straight = Trainer(preset, tmp_path / "b")
    straight.run(progress=False)
    assert resumed.step == straight.step == preset.steps
    assert _same(resumed.model, straight.model) and _same(resumed.ema, straight.ema)


def test_checkpoint_is_safetensors_with_config_and_plot(tmp_path):
    Trainer(get_preset("vae-tiny"), tmp_path / "run").run(progress=False)
    config = load_config(tmp_path / "run")
    assert config["kind"] == "vae" and config["step"] == 4 and "psnr" in config["validation"]
    assert config["command"] == "kinema train --preset vae-tiny"
    assert "latent_std" in load_weights(tmp_path / "run")
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    lines = [json.loads(x) for x in (tmp_path / "run.log.jsonl").read_text().splitlines()]
    assert any("samples_per_s" in x for x in lines)


def test_not_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_weights(tmp_path)
    with pytest.raises(CheckpointError, match="config.json"):
        load_config(tmp_path / "missing")


def test_train_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--preset", "vae-tiny", "--out", str(tmp_path / "c"), "--steps", "1", "--no-progress"])
    assert info.value.code == 0 and json.loads(capsys.readouterr().out)["step"] == 1
    with pytest.raises(SystemExit) as info:
        main(["train", "--preset", "nope"])
    assert info.value.code == 2 and "unknown preset" in capsys.readouterr().err


def test_warm_start_from_weights_continues_the_schedule(tmp_path):
    preset = get_preset("vae-tiny")
    Trainer(preset, tmp_path / "first").run(max_steps=2, progress=False)
    warm = Trainer(preset, tmp_path / "second", init_from=tmp_path / "first")
    assert warm.step == 2
    first = Trainer(preset, tmp_path / "first")
    assert _same(warm.ema, first.ema)


def test_dit_trains_on_a_latent_cache_built_once(tmp_path):
    import dataclasses

    from kinema.train.latent_cache import LatentCache

    Trainer(get_preset("vae-tiny"), tmp_path / "vae").run(progress=False)
    preset = dataclasses.replace(get_preset("dit-tiny"), vae=str(tmp_path / "vae"), cache_clips=6)
    Trainer(preset, tmp_path / "dit").run(max_steps=2, progress=False)
    (folder,) = tmp_path.glob("latents-*")
    shard = next(folder.glob("shard_*.safetensors"))
    built = shard.stat().st_mtime_ns
    cache = LatentCache(folder, 6)
    assert len(cache) == 6 and cache.latents.shape[1:3] == (4, 2) and cache.keyframes.shape[2] == 1
    resumed = Trainer(preset, tmp_path / "dit")
    resumed.run(progress=False)
    assert resumed.step == preset.steps and shard.stat().st_mtime_ns == built


def test_exported_fp16_weights_warm_start_a_run(tmp_path):
    from kinema.train.export import export_checkpoint

    preset = get_preset("vae-tiny")
    Trainer(preset, tmp_path / "run").run(max_steps=2, progress=False)
    exported = export_checkpoint(tmp_path / "run", tmp_path / "weights")
    assert sorted(p.name for p in exported.iterdir()) == ["config.json", "model.safetensors"]
    warm = Trainer(preset, tmp_path / "again", init_from=exported)
    assert warm.step == 2
    for (name, a), b in zip(
        warm.ema.state_dict().items(),
        Trainer(preset, tmp_path / "run").ema.state_dict().values(),
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-2, rtol=1e-2), name


def test_a_kill_between_the_checkpoint_renames_keeps_the_previous_one(tmp_path):
    import os

    preset = get_preset("vae-tiny")
    Trainer(preset, tmp_path / "run").run(max_steps=2, progress=False)
    # the moment save_checkpoint has moved the old folder aside and not yet put the new one in
    os.replace(tmp_path / "run", tmp_path / ".run.old")
    assert Trainer(preset, tmp_path / "run").step == 2


def test_a_dit_run_grows_a_shallower_dit_it_starts_from(tmp_path):
    import dataclasses

    Trainer(get_preset("vae-tiny"), tmp_path / "vae").run(progress=False)
    shallow = dataclasses.replace(get_preset("dit-tiny"), vae=str(tmp_path / "vae"), cache_clips=4)
    Trainer(shallow, tmp_path / "shallow").run(max_steps=2, progress=False)
    deep = dataclasses.replace(shallow, name="dit-tiny-deep", model={**shallow.model, "depth": 3})
    grown = Trainer(deep, tmp_path / "deep", init_from=tmp_path / "shallow")
    assert grown.step == 0 and len(grown.model.blocks) == 3  # another recipe: its own schedule
    old = load_weights(tmp_path / "shallow")
    assert torch.equal(grown.model.blocks[1].mlp[0].weight, old["blocks.1.mlp.0.weight"])
    assert not grown.model.blocks[2].modulation[-1].weight.any()
    grown.run(max_steps=1, progress=False)


def test_a_step_the_compiler_cannot_run_is_run_eagerly(tmp_path, monkeypatch):
    class Broken(torch.nn.Module):
        def forward(self, *args, **kwargs):
            raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: Broken())
    preset = get_preset("vae-tiny")
    with pytest.warns(UserWarning, match="torch.compile failed"):
        Trainer(preset, tmp_path / "compiled", compile=True).run(max_steps=2, progress=False)
    Trainer(preset, tmp_path / "eager").run(max_steps=2, progress=False)
    assert _same(Trainer(preset, tmp_path / "compiled").ema, Trainer(preset, tmp_path / "eager").ema)
