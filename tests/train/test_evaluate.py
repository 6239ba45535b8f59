"""`kinema eval`: fixed held-apart prompt sets, the strict checker, the files users get."""

import json

import pytest

from kinema.cli import main
from kinema.io import Video
from kinema.provenance.watermark import psnr
from kinema.train.evaluate import as_written, evaluate, prompt_sets
from kinema.world import check, parse, render_frames
from kinema.world.dataset import TRAIN_SEEDS


def test_prompt_sets_are_fixed_and_use_seeds_training_never_draws():
    small, large = prompt_sets(3), prompt_sets(5)
    assert set(small) == {"seen_single", "held_out", "two_object"}
    for name, prompts in small.items():
        assert prompts == large[name][:3] and len(prompts) == 3  # more prompts extend a set
        assert all(seed >= TRAIN_SEEDS for _, seed in large[name])
    assert all(len(parse(p).objects) == 2 for p, _ in large["two_object"])
    assert all(parse(p).held_out for p, _ in large["held_out"])
    assert not any(parse(p).held_out for p, _ in large["seen_single"])


def test_a_right_clip_passes_as_the_file_a_user_gets(tmp_path):
    prompt = "a small purple square moving up on a gray background"
    clip = render_frames(parse(prompt), seed=2**62 + 5)
    frames = as_written(Video(clip), tmp_path / "clip.mp4")
    assert (tmp_path / "clip.mp4").stat().st_size > 0 and frames.shape == clip.shape
    assert 30 < psnr(frames, clip) < 60  # watermarked and H.264-coded, not the same pixels
    assert check(frames, prompt)["pass"]


def test_evaluate_reports_files_and_sharpness(tiny_model):
    from kinema.pipelines.loading import load

    result = evaluate(load(str(tiny_model)), n=1, steps=1, files=True)
    for row in result["sets"].values():
        assert row["total"] == 1 and row["files"]["total"] == 1 and 0 <= row["files"]["pass_rate"] <= 1
        assert set(row["sharpness"]) == {"circle", "square", "triangle"}
        assert set(row["vae_sharpness"]["square"]) >= {"fill_spread_mean", "edge_jitter_px_mean"}


def test_eval_files_command_and_its_refusal(tiny_model, capsys):
    args = ["eval", "--model", str(tiny_model), "--prompts", "1", "--steps", "1"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--files"])
    out, err = capsys.readouterr()
    assert info.value.code == 0, err
    assert all("files" in row for row in json.loads(out)["sets"].values()) and "as mp4 files" in err
    with pytest.raises(SystemExit) as info:
        main([*args, "--files", "--modes"])
    assert info.value.code == 2 and "--files" in capsys.readouterr().err
