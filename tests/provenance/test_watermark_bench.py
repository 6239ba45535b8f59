"""The watermark benchmark: attacks, the visibility measure, the robustness table and the
false-positive count (on world renders standing in for model clips: the machinery)."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.io import Video
from kinema.provenance import watermark_bench as bench
from kinema.world import Scene, WorldObject, parse, render_frames

PROMPTS = [
    "a red circle moving right on a black background",
    "a blue square moving up on a gray background",
]


def world(index: int, size: int) -> Video:
    prompt = PROMPTS[index % len(PROMPTS)]
    return Video(render_frames(parse(prompt), seed=index, frames=8, size=size), 8.0)


def on(index: int, background: str, size: int) -> Video:
    scene = Scene((WorldObject(colour="red", shape="circle", motion="moving right"),), background)
    return Video(render_frames(scene, seed=index, frames=4, size=size), 8.0)


def test_attack_helpers_do_what_they_say(tmp_path):
    clip = world(0, 64)
    assert bench.crop(clip, corner=True, resize_back=False).frames.shape == (8, 58, 58, 3)
    centred = bench.ATTACKS["crop10_center"](clip, tmp_path).frames
    assert centred.shape == (8, 58, 58, 3) and np.array_equal(centred, clip.frames[:, 3:61, 3:61])
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
    assert set(bench.REQUIRED_ATTACKS) <= set(bench.ATTACKS)


def test_flat_pixels_keep_4_px_from_content_and_the_residual_is_a_high_pass():
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[10:14, 10:14] = 200  # content: more than 30 levels from the black border
    flat = bench.flat_mask(frame)
    assert not flat[12, 12] and not flat[12, 16] and flat[12, 17] and flat[0, 0]  # 3 and 4 px away
    assert bench.flat_mask(np.full((8, 8, 3), 77, np.uint8)).all()
    # a flat frame has no residual; a checkerboard's is large
    still = Video(np.full((2, 32, 32, 3), 128, np.uint8))
    checker = ((np.indices((32, 32)).sum(0) % 2) * 4 + 126).astype(np.uint8)
    speckled = Video(np.repeat(np.repeat(checker[None, ..., None], 3, -1), 2, 0))
    seen = bench.visibility(still, speckled)
    assert seen["residual_unmarked"] == 0 and seen["residual_marked"] > 1.5
    assert seen["flat_pixels"] == 2 * 32 * 32 and seen["psnr_db"] == pytest.approx(42.11, abs=0.01)  # ±2


def test_robustness_rows_measure_each_attack_and_the_visibility_of_each_background():
    rows, seen = bench.robustness(
        on, backgrounds=("black", "white"), sizes=(64,), clips=2, attacks=["none", "h264_crf30", "gif"]
    )
    assert [(r["background"], r["attack"]) for r in rows] == [
        (bg, a) for bg in ("black", "white") for a in ("none", "h264_crf30", "gif")
    ]
    for r in rows:
        assert r["clips"] == 2 and r["size"] == 64 and r["payload_bits"] == 32
        assert r["detection_rate"] == r["payload_valid_rate"] == r["exact_payload_rate"] == 1.0
        assert r["bit_accuracy"] == 1.0 and r["wrong_payloads"] == 0 and r["failed_clips"] == []
    assert [(v["background"], v["size"]) for v in seen] == [("black", 64), ("white", 64)]
    for v in seen:
        assert v["psnr_db"] >= 40.0 and v["residual_marked"] <= 1.0 and v["flat_pixels"] > 0
        assert v["residual_increase"] == pytest.approx(
            v["residual_marked"] - v["residual_unmarked"], abs=2e-3
        )


def test_an_erased_mark_counts_as_a_failure_with_chance_bit_accuracy():
    # a white background times 1.2 saturates: the mark is gone, and the table says so
    def white(index: int, background: str, size: int) -> Video:
        return Video(np.full((4, size, size, 3), 255, np.uint8), 8.0)

    rows, _ = bench.robustness(white, ("white",), sizes=(64,), clips=3, attacks=["brightness_1.2"])
    (row,) = rows
    assert row["detection_rate"] == 0.0 and row["exact_payload_rate"] == 0.0
    assert row["failed_clips"] == [0, 1, 2] and row["wrong_payloads"] == 0
    assert 0.2 < row["bit_accuracy"] < 0.8


def test_false_positives_count_trials_and_stay_below_the_threshold():
    result = bench.false_positives(world, sizes=(64,), clips=2, keys=5)
    assert result["trials"] == 2 * 2 * 5 and result["detections"] == 0 and result["rate"] == 0.0
    (size,) = result["sizes"]
    assert size["max_score"] < size["threshold"] and result["max_margin_below_threshold"] > 0
    assert size["max_score"] == max(size["max_score_unmarked"], size["max_score_other_key"])


def test_run_reports_all_three_with_the_acceptance_checks_and_progress_reaches_the_end():
    seen = []
    result = bench.run(
        on,
        world,
        clips=1,
        sizes=(64,),
        backgrounds=("gray",),
        fp_keys=2,
        progress=lambda d, t: seen.append((d, t)),
    )
    w = result["watermark"]
    assert w["algorithm"] == "org.kinema.watermark.v4"
    assert len(w["robustness"]) == len(bench.REQUIRED_ATTACKS) and w["false_positives"]["trials"] == 4
    assert [v["background"] for v in w["visibility"]] == ["gray"]
    checks = w["acceptance"]
    # one residual and one increase and one PSNR check, every attack, no FP, no wrong payload
    assert checks["checks"] == 3 + len(bench.REQUIRED_ATTACKS) + 2
    assert checks["passed"] + len(checks["failed"]) == checks["checks"]
    assert seen[-1] == (2, 2)


def test_refusals():
    with pytest.raises(ValueError, match="unknown attack 'blur'"):
        bench.robustness(on, clips=1, attacks=["blur"])
    with pytest.raises(ValueError, match="clips"):
        bench.robustness(on, clips=0)
    with pytest.raises(ValueError, match="keys"):
        bench.false_positives(world, clips=1, keys=0)
