import math

import numpy as np
import pytest

from kinema.world import BACKGROUNDS, COLOURS, parse, ping_pong, render_frames, sample_layout
from kinema.world.render import coverage


def test_same_seed_same_clip_and_other_seed_other_layout():
    scene = parse("a red circle moving right on a black background")
    a = render_frames(scene, seed=7)
    assert np.array_equal(a, render_frames(scene, seed=7))
    assert not np.array_equal(a, render_frames(scene, seed=8))
    assert a.shape == (16, 64, 64, 3) and a.dtype == np.uint8


def test_ping_pong_rule():
    assert [ping_pong(t) for t in (0, 15, 16, 29, 30, 45)] == [0, 1, 14 / 15, 1 / 15, 0, 1]
    scene = parse("a blue square moving up on a white background")
    clip = render_frames(scene, seed=1, frames=61)
    for k in range(1, 15):
        assert np.array_equal(clip[15 + k], clip[15 - k])
    assert np.array_equal(clip[30], clip[0]) and np.array_equal(clip[60], clip[0])
    window = render_frames(scene, seed=1, frames=10, start=12)
    assert np.array_equal(window, clip[12:22])


def test_layout_ranges_follow_world_md():
    for seed in range(50):
        (right,) = sample_layout(parse("a red circle moving right on a black background"), seed)
        assert 0.2 <= right.start[0] <= 0.3 and math.isclose(right.end[0], 1 - right.start[0])
        assert 0.3 <= right.start[1] <= 0.7 and right.start[1] == right.end[1]
        (up,) = sample_layout(parse("a red circle moving up on a black background"), seed)
        assert 0.7 <= up.start[1] <= 0.8 and 0.3 <= up.start[0] <= 0.7
        (grow,) = sample_layout(parse("a small red circle growing on a black background"), seed)
        assert math.isclose(grow.start[2], 0.6 * 0.16) and math.isclose(grow.end[2], 1.4 * 0.16)
        left, right2 = sample_layout(
            parse("a red circle moving down and a blue square shrinking on a gray background"), seed
        )
        assert left.start[0] == 0.25 and right2.start[0] == 0.75
        assert 0.2 <= left.start[1] <= 0.3 and math.isclose(right2.start[2], 1.4 * 0.22)


@pytest.mark.parametrize("shape, area", [("circle", math.pi / 4), ("square", 1.0), ("triangle", 0.5)])
def test_supersampled_coverage_has_the_exact_area(shape, area):
    d = 20.3
    _, _, cov = coverage(shape, 31.7, 30.2, d, 64)
    assert cov.sum() == pytest.approx(area * d * d, rel=0.025)  # 4x supersampling
    assert ((cov > 0) & (cov < 1)).any()  # anti-aliased edges


def test_triangle_apex_up_and_bounding_box_centred():
    rows, cols, cov = coverage("triangle", 32, 32, 32, 64)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (16, 48, 16, 48)
    assert cov[0].sum() < 1.0 and cov[-1].sum() > 30  # narrow top, full base


def test_palette_colours_and_background_exact():
    clip = render_frames(parse("a big cyan square staying still on a gray background"), seed=0, size=128)
    assert tuple(clip[0, 0, 0]) == BACKGROUNDS["gray"]
    (path,) = sample_layout(parse("a big cyan square staying still on a gray background"), 0)
    cy, cx = int(path.start[1] * 128), int(path.start[0] * 128)
    assert tuple(clip[0, cy, cx]) == COLOURS["cyan"]


@pytest.mark.parametrize("size", [16, 17, 99, 256])
def test_any_size(size):
    clip = render_frames(parse("a red circle moving left on a black background"), frames=2, size=size)
    assert clip.shape == (2, size, size, 3)


def test_refuses_bad_sizes_and_frame_counts():
    scene = parse("a red circle moving left on a black background")
    with pytest.raises(ValueError):
        render_frames(scene, size=7)
    with pytest.raises(ValueError):
        render_frames(scene, frames=0)
