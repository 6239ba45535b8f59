"""Training data, latent caches, preset changes and what each stage trains."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.errors import InputError
from kinema.train.checkpoint import load_config, load_weights
from kinema.train.data import preset_samples
from kinema.train.latent_cache import LatentCache, build_cache, cache_folder
from kinema.train.presets import get_preset, override, preset_command
from kinema.train.stages import (
    CONDITION_KINDS,
    PromptTable,
    condition_kinds,
    condition_masks,
    condition_mix,
    load_vae,
)
from kinema.train.trainer import Trainer
from kinema.world.dataset import training_sample


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae") / "vae"
    Trainer(get_preset("vae-tiny"), folder).run(progress=False)
    return folder


def test_offset_fraction_starts_most_windows_at_frame_zero():
    preset = dataclasses.replace(get_preset("dit-tiny"), random_offset=True, offset_fraction=0.25)
    offsets = np.array([s.offset for s in preset_samples(preset, 0, 0, 400)])
    assert 0.15 < (offsets > 0).mean() < 0.3
    # a full fraction draws exactly the windows it always drew
    full = [training_sample(0, 0, i, 5, 32, True, 0.35, 1.0).offset for i in range(20)]
    assert full == [training_sample(0, 0, i, 5, 32, True, 0.35).offset for i in range(20)]


def test_mid_cycle_windows_get_a_condition_that_spans_time():
    preset = get_preset("dit")
    rng = np.random.default_rng(0)
    offsets = np.array([0, 5] * 500)
    kinds = condition_kinds(offsets, rng, *condition_mix(preset.condition_weights, preset.context_conditions))
    assert {CONDITION_KINDS[k] for k in kinds[offsets > 0]} == set(preset.context_conditions)
    assert {CONDITION_KINDS[k] for k in kinds[offsets == 0]} == set(CONDITION_KINDS)


def test_a_preset_decides_its_condition_mix():
    # dit-region keeps the kept-region condition (inpainting) to windows that start at frame
    # 0: around the object's path it never shows which way the object goes
    preset = get_preset("dit-region")
    p, context = condition_mix(preset.condition_weights, preset.context_conditions)
    assert p.sum() == pytest.approx(1.0)
    assert "region" not in {CONDITION_KINDS[k] for k in context}
    offsets = np.array([0, 5] * 2000)
    kinds = condition_kinds(offsets, np.random.default_rng(0), p, context)
    region = CONDITION_KINDS.index("region")
    assert not (kinds[offsets > 0] == region).any()
    assert (kinds[offsets == 0] == region).mean() == pytest.approx(p[region], abs=0.03)
    # the default mix is the one every earlier preset trained with
    default = condition_mix(get_preset("dit").condition_weights, get_preset("dit").context_conditions)
    assert np.allclose(default[0], [0.45, 0.2, 0.1, 0.12, 0.05, 0.08]) and len(default[1]) == 4
    with pytest.raises(InputError, match="unknown condition kinds"):
        condition_mix({"mask": 1.0}, ["prefix"])
    with pytest.raises(InputError, match="context kind"):
        condition_mix({"none": 1.0}, ["prefix"])
    # a command line can change them like any other setting
    changed = override(preset, ['context_conditions=["prefix"]', 'condition_weights={"none":1,"prefix":1}'])
    assert preset_command(changed).endswith(
        '--set condition_weights={"none":1,"prefix":1} --set context_conditions=["prefix"]'
    )


def test_condition_masks_give_each_kind_its_shape():
    t, h, w = 5, 8, 8
    kinds = np.tile(np.arange(len(CONDITION_KINDS)), 200)
    masks = condition_masks(kinds, t, h, w, np.random.default_rng(1))
    assert masks.shape == (len(kinds), 1, t, h, w) and set(masks.unique().tolist()) <= {0.0, 1.0}
    frames = masks[:, 0].amax(dim=(2, 3))  # (B, T): is any cell of the frame given
    whole = masks[:, 0].amin(dim=(2, 3))  # (B, T): is every cell of the frame given
    by_kind = {name: kinds == i for i, name in enumerate(CONDITION_KINDS)}
    assert masks[by_kind["none"]].sum() == 0
    assert (frames[by_kind["first"]] == torch.tensor([1.0, 0, 0, 0, 0])).all()
    assert (frames[by_kind["first_last"]] == torch.tensor([1.0, 0, 0, 0, 1])).all()
    prefix = frames[by_kind["prefix"]]
    lengths = prefix.sum(dim=1)
    assert (lengths >= 1).all() and (lengths <= t - 2).all() and len(set(lengths.tolist())) == t - 2
    assert all(
        (row[: int(n)] == 1).all() and (row[int(n) :] == 0).all()
        for row, n in zip(prefix, lengths, strict=True)
    )
    for name in ("first", "first_last", "prefix", "keyframes"):  # whole frames or nothing
        assert torch.equal(frames[by_kind[name]], whole[by_kind[name]]), name
    assert 0.3 < frames[by_kind["keyframes"]].mean() < 0.5
    for mask in masks[by_kind["region"], 0]:  # every frame keeps all but one box, the same box
        assert (mask == mask[0]).all()
        hole = (mask[0] == 0).nonzero()
        rows, cols = hole[:, 0], hole[:, 1]
        box_h, box_w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert len(hole) == box_h * box_w and box_h > h // 4 and box_w > w // 4


def test_cache_rendered_by_worker_processes_matches_one_process(tmp_path, tiny_vae):
    preset = dataclasses.replace(
        get_preset("dit-tiny"), vae=str(tiny_vae), random_offset=True, offset_fraction=0.5
    )
    vae = load_vae(tiny_vae)
    build_cache(vae, preset, tmp_path / "one", 70, workers=1)
    build_cache(vae, preset, tmp_path / "two", 70, workers=2)
    one, two = LatentCache(tmp_path / "one", 70), LatentCache(tmp_path / "two", 70)
    assert one.prompts == two.prompts and len(one) == 70
    assert torch.equal(one.latents, two.latents) and torch.equal(one.keyframes, two.keyframes)
    assert list(one.offsets) == [s.offset for s in preset_samples(preset, 1, 0, 70)]
    assert cache_folder(preset) != cache_folder(dataclasses.replace(preset, offset_fraction=1.0))


def test_prompt_table_gives_the_encoders_states():
    from kinema.models.text import MiniLMTextEncoder

    text = MiniLMTextEncoder()
    prompts = [
        "a red circle moving right on a black background",
        "a big blue square growing on a white background",
    ]
    table = PromptTable(text, prompts, torch.device("cpu"))
    assert "" in table and prompts[0] in table
    widths = set()
    for batch in (prompts, [prompts[1], ""], [""]):
        tokens, mask = table.lookup(batch)
        want, want_mask = text.encode(batch)
        widths.add(tokens.shape[1])
        # the table is as wide as its longest prompt, whatever the batch: beyond each
        # prompt's own tokens it is masked padding
        n = want.shape[1]
        assert torch.equal(mask[:, :n], want_mask) and not mask[:, n:].any()
        assert torch.allclose(tokens[:, :n][want_mask], want[want_mask], atol=1e-4)
    assert len(widths) == 1  # one shape every step: a compiled model does not recompile


def test_decoder_only_training_keeps_the_latents(tmp_path, tiny_vae):
    preset = dataclasses.replace(get_preset("vae-tiny"), name="vae-tiny", freeze_encoder=True)
    trainer = Trainer(preset, tmp_path / "dec", init_from=tiny_vae)
    assert trainer.step == 4  # the same preset: its schedule goes on
    trainer.preset = dataclasses.replace(preset, steps=7)
    trainer.run(progress=False)
    before, after = load_weights(tiny_vae), load_weights(tmp_path / "dec")
    for name in before:
        changed = not torch.equal(before[name], after[name])
        if name.startswith("enc_") or name.startswith("latent_"):
            assert not changed, name
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("dec_"))


def test_warm_start_under_another_preset_starts_its_schedule(tmp_path, tiny_vae):
    other = dataclasses.replace(get_preset("vae-tiny"), name="vae-decoder", freeze_encoder=True)
    assert Trainer(other, tmp_path / "x", init_from=tiny_vae).step == 0


def test_preset_settings_and_the_command_that_reproduces_them():
    preset = override(get_preset("dit"), ["steps=3485", "lr=0.0001", 'model={"width": 64}'])
    assert preset.steps == 3485 and preset.lr == 1e-4 and preset.model == {"width": 64}
    command = preset_command(preset)
    assert command.startswith("kinema train --preset dit ") and "--set steps=3485" in command
    assert override(get_preset("dit"), [part.strip() for part in command.split("--set ")[1:]]) == preset
    assert preset_command(get_preset("vae")) == "kinema train --preset vae"
    for bad in (["steps"], ["nope=1"], ["steps=many"], ["name=x"]):
        with pytest.raises(InputError):
            override(get_preset("dit"), bad)


def test_train_command_takes_settings_and_refuses_a_missing_gpu(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["train", "--preset", "vae-tiny", "--out", str(out), "--set", "steps=2", "--no-progress"])
    assert info.value.code == 0 and json.loads(capsys.readouterr().out)["step"] == 2
    assert load_config(out)["command"] == "kinema train --preset vae-tiny --set steps=2"
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as info:
            main(["train", "--preset", "vae-tiny", "--out", str(tmp_path / "g"), "--device", "cuda"])
        assert info.value.code == 2 and "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_run_resumes_on_the_cpu(tmp_path):
    Trainer(get_preset("vae-tiny"), tmp_path / "g", device="cuda").run(max_steps=2, progress=False)
    resumed = Trainer(get_preset("vae-tiny"), tmp_path / "g")
    assert resumed.step == 2
    resumed.run(progress=False)


def test_prompt_weights_draw_what_fails_more_often():
    from kinema.train.stages import prompt_draw_probabilities

    prompts = ["a red square moving up on a black background", "a red circle moving up on a black background"]
    p = prompt_draw_probabilities(prompts, {"square": 3.0})
    assert np.allclose(p, [0.75, 0.25])
    assert np.allclose(prompt_draw_probabilities(prompts, {}), [0.5, 0.5])
    # a word matches whole words only: "red" is not in "shrinking", "up" not in "cup"
    assert np.allclose(prompt_draw_probabilities(prompts + ["a cup"], {"up": 2.0}), [0.4, 0.4, 0.2])


def test_a_dit_preset_says_a_share_of_its_captions_in_training_wordings():
    from types import SimpleNamespace

    from kinema.train.presets import get_preset, override
    from kinema.train.stages import DiTStage
    from kinema.world import parse
    from kinema.world.paraphrase import all_wordings

    prompts = ["a big red circle moving right on a black background"] * 40 + [""]
    stage = SimpleNamespace(preset=override(get_preset("dit-tiny"), ["paraphrase_fraction=0.5"]))
    captions = DiTStage._captions(stage, 3, prompts, 0)
    said = [c for c, p in zip(captions, prompts, strict=True) if c != p]
    assert 8 < len(said) < 32 and captions[-1] == ""  # dropped (empty) prompts stay empty
    train = {w for k, ws in all_wordings("train").items() for w in ws}
    held_out = {w for k, ws in all_wordings("held_out").items() if not k.startswith("template") for w in ws}
    held_out -= train
    for caption in said:
        assert not any(f" {w} " in f" {caption} " for w in held_out if " " not in w), caption
    # the same step and row give the same caption in any process
    assert DiTStage._captions(stage, 3, prompts[5:10], 5) == captions[5:10]
    plain = SimpleNamespace(preset=get_preset("dit-tiny"))
    assert DiTStage._captions(plain, 3, prompts, 0) == prompts
    assert parse(prompts[0])  # the canonical prompt stays what the grammar reads
