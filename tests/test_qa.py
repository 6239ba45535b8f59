"""clip_qa: the temporal measures plus, for a shapes-world prompt, the world checker's verdict."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from kinema.io import Video, read_image
from kinema.metrics import draw_report, qa
from kinema.qa import clip_qa
from tests.metrics.test_temporal import N_CLIPS, clean_clip, clean_set, flicker, parse_scene, render

MOVING = "a red circle moving right on a black background"


@pytest.fixture(autouse=True)
def _single_thread():
    cv2.setNumThreads(1)


def test_a_world_prompt_adds_the_checker_verdict():
    video = Video(render(parse_scene(MOVING), 0, 0).astype(np.uint8))
    result = clip_qa(video, MOVING)
    assert list(result) == ["frames", "size", "fps", "metrics", "world", "prompt", "flags", "vbench"]
    assert result["world"]["pass"] and result["flags"] == [] and result["prompt"] == MOVING
    temporal = qa(video, expect_static=False)  # a moving prompt: a static clip would be wrong
    assert result["metrics"] == temporal["metrics"] and result["vbench"] == temporal["vbench"]
    json.dumps(result)


def test_a_still_prompt_expects_a_static_clip():
    prompt = "a green square staying still on a gray background"
    still = Video(render(parse_scene(prompt), 3, 0).astype(np.uint8))
    assert qa(still)["metrics"]["dynamic_degree"]["flag"]  # static, on its own
    dynamic = clip_qa(still, prompt)["metrics"]["dynamic_degree"]
    assert not dynamic["flag"] and dynamic["expected_static"] is True
    moving = Video(
        render(parse_scene("a green square moving up on a gray background"), 3, 0).astype(np.uint8)
    )
    assert clip_qa(moving, prompt)["metrics"]["dynamic_degree"]["flag"]


@pytest.mark.parametrize("shape", [(1, 20, 30), (5, 37, 53)])
def test_a_prompt_outside_the_world_is_noted_not_refused(shape):
    frames = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    result = clip_qa(Video(frames), prompt="not a world prompt")
    assert result["world"] is None and result["world_note"].startswith("not a shapes-world prompt")
    assert list(result) == [
        "frames",
        "size",
        "fps",
        "metrics",
        "world",
        "prompt",
        "world_note",
        "flags",
        "vbench",
    ]
    assert "expected_static" not in result["metrics"]["dynamic_degree"]
    json.dumps(result)


def test_without_a_prompt_it_is_the_temporal_qa():
    video = Video(render(parse_scene(MOVING), 1, 0).astype(np.uint8))
    result = clip_qa(video)
    assert result["world"] is None and "prompt" not in result and "world_note" not in result
    assert {k: v for k, v in result.items() if k != "world"} == qa(video)


def test_clean_world_clips_pass_the_checker(tmp_path):
    # the world checker judges motion over frames 0..15: only clips that start at frame 0
    clips = clean_set(tmp_path)
    from_start = [clips[i] for i in range(N_CLIPS) if clean_clip(i)[2] == 0]
    assert np.mean([clip_qa(video, prompt)["world"]["pass"] for video, prompt in from_start]) >= 0.9


def test_the_report_names_the_world_verdict(tmp_path):
    frames = np.clip(flicker(parse_scene(MOVING), 0, 0, np.random.default_rng(0)), 0, 255).astype(np.uint8)
    video = Video(frames)
    result = clip_qa(video, MOVING)
    image = read_image(draw_report(video, result, tmp_path / "report.png"))
    assert image.shape[0] >= 7 * 76 and result["world"] is not None
