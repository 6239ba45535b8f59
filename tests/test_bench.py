import json

import pytest

from kinema import bench
from kinema.bench import LENGTH_PROMPT, lengths
from kinema.errors import InputError


def test_lengths_measures_each_length_in_its_own_process(tiny_model):
    result = lengths(str(tiny_model), frames=(16, 40))
    assert result["prompt"] == LENGTH_PROMPT
    runs = result["runs"]
    assert [r["frames"] for r in runs] == [16, 40]
    for run in runs:
        assert "error" not in run, run
        assert run["peak_rss_mb"] > 0 and run["seconds_per_frame"] > 0
        assert 0 <= run["identity_fraction"] <= 1
    assert result["peak_rss_ratio_longest_to_shortest"] > 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"clips": 3}, "--clips applies to bench --watermark"),
        ({"watermark": True, "peak_memory": True}, "--watermark takes only --clips"),
        ({"watermark": True, "clips": 0}, "--clips must be at least 1"),
        ({"device": "cuda"}, "--device applies to bench --memory"),
        ({"device": "tpu", "peak_memory": True}, "cpu or cuda"),
        ({"web": True, "long_clips": True}, "bench --web takes only --model"),
        ({"long_clips": True, "peak_memory": True}, "--lengths runs on the CPU alone"),
        ({"cold": True, "long_clips": True}, "bench --cold takes only --model"),
        ({"cold": True, "web": True}, "bench --web takes only --model"),
        ({"curve": "c.png", "watermark": True}, "bench --curve takes only --model and --prompts"),
        ({"curve": "c.png", "clips": 2}, "bench --curve takes only --model and --prompts"),
        ({"prompts": 5}, "--prompts applies to bench --curve"),
        ({"curve": "c.png", "prompts": 0}, "--prompts must be at least 1"),
        ({"curve": "c.txt"}, "--curve draws a PNG"),
        ({"curve": "/no/such/folder/c.png"}, "folder"),
    ],
)
def test_run_refuses_combinations_that_mean_nothing(options, message):
    with pytest.raises(InputError, match=message):
        bench.run(**options)


def test_watermark_bench_clips_are_shapes_world_clips_of_the_asked_size():
    clip = bench.world_clip(3, 32)
    assert (clip.num_frames, clip.width, clip.height, clip.fps) == (16, 32, 32, 8.0)
    assert (clip.frames == bench.world_clip(3, 32).frames).all() and (
        clip.frames != bench.world_clip(4, 32).frames
    ).any()


def test_watermark_bench_prompts_are_shapes_world_prompts_on_the_asked_background():
    from kinema.world import parse

    for background in ("black", "gray", "white"):
        prompt = bench.watermark_prompt(5, background)
        assert parse(prompt).background == background and prompt.endswith(f"on a {background} background")
    assert bench.watermark_prompt(5, "gray") != bench.watermark_prompt(6, "gray")


def test_watermark_bench_model_clips_are_generated_once_and_cached(tiny_model, tmp_path):
    import numpy as np

    clips = bench.ModelClips(tmp_path / "cache", model=str(tiny_model))
    clip = clips(0, "black", 64)
    assert (clip.num_frames, clip.width, clip.fps) == (16, 64, 8.0)
    cached = tmp_path / "cache" / f"black-64-{bench.WATERMARK_SEED}.npy"
    assert np.array_equal(np.load(cached), clip.frames)
    # a rerun reads the cache: a fresh source never loads the model for it
    again = bench.ModelClips(tmp_path / "cache", model="no such model")
    assert np.array_equal(again(0, "black", 64).frames, clip.frames)


def test_cold_start_times_every_phase_of_a_fresh_generate(tiny_model):
    result = bench.cold_start(str(tiny_model), runs=1, steps=1)
    assert result["not_found"] == []  # every phase it names exists in the code it times
    seconds = result["seconds"]
    for phase in (
        "interpreter",
        "imports: library",
        "load: text encoder",
        "render: sampling",
        "publish: signing",
    ):
        assert seconds[phase] >= 0
    top = sum(v for name, v in seconds.items() if ":" not in name and name != "total")
    assert abs(top - seconds["total"]) < 0.01 and result["total_plain_seconds"] > 0


def test_cold_start_refuses_no_runs():
    with pytest.raises(InputError, match="--runs must be at least 1"):
        bench.cold_start(runs=0)


def _cli(capsys, *args):
    from kinema.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_cold_on_the_command_line_runs_the_cold_start(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(
        bench, "cold_start", lambda model=None: calls.append(model) or {"seconds": {"total": 1.0}}
    )
    code, out, _ = _cli(capsys, "bench", "--cold", "--model", "some-model")
    assert code == 0 and calls == ["some-model"] and json.loads(out) == {"seconds": {"total": 1.0}}
    code, out, err = _cli(capsys, "bench", "--cold", "--lengths")
    assert code == 2 and "bench --cold takes only --model" in err and out == "" and calls == ["some-model"]


def test_bench_curve_draws_pass_rate_against_steps(capsys, tiny_model, tmp_path):
    from kinema.io import read_image

    png = tmp_path / "curve.png"
    code, out, err = _cli(capsys, "bench", "--curve", str(png), "--model", str(tiny_model), "--prompts", "1")
    assert code == 0, err
    curve = json.loads(out)["curve"]
    assert curve["per_set"] == 1 and curve["png"] == str(png)
    assert [p["steps"] for p in curve["points"]] == [1, 2, 4, 8, 16, 24]
    for point in curve["points"]:
        assert set(point["sets"]) == {"seen_single", "held_out", "two_object"}
        assert 0 <= point["pass_rate"] <= 1 and 0 < point["seconds_per_clip"] <= point["seconds_per_clip_max"]
    assert read_image(png).shape == (420, 720, 3)
    assert "fast_points" not in curve  # the tiny model has no few-step adapter


def test_interleaved_seconds_takes_turns_and_keeps_each_calls_fastest_round():
    from kinema.bench import _interleaved_seconds

    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in ("a", "b")}
    seconds = _interleaved_seconds(calls, rounds=3, per_round=2)
    assert set(seconds) == {"a", "b"} and all(0 <= s < 0.01 for s in seconds.values())
    # two warm-up calls each, then the rounds in turn: a a b b | a a b b | …
    assert order == ["a", "a", "b", "b"] + ["a", "a", "b", "b"] * 3
