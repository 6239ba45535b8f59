"""LoRA adapters on kinema's DiT: training (peft), the files and cards it writes, resume,
mixing into the weights, peft interchange, and the refusals of the request layer."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from kinema.cli import main
from kinema.errors import InputError
from kinema.io import Video, read_video, write_video
from kinema.pipelines.adapters import FORMAT, adapter_list, read_adapter
from kinema.pipelines.loading import load
from kinema.pipelines.lora import (
    PREFIX,
    VAE_PREFIX,
    check_fits_folder,
    decoder_target_names,
    dit_sha256,
    mixed_in,
    target_names,
    vae_sha256,
)
from kinema.train import lora as lora_training
from kinema.train.lora import LoRASettings, find_clips, train_lora
from kinema.world import parse, render_frames

CAPTIONS = (
    "a pink circle moving right on a black background",
    "a big pink square staying still on a gray background",
    "a small pink circle growing on a white background",
)
QUICK = LoRASettings(
    rank=4, steps=4, batch=2, checkpoint_every=2, prior_clips=6, decoder_rank=2, decoder_batch=2
)


def lesson(folder, frames=9):
    folder.mkdir(parents=True, exist_ok=True)
    for i, caption in enumerate(CAPTIONS):
        write_video(
            Video(render_frames(parse(caption), seed=i, frames=frames, size=64), 8.0), folder / f"c{i}"
        )
        (folder / f"c{i}.txt").write_text(caption + "\n")
    return folder


def trained(tiny_model, tmp_path, name="pink", settings=QUICK):
    return train_lora(lesson(tmp_path / "clips"), name, settings, model=str(tiny_model), show_progress=False)


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


# ---------------------------------------------------------------------- the training folder


def test_find_clips_pairs_clips_and_captions(tmp_path):
    clips = find_clips(lesson(tmp_path / "clips"))
    assert [c.caption for c in clips] == list(CAPTIONS)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: None, "holds no clips"),
        (lambda d: (d / "a.txt").write_text("a pink circle"), "holds no clips"),
        (lambda d: (d / "x.txt").unlink(), "has no caption"),
        (lambda d: (d / "y.txt").write_text("an orphan"), "has no clip"),
        (lambda d: (d / "x.txt").write_text("  \n"), "is empty"),
    ],
)
def test_find_clips_refuses_a_broken_folder(tmp_path, make, message):
    folder = tmp_path / "clips"
    folder.mkdir()
    if "no clips" not in message:
        write_video(Video(render_frames(parse(CAPTIONS[0]), frames=5, size=64), 8.0), folder / "x")
        (folder / "x.txt").write_text(CAPTIONS[0])
    make(folder)
    with pytest.raises(InputError, match=message):
        find_clips(folder)


def test_cli_refuses_bad_folder_and_writes_nothing(capsys, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("KINEMA_HOME", str(home))
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.txt").write_text("a pink circle")
    code, _, err = run(capsys, "lora", "train", str(tmp_path / "clips"), "--name", "pink")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no clips" in err
    assert not (home / "loras").exists()
    code, _, err = run(capsys, "lora", "train", str(tmp_path / "clips"), "--name", "../x")
    assert code == 2 and "adapter name" in err
    for flag, value, message in (
        ("--decoder-rank", "-1", "decoder rank"),
        ("--prior", "1", "prior fraction"),
    ):
        code, _, err = run(capsys, "lora", "train", str(tmp_path / "clips"), "--name", "p", flag, value)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (home / "loras").exists()


# ---------------------------------------------------------------------- training


def test_training_writes_adapter_card_and_plot(tiny_model, tmp_path):
    path = trained(tiny_model, tmp_path)
    folder = path.parent
    assert path.name == "pink.safetensors"
    assert (folder / "pink.json").is_file() and (folder / "pink.loss.png").stat().st_size > 0
    with safe_open(str(path), framework="pt") as f:
        meta, keys = f.metadata(), list(f.keys())
        dtypes = {f.get_tensor(k).dtype for k in keys}
    assert meta["format"] == FORMAT and meta["rank"] == "4"
    assert meta["base_dit_sha256"] == dit_sha256(tiny_model)
    assert dtypes == {torch.float16}
    assert all(k.startswith((PREFIX, VAE_PREFIX)) for k in keys)
    assert all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys)
    pipe = load(tiny_model)
    modules = {k.removeprefix(PREFIX).rsplit(".lora_", 1)[0] for k in keys if k.startswith(PREFIX)}
    assert modules == set(target_names(pipe.dit))
    # the decoder's convolutions carry pairs too (a colour the codec never learned)
    decoder = {k.removeprefix(VAE_PREFIX).rsplit(".lora_", 1)[0] for k in keys if k.startswith(VAE_PREFIX)}
    assert decoder == set(decoder_target_names(pipe.vae)) and all(m.startswith("dec_") for m in decoder)
    assert meta["decoder_rank"] == "2" and meta["base_vae_sha256"] == vae_sha256(tiny_model)
    card = json.loads((folder / "pink.json").read_text())
    assert card["captions"] == list(CAPTIONS) and card["steps"] == 4 and card["clips"] == 3
    assert card["base_model"] == "tiny-test" and len(card["clips_sha256"]) == 64
    assert card["decoder_rank"] == 2 and card["prior_clips"] == 6 and card["prior_fraction"] == 0.5
    # a lora_B starts at zero (peft's init): after training it is not
    tensors = load_file(str(path))
    assert any(float(v.abs().max()) > 0 for k, v in tensors.items() if k.endswith("lora_B.weight"))
    listed = adapter_list()
    assert listed[0]["name"] == "pink" and listed[0]["rank"] == 4 and listed[0]["card"]["steps"] == 4


def test_existing_name_needs_resume_or_force(tiny_model, tmp_path):
    trained(tiny_model, tmp_path)
    with pytest.raises(InputError, match="exists: --resume continues its training, --force replaces it"):
        trained(tiny_model, tmp_path)
    with pytest.raises(InputError, match="has no training run"):
        train_lora(
            tmp_path / "clips", "other", QUICK, model=str(tiny_model), resume=True, show_progress=False
        )
    path = train_lora(
        tmp_path / "clips", "pink", QUICK, model=str(tiny_model), force=True, show_progress=False
    )
    assert path.is_file() and not (path.parent / ".other.train").exists()


def test_a_killed_run_resumes_onto_the_same_adapter(tiny_model, tmp_path, monkeypatch):
    straight = load_file(str(trained(tiny_model, tmp_path, "straight")))
    calls = {"n": 0}
    advance = lora_training._Bar.advance

    def killed_after_three(self, loss):
        calls["n"] += 1
        if calls["n"] == 3:  # after the checkpoint at step 2, before the one at 4
            raise KeyboardInterrupt
        advance(self, loss)

    monkeypatch.setattr(lora_training._Bar, "advance", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        train_lora(tmp_path / "clips", "resumed", QUICK, model=str(tiny_model), show_progress=False)
    monkeypatch.setattr(lora_training._Bar, "advance", advance)
    path = train_lora(
        tmp_path / "clips", "resumed", QUICK, model=str(tiny_model), resume=True, show_progress=False
    )
    resumed = load_file(str(path))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


# ---------------------------------------------------------------------- using adapters


def _forward(dit, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = dit.config
    x = torch.randn(1, c.latent_channels, 3, 8, 8, generator=g)
    text = torch.randn(1, 5, c.text_dim, generator=g)
    with torch.no_grad():
        return dit(x, torch.tensor([0.5]), text, torch.ones(1, 5, dtype=torch.bool))


def _decoded(vae, seed=0):
    # chunked: through each convolution's own forward, which peft's wrapped layers keep
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return vae.decode(torch.randn(1, vae.config.latent_channels, 2, 8, 8, generator=g), chunked=True)


def test_mixing_changes_the_model_and_restores_it_exactly(tiny_model, tmp_path):
    path = trained(tiny_model, tmp_path)
    pipe = load(tiny_model)
    dit, vae = pipe.dit, pipe.vae
    before = {k: v.clone() for k, v in [*dit.state_dict().items(), *vae.state_dict().items()]}
    base, base_pictures = _forward(dit), _decoded(vae)
    whole = read_adapter(str(path), 1.0)
    half = read_adapter(str(path), 0.5)
    with mixed_in(dit, [whole], vae=vae):
        adapted, adapted_pictures = _forward(dit), _decoded(vae)
    with mixed_in(dit, [half, half], vae=vae):
        twice_half, twice_half_pictures = _forward(dit), _decoded(vae)
    assert not torch.allclose(adapted, base)
    assert not torch.allclose(adapted_pictures, base_pictures)
    assert torch.allclose(adapted, twice_half, atol=1e-5)
    assert torch.allclose(adapted_pictures, twice_half_pictures, atol=1e-5)
    after = [*dit.state_dict().items(), *vae.state_dict().items()]
    assert all(torch.equal(before[k], v) for k, v in after)
    assert torch.equal(_forward(dit), base) and torch.equal(_decoded(vae), base_pictures)
    # decoder pairs need the VAE to mix into: refused, not dropped
    with pytest.raises(InputError, match="which this VAE's decoder lacks"):
        with mixed_in(dit, [whole]):
            pass


def test_decoder_rank_0_trains_the_dit_only(tiny_model, tmp_path):
    import dataclasses

    path = trained(
        tiny_model, tmp_path, settings=dataclasses.replace(QUICK, decoder_rank=0, prior_fraction=0)
    )
    with safe_open(str(path), framework="pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert keys and all(k.startswith(PREFIX) for k in keys)
    assert "base_vae_sha256" not in meta and "decoder_rank" not in meta
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["decoder_rank"] == 0 and card["prior_clips"] == 0 and card["prior_fraction"] == 0


def test_the_prior_is_the_world_v1_stream():
    frames, captions = lora_training._prior(LoRASettings(prior_clips=12), 9, 32)
    assert frames.shape == (12, 9, 32, 32, 3) and len(captions) == 12
    assert all(parse(c).objects and all(o.colour != "pink" for o in parse(c).objects) for c in captions)
    again, _ = lora_training._prior(LoRASettings(prior_clips=12), 9, 32)
    assert np.array_equal(frames, again)
    none, no_captions = lora_training._prior(LoRASettings(prior_fraction=0), 9, 32)
    assert none.shape == (0, 9, 32, 32, 3) and no_captions == []


def test_peft_loads_the_file_by_name(tiny_model, tmp_path):
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

    path = trained(tiny_model, tmp_path)
    adapter = read_adapter(str(path))
    merged = load(tiny_model)
    with mixed_in(merged.dit, [adapter], vae=merged.vae):
        expected, expected_pictures = _forward(merged.dit), _decoded(merged.vae)
    pipe = load(tiny_model)
    tensors = load_file(str(path))
    for prefix, model, targets, rank in (
        (PREFIX, pipe.dit, target_names(pipe.dit), 4),
        (VAE_PREFIX, pipe.vae, decoder_target_names(pipe.vae), 2),
    ):
        model = inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets), model)
        state = {k.removeprefix(prefix): v.float() for k, v in tensors.items() if k.startswith(prefix)}
        result = set_peft_model_state_dict(model, state)
        assert not result.unexpected_keys
    assert torch.allclose(_forward(pipe.dit), expected, atol=1e-4)
    assert torch.allclose(_decoded(pipe.vae), expected_pictures, atol=1e-4)


def _forged(path, tmp_path, name, change):
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors, meta = change(tensors, meta)
    out = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(out), metadata=meta)
    return out


def test_adapters_for_another_model_are_refused(tiny_model, tmp_path):
    path = trained(tiny_model, tmp_path)
    key = next(k for k in load_file(str(path)) if k.endswith("attn.qkv.lora_A.weight"))

    def renamed(t, m):
        t["transformer.blocks.99.attn.qkv.lora_A.weight"] = t.pop(key)
        t["transformer.blocks.99.attn.qkv.lora_B.weight"] = t.pop(key.replace("lora_A", "lora_B"))
        return t, m

    def reshaped(t, m):
        t[key] = torch.zeros(4, t[key].shape[1] + 1, dtype=torch.float16)
        return t, m

    def other_dit(t, m):
        return t, {**m, "base_dit_sha256": "0" * 64}

    def no_metadata(t, m):
        return t, {}

    decoder_key = next(k for k in load_file(str(path)) if k.startswith(VAE_PREFIX) and "lora_A" in k)

    def other_vae(t, m):
        return t, {**m, "base_vae_sha256": "0" * 64}

    def decoder_reshaped(t, m):
        t[decoder_key] = torch.zeros(2, t[decoder_key].shape[1] + 1, 3, 3, 3, dtype=torch.float16)
        return t, m

    def encoder_pair(t, m):
        t["vae.enc_in.conv.lora_A.weight"] = t.pop(decoder_key)
        t["vae.enc_in.conv.lora_B.weight"] = t.pop(decoder_key.replace("lora_A", "lora_B"))
        return t, m

    cases = {
        "keys": renamed,
        "shape": reshaped,
        "dit": other_dit,
        "plain": no_metadata,
        "vae": other_vae,
        "decoder-shape": decoder_reshaped,
        "encoder": encoder_pair,
    }
    messages = {
        "keys": "keys name no layer",
        "shape": "does not fit",
        "dit": "trained on another DiT",
        "plain": "not a kinema adapter",
        "vae": "decoder pairs for another VAE",
        "decoder-shape": "does not fit",
        "encoder": "keys name no layer",
    }
    for name, change in cases.items():
        with pytest.raises(InputError, match=messages[name]):
            check_fits_folder(read_adapter(str(_forged(path, tmp_path, name, change))), tiny_model, "tiny")


def test_cli_generate_with_adapters(capsys, tiny_model, tmp_path):
    trained(tiny_model, tmp_path)
    prompt = "a pink circle moving right on a black background"
    common = ["--model", str(tiny_model), "--seed", "3", "--frames", "5"]
    code, _, err = run(capsys, "generate", prompt, "-o", str(tmp_path / "base.mp4"), *common)
    assert code == 0, err
    code, _, err = run(
        capsys, "generate", prompt, "-o", str(tmp_path / "zero.mp4"), *common, "--lora", "pink:0"
    )
    assert code == 0, err
    # scale 0 is dropped from the request: the base model's file (the same frames, mark and
    # settings; the signed manifests differ only in their time and id)
    assert np.array_equal(read_video(tmp_path / "zero.mp4").frames, read_video(tmp_path / "base.mp4").frames)
    zero, base = (json.loads((tmp_path / f"{n}.mp4.json").read_text()) for n in ("zero", "base"))
    assert {k: v for k, v in zero.items() if k != "id"} == {k: v for k, v in base.items() if k != "id"}
    code, _, err = run(
        capsys, "generate", prompt, "-o", str(tmp_path / "pink.mp4"), *common, "--lora", "pink:1.5"
    )
    assert code == 0, err
    assert not np.array_equal(
        read_video(tmp_path / "pink.mp4").frames, read_video(tmp_path / "base.mp4").frames
    )
    sidecar = json.loads((tmp_path / "pink.mp4.json").read_text())
    assert sidecar["adapters"][0]["name"] == "pink" and sidecar["adapters"][0]["scale"] == 1.5
    assert len(sidecar["adapters"][0]["sha256"]) == 64
    code, out, _ = run(capsys, "verify", str(tmp_path / "pink.mp4"))
    titles = [i["title"] for i in json.loads(out)["c2pa"]["ingredients"]]
    assert "pink.safetensors" in titles
    for bad, message in [("nothere", "no adapter 'nothere'"), ("pink:3", "scale 3")]:
        code, _, err = run(
            capsys, "generate", prompt, "-o", str(tmp_path / "bad.mp4"), *common, "--lora", bad
        )
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad.mp4").exists()
    code, out, _ = run(capsys, "lora", "list")
    assert code == 0 and out.startswith("pink  base tiny-test  rank 4 (decoder 2)")


def test_python_door_takes_lora(tiny_model, tmp_path):
    import kinema

    trained(tiny_model, tmp_path)
    model = kinema.load(str(tiny_model))
    request = model.request("a pink circle moving right on a black background", lora=["pink:0.5", "other:0"])
    assert [(a.source, a.scale) for a in request.adapters] == [("pink", 0.5)]
    base = model("a pink circle moving right on a black background", seed=1, frames=5)
    adapted = model("a pink circle moving right on a black background", seed=1, frames=5, lora="pink")
    assert not np.array_equal(base.frames, adapted.frames)
    with pytest.raises(InputError, match="no adapter 'nope'"):
        model("a pink circle moving right on a black background", lora="nope")


def test_resume_goes_on_for_more_steps_only(tiny_model, tmp_path):
    import dataclasses

    trained(tiny_model, tmp_path)
    longer = dataclasses.replace(QUICK, steps=6)
    path = train_lora(
        tmp_path / "clips", "pink", longer, model=str(tiny_model), resume=True, show_progress=False
    )
    assert json.loads(path.with_suffix(".json").read_text())["steps"] == 6
    with pytest.raises(InputError, match="trained 6 steps already"):
        train_lora(tmp_path / "clips", "pink", QUICK, model=str(tiny_model), resume=True, show_progress=False)
    with pytest.raises(InputError, match="other settings"):
        train_lora(
            tmp_path / "clips",
            "pink",
            dataclasses.replace(longer, lr=0.5),
            model=str(tiny_model),
            resume=True,
        )
