import json

import numpy as np
import pytest

from kinema.errors import InputError
from kinema.pipelines.motion_track import (
    MotionTrack,
    check_path_length,
    object_box,
    read_path,
    track_masks,
    track_of_clip,
    track_of_path,
)
from kinema.world import parse, render_frames
from kinema.world.render import render_track
from kinema.world.scene import BACKGROUNDS


@pytest.mark.parametrize("background", list(BACKGROUNDS))
@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_the_preprocessor_reads_box_centre_and_extent(shape, background):
    states = np.array([[0.3, 0.6, 0.22], [0.52, 0.41, 0.3], [0.7, 0.25, 0.16]], np.float32)
    frames = render_track(shape, (30, 60, 220), BACKGROUNDS[background], states, 64)
    track = track_of_clip(frames)
    assert (
        np.abs(track.states[:, :2] - states[:, :2]).max() < 0.01
    )  # a triangle's box centre, not its centroid
    assert np.abs(track.states[:, 2] - states[:, 2]).max() < (0.03 if shape == "triangle" else 0.01)


def test_frames_without_the_object_hold_the_nearest_found_state():
    states = np.array(
        [[0.5, 0.5, 0.2], [1.5, 0.5, 0.2], [0.3, 0.4, 0.2]], np.float32
    )  # frame 1 off the canvas
    track = track_of_clip(render_track("circle", (220, 30, 30), (0, 0, 0), states, 64))
    assert np.allclose(track.states[1], track.states[0])
    assert abs(track.states[2, 0] - 0.3) < 0.01


def test_a_clip_with_no_object_or_with_two_is_refused():
    with pytest.raises(InputError, match="shows no object"):
        track_of_clip(np.full((4, 64, 64, 3), 128, np.uint8))
    two = render_frames(
        parse("a red circle moving up and a blue square staying still on a black background"), 1
    )
    with pytest.raises(InputError, match="several objects"):
        track_of_clip(two, source="the control clip 'x.mp4'")


def test_a_path_is_lines_between_its_points_held_at_the_ends():
    track = track_of_path([(2, 0.2, 0.3), (6, 0.6, 0.3), (10, 0.6, 0.7)], 14, 0.3)
    assert track.frames == 14
    assert np.allclose(track.states[:3, :2], [0.2, 0.3])  # held before the first point
    assert np.allclose(track.states[4, :2], [0.4, 0.3])  # halfway along the first line
    assert np.allclose(track.states[10:, :2], [0.6, 0.7])  # held after the last
    assert np.allclose(track.states[:, 2], 0.3)
    assert np.allclose(track.cut(20).states[-1], track.states[-1])


def _path(tmp_path, data) -> str:
    path = tmp_path / "path.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    "data, message",
    [
        ("{not json", "is not JSON"),
        ([[0, 0.5, 0.5]], "needs"),
        ({"points": []}, "has no points"),
        ({"points": [[0, 0.5]]}, "point 1: a point is"),
        ({"points": [[0.5, 0.5, 0.5]]}, "point 1: the frame must be an integer"),
        ({"points": [[-1, 0.5, 0.5]]}, "the frame must be an integer"),
        ({"points": [[0, 1.2, 0.5]]}, "x 1.2 is outside the canvas"),
        ({"points": [[0, 0.5, "up"]]}, "y must be a number"),
        ({"points": [[0, 0.5, 0.5], [0, 0.6, 0.5]]}, "point 2: frames must ascend strictly"),
        ('{"points": [[0, NaN, 0.5]]}', "x must be a number"),
    ],
)
def test_bad_paths_are_refused_with_the_fault_named(tmp_path, data, message):
    with pytest.raises(InputError, match=message):
        read_path(_path(tmp_path, data))


def test_a_missing_path_file_and_a_path_longer_than_the_clip_are_refused(tmp_path):
    with pytest.raises(InputError, match="cannot read the path"):
        read_path(tmp_path / "none.json")
    points = read_path(_path(tmp_path, {"points": [[0, 0.1, 0.1], [16, 0.9, 0.9]]}))
    check_path_length(points, 17)
    with pytest.raises(InputError, match="point at frame 16; the clip's last frame is 15"):
        check_path_length(points, 16)


def test_the_signal_is_a_soft_blob_as_wide_as_the_extent_at_the_centre():
    masks = track_masks(MotionTrack(np.array([[0.25, 0.75, 0.5], [0.5, 0.5, 0.25]], np.float32)), 64, 64)
    assert masks.shape == (2, 64, 64) and masks.max() <= 1
    ys, xs = np.nonzero(masks[0] > 0.5)
    assert abs(xs.mean() + 0.5 - 16) < 0.5 and abs(ys.mean() + 0.5 - 48) < 0.5
    # at the object's edge (half the extent from the centre) the blob has fallen to e^-2
    assert abs(masks[0, 48, 16 + 16] - np.exp(-2 * (16.5 / 16) ** 2)) < 0.02
    assert masks[0].sum() > 3.5 * masks[1].sum()  # twice as wide: four times the weight
    assert object_box(np.repeat((masks[0] * 255).astype(np.uint8)[..., None], 3, axis=2))[1] == 1
