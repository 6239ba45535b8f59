"""The watermark benchmark: attacks, the robustness table and the false-positive count."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.io import Video
from kinema.provenance import watermark_bench as bench
from kinema.world import parse, render_frames

PROMPTS = [
    "a red circle moving right on a black background",
    "a blue square moving up on a gray background",
]


def world(index: int, size: int) -> Video:
    prompt = PROMPTS[index % len(PROMPTS)]
    return Video(render_frames(parse(prompt), seed=index, frames=8, size=size), 8.0)


def test_attack_helpers_do_what_they_say(tmp_path):
    clip = world(0, 64)
    assert bench.crop(clip, corner=True, resize_back=False).frames.shape == (8, 58, 58, 3)
    assert bench.crop(clip, corner=False, resize_back=True).frames.shape == clip.frames.shape
    assert bench.resize_half(clip).frames.shape == clip.frames.shape
    dropped = bench.drop_every_other(clip)
    assert dropped.num_frames == 4 and dropped.fps == 4.0
    assert np.array_equal(dropped.frames, clip.frames[::2])
    bright = bench.brightness(Video(np.full((1, 8, 8, 3), 250, np.uint8)), 1.2)
    assert bright.frames.max() == 255 and bench.brightness(bright, 0.8).frames.max() == 204
    for name in ("h264_crf30", "vp9", "gif"):  # through real files
        out = bench.ATTACKS[name](clip, tmp_path)
        assert out.frames.shape == clip.frames.shape
        # codecs are lossy; a few flat colours fit a GIF palette exactly
        assert np.array_equal(out.frames, clip.frames) == (name == "gif")


def test_robustness_rows_measure_each_attack():
    rows = bench.robustness(world, sizes=(64,), clips=2, attacks=["none", "h264_crf23", "crop10_corner"])
    assert [r["attack"] for r in rows] == ["none", "h264_crf23", "crop10_corner"]
    for r in rows:
        assert r["clips"] == 2 and r["size"] == 64
        assert r["detection_rate"] == r["payload_valid_rate"] == r["exact_payload_rate"] == 1.0
        assert r["bit_accuracy"] == 1.0 and r["wrong_payloads"] == 0 and r["failed_clips"] == []
        assert r["min_psnr_db"] >= 38.0 and r["min_score"] > r["threshold"]


def test_an_erased_mark_counts_as_a_failure_with_chance_bit_accuracy():
    # a white background times 1.2 saturates: the mark is gone, and the table says so
    def white(index: int, size: int) -> Video:
        return Video(np.full((4, size, size, 3), 255, np.uint8), 8.0)

    (row,) = bench.robustness(white, sizes=(64,), clips=3, attacks=["brightness_1.2"])
    assert row["detection_rate"] == 0.0 and row["exact_payload_rate"] == 0.0
    assert row["failed_clips"] == [0, 1, 2] and row["wrong_payloads"] == 0
    assert 0.2 < row["bit_accuracy"] < 0.8


def test_false_positives_count_trials_and_stay_below_the_threshold():
    result = bench.false_positives(world, sizes=(64,), clips=2, keys=5)
    assert result["trials"] == 2 * 2 * 5 and result["detections"] == 0 and result["rate"] == 0.0
    (size,) = result["sizes"]
    assert size["max_score"] < size["threshold"] and result["max_margin_below_threshold"] > 0
    assert size["max_score"] == max(size["max_score_unmarked"], size["max_score_other_key"])


def test_run_reports_both_and_progress_reaches_the_end():
    seen = []
    result = bench.run(world, clips=1, sizes=(64,), fp_keys=2, progress=lambda d, t: seen.append((d, t)))
    w = result["watermark"]
    assert len(w["robustness"]) == len(bench.ATTACKS) and w["false_positives"]["trials"] == 4
    assert w["summary"]["wrong_payloads"] == 0 and w["summary"]["min_psnr_db"] >= 38.0
    assert seen[-1] == (2, 2)


def test_refusals():
    with pytest.raises(ValueError, match="unknown attack 'blur'"):
        bench.robustness(world, clips=1, attacks=["blur"])
    with pytest.raises(ValueError, match="clips"):
        bench.robustness(world, clips=0)
    with pytest.raises(ValueError, match="keys"):
        bench.false_positives(world, clips=1, keys=0)
