import numpy as np
import pytest

from kinema.metrics.temporal import SEAM_FLOOR
from kinema.pipelines.loading import load
from kinema.train.evaluate_modes import (
    MODES,
    changed_prompt,
    evaluate_modes,
    object_box,
    passes_without_motion,
    seam,
)
from kinema.world import HELD_OUT_PAIRS, check, parse, render_frames

PROMPT = "a big green square moving right on a black background"


def test_seam_passes_a_smooth_join_and_fails_a_jump():
    frames = render_frames(parse(PROMPT), seed=3, frames=16, size=64)
    assert seam(frames, 8)["ok"]
    jumped = np.concatenate([frames[:8], frames[8:][::-1]])  # the object leaps at frame 8
    result = seam(jumped, 8)
    assert not result["ok"] and result["across"] > 1.5 * result["inner_median"]


def test_seam_of_a_still_clip_has_a_floor():
    still = render_frames(parse("a red circle staying still on a gray background"), seed=0, frames=8, size=64)
    nudged = still.copy()
    nudged[4:] = np.clip(nudged[4:].astype(int) + 1, 0, 255).astype(np.uint8)  # 1 level, invisible
    assert seam(nudged, 4)["inner_median"] == SEAM_FLOOR  # a still clip's steps count as the floor
    assert seam(nudged, 4)["ok"]
    shifted = np.clip(
        still.astype(int) + np.where(np.arange(8) >= 4, 3 * SEAM_FLOOR, 0)[:, None, None, None], 0, 255
    )
    assert not seam(shifted.astype(np.uint8), 4)["ok"]


def test_loop_seam_is_between_last_and_first():
    # frames 0..29 of a ping-pong clip loop seamlessly (period 30)
    frames = render_frames(parse(PROMPT), seed=1, frames=30, size=64)
    assert seam(frames, 30)["ok"]
    assert not seam(frames[:16], 16)["ok"]  # 15 back to 0: the object jumps across the canvas


@pytest.mark.parametrize("kind", ["colour", "shape", "background"])
def test_changed_prompt_changes_one_thing_and_keeps_the_motion(kind):
    for prompt in (PROMPT, "a small cyan circle moving up on a white background"):
        before, after = parse(prompt), parse(changed_prompt(prompt, kind))
        a, b = before.objects[0], after.objects[0]
        changes = {
            "colour": a.colour != b.colour,
            "shape": a.shape != b.shape,
            "background": before.background != after.background,
        }
        assert changes == {k: k == kind for k in changes}
        assert (a.motion, a.size) == (b.motion, b.size)
        assert (b.colour, b.shape) not in HELD_OUT_PAIRS and b.colour != after.background


def test_object_box_covers_the_whole_path_in_whole_cells():
    frames = render_frames(parse(PROMPT), seed=2, frames=16, size=64)
    region = object_box(frames, margin=4, factor=8)
    background = frames[0, 0, 0].astype(int)
    drawn = (np.abs(frames.astype(int) - background).max(axis=-1) > 8).any(axis=0)
    assert region[drawn].all() and not region.all()
    ys, xs = np.nonzero(region)
    assert ys.min() % 8 == 0 and xs.min() % 8 == 0 and (ys.max() + 1) % 8 == 0 and (xs.max() + 1) % 8 == 0


def test_passes_without_motion_ignores_direction_only():
    frames = render_frames(parse(PROMPT), seed=0, frames=16, size=64)
    reversed_prompt = PROMPT.replace("right", "left")
    assert not check(frames, reversed_prompt)["pass"]
    assert passes_without_motion(check(frames, reversed_prompt))
    assert not passes_without_motion(check(frames, PROMPT.replace("green", "orange")))
    assert not passes_without_motion(check(frames, PROMPT.replace("square", "triangle")))


def test_evaluate_modes_runs_every_mode_on_a_tiny_model(tiny_model):
    result = evaluate_modes(load(str(tiny_model)), n=1)
    assert set(result["modes"]) == set(MODES) and result["per_mode"] == 1
    for summary in result["modes"].values():
        assert summary["total"] == 1 and 0 <= summary["pass_rate"] <= 1
    # pixels outside the inpainted region are the input's, whatever the model
    assert result["modes"]["inpaint"]["outside_identical_rate"] == 1.0
    assert result["modes"]["outpaint"]["original_in_place_rate"] == 1.0
    assert np.isfinite(result["modes"]["image_to_video"]["first_frame_psnr_median"])


def test_evaluate_modes_refuses_an_unknown_mode(tiny_model):
    with pytest.raises(ValueError, match="unknown modes"):
        evaluate_modes(load(str(tiny_model)), n=1, modes=("teleport",))


def test_eval_modes_command_prints_a_table_and_json(tiny_model, capsys):
    import json

    from kinema.cli import main

    with pytest.raises(SystemExit) as info:
        main(["eval", "--modes", "--prompts", "1", "--model", str(tiny_model), "--steps", "1"])
    out, err = capsys.readouterr()
    assert info.value.code == 0, err
    assert set(json.loads(out)["modes"]) == set(MODES)
    assert all(mode in err for mode in MODES)


def test_bench_lengths_refuses_memory_options(capsys):
    from kinema.cli import main

    with pytest.raises(SystemExit) as info:
        main(["bench", "--lengths", "--memory"])
    _, err = capsys.readouterr()
    assert info.value.code == 2 and "--lengths" in err
