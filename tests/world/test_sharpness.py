"""The corner and edge measure: fill ratio per frame, its spread, edge jitter."""

import numpy as np
import pytest

from kinema.io import Video, read_video
from kinema.world import clip_sharpness, parse, render_frames
from kinema.world.sharpness import summarise
from tests.world.drawing import draw

SQUARE = "a green square moving down on a white background"


def test_the_renderers_squares_are_crisp_before_and_after_h264(tmp_path):
    clip = render_frames(parse(SQUARE), seed=3)
    Video(clip).save(tmp_path / "clip.mp4")
    for frames in (clip, read_video(tmp_path / "clip.mp4").frames):
        (square,) = clip_sharpness(frames, SQUARE)["objects"]
        assert square["object"] == "green square" and square["measured_frames"] == 16
        assert square["fill_mean"] > 0.97 and square["fill_spread"] < 0.03
        # 4× supersampling puts edges on quarter pixels: a tenth of a pixel of jitter
        assert square["edge_jitter_px"] < 0.2


def test_corners_that_come_and_go_spread_the_fill():
    frames = draw([[("circle" if t in (5, 11) else "square", "red", 0.5, 0.5, 0.22)] for t in range(16)])
    (square,) = clip_sharpness(frames, "a red square staying still on a black background")["objects"]
    assert square["fill"][5] == pytest.approx(np.pi / 4, abs=0.03) and square["fill"][0] == 1.0
    assert square["fill_spread"] > 0.18 and square["fill_std"] > 0.05


def test_wobbling_edges_raise_the_jitter():
    still = "a red square staying still on a black background"
    steady = draw([[("square", "red", 0.5, 0.5, 0.22)] for _ in range(16)])
    wobbly = draw([[("square", "red", 0.5, 0.5, 0.22 + 0.03 * (t % 2))] for t in range(16)])
    calm = clip_sharpness(steady, still)["objects"][0]["edge_jitter_px"]
    shaky = clip_sharpness(wobbly, still)["objects"][0]["edge_jitter_px"]
    assert calm < 0.05 and shaky > 0.8


def test_missing_and_tiny_frames_are_not_measured():
    prompt = "a small blue circle growing on a black background"
    clip = render_frames(parse(prompt), seed=1)  # 6 px at first: too small to measure
    clip[15] = 0
    (circle,) = clip_sharpness(clip, prompt)["objects"]
    assert circle["fill"][0] is None and circle["fill"][15] is None and circle["found_frames"] == 15
    assert 0 < circle["measured_frames"] < 15
    blank = clip_sharpness(np.zeros_like(clip), prompt)["objects"][0]
    assert blank["measured_frames"] == 0 and blank["fill_mean"] is None and blank["edge_jitter_px"] is None


def test_summarise_averages_per_shape():
    two = "a red square staying still and a cyan circle moving up on a black background"
    measures = [clip_sharpness(render_frames(parse(two), seed=s), two) for s in (1, 2)]
    summary = summarise(measures)
    assert summary["square"]["objects"] == 2 and summary["circle"]["objects"] == 2
    assert summary["triangle"] == {
        "objects": 0,
        "fill_mean": None,
        "fill_spread_mean": None,
        "fill_std_mean": None,
        "edge_jitter_px_mean": None,
    }
    spreads = [m["objects"][0]["fill_spread"] for m in measures]
    assert summary["square"]["fill_spread_mean"] == pytest.approx(np.mean(spreads), abs=1e-3)
