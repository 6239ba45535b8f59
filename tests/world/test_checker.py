"""Render → encode → decode → check, for every word of the world, in every format;
and clips that break the prompt fail for the reason they break it."""

import itertools

import cv2
import numpy as np
import pytest

from kinema.io import Video, read_video
from kinema.world import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    SHAPES,
    TWO_OBJECT_MOTIONS,
    Scene,
    WorldObject,
    check,
    format_prompt,
    parse,
    render_frames,
)

SIZE_WORDS = (None, "small", "big")


def _one_object_cover():
    """Every colour × shape × motion, cycling backgrounds and size words through them."""
    for i, (colour, shape, motion) in enumerate(itertools.product(COLOURS, SHAPES, MOTIONS)):
        bg = list(BACKGROUNDS)[i % 3]
        size = SIZE_WORDS[(i // 3) % 3]
        yield Scene((WorldObject(colour, shape, motion, size),), bg)


def _two_object_cover():
    colours = list(COLOURS)
    for i, (m1, m2) in enumerate(itertools.product(TWO_OBJECT_MOTIONS, TWO_OBJECT_MOTIONS)):
        c1, c2 = colours[i % 7], colours[(i + 3) % 7]
        yield Scene(
            (WorldObject(c1, SHAPES[i % 3], m1), WorldObject(c2, SHAPES[(i + 1) % 3], m2)),
            list(BACKGROUNDS)[i % 3],
        )


def _small_cover():
    """Each colour, shape, size word, motion and background at least once."""
    for i in range(7):
        yield Scene(
            (WorldObject(list(COLOURS)[i], SHAPES[i % 3], MOTIONS[i], SIZE_WORDS[i % 3]),),
            list(BACKGROUNDS)[i % 3],
        )
    yield from itertools.islice(_two_object_cover(), 0, 25, 6)


def _round_trip(scene, path, seed):
    Video(render_frames(scene, seed=seed)).save(path)
    return check(read_video(path).frames, format_prompt(scene))


def test_every_word_passes_after_h264(tmp_path):
    failures = []
    scenes = list(_one_object_cover()) + list(_two_object_cover())
    for seed, scene in enumerate(scenes):
        report = _round_trip(scene, tmp_path / "clip.mp4", seed)
        if not report["pass"]:
            failures.append((format_prompt(scene), report["reasons"]))
    assert not failures, failures[:5]


@pytest.mark.parametrize("name", ["clip.webm", "clip.gif", "frames"])
def test_other_formats_pass(tmp_path, name):
    for seed, scene in enumerate(_small_cover()):
        report = _round_trip(scene, tmp_path / name, seed)
        assert report["pass"], (format_prompt(scene), report["reasons"])


def test_slightly_blurred_or_noisy_clips_still_pass():
    rng = np.random.default_rng(0)
    for seed, scene in enumerate(_small_cover()):
        clip = render_frames(scene, seed=seed)
        blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 0.7) for f in clip])
        noisy = np.clip(clip + rng.normal(0, 6, clip.shape), 0, 255).astype(np.uint8)
        for frames in (blurred, noisy):
            report = check(frames, scene)
            assert report["pass"], (format_prompt(scene), report["reasons"])


def test_report_carries_measured_values():
    prompt = "a big red circle moving right on a black background"
    report = check(render_frames(parse(prompt), seed=3), prompt)
    (obj,) = report["objects"]
    assert report["pass"] and report["reasons"] == []
    assert obj["shape"]["nearest"] == "circle" and 0.7 < obj["shape"]["fill_ratio"] < 0.87
    assert obj["motion"]["seen"] == "moving right" and obj["motion"]["dx"] > 0.35
    assert obj["size"]["nearest"] == "big" and obj["size"]["ok"]
    assert report["background"]["nearest"] == "black" and report["background"]["flicker"] == 0
    assert report["extra_objects"] == [] and report["identity"]["ok"]


# ---------------------------------------------------------------- broken clips


PROMPT = "a green square moving down on a white background"


def _clip(prompt=PROMPT, seed=4, frames=16):
    return render_frames(parse(prompt), seed=seed, frames=frames)


def _encoded(frames, tmp_path):
    Video(frames).save(tmp_path / "broken.mp4")
    return read_video(tmp_path / "broken.mp4").frames


def test_wrong_colour_fails_for_colour(tmp_path):
    frames = _encoded(_clip("a purple square moving down on a white background"), tmp_path)
    reasons = check(frames, PROMPT)["reasons"]
    # the purple square stands where the green one should be: a colour failure, not an extra
    assert len(reasons) == 1 and "green square): colour reads as purple in frames 0-15" in reasons[0]
    assert "expected green" in reasons[0]


def test_reversed_motion_fails_for_direction(tmp_path):
    frames = _encoded(_clip()[::-1], tmp_path)
    reasons = check(frames, PROMPT)["reasons"]
    assert len(reasons) == 1 and "moving up" in reasons[0] and "expected moving down" in reasons[0]


def test_wrong_shape_fails_for_shape(tmp_path):
    frames = _encoded(_clip("a green triangle moving down on a white background"), tmp_path)
    reasons = check(frames, PROMPT)["reasons"]
    assert len(reasons) == 1 and "looks like a triangle" in reasons[0] and "expected square" in reasons[0]


def test_frozen_frames_fail_as_frozen(tmp_path):
    clip = _clip()
    clip[5:11] = clip[5]
    reasons = check(_encoded(clip, tmp_path), PROMPT)["reasons"]
    assert len(reasons) == 1 and "frozen" in reasons[0]
    still = np.repeat(_clip()[:1], 16, axis=0)
    reasons = check(_encoded(still, tmp_path), PROMPT)["reasons"]
    assert len(reasons) == 1 and "moves too little" in reasons[0]


def test_extra_object_fails_as_extra(tmp_path):
    clip = _clip()
    clip[:, 2:9, 2:9] = COLOURS["blue"]
    reasons = check(_encoded(clip, tmp_path), PROMPT)["reasons"]
    assert len(reasons) == 1 and "extra blue object" in reasons[0] and "frames 0-15 of 16" in reasons[0]


def test_wrong_background_and_flicker(tmp_path):
    reasons = check(_clip("a green square moving down on a gray background"), PROMPT)["reasons"]
    assert len(reasons) == 1 and "background looks gray" in reasons[0]
    flicker = _clip()
    flicker[::2] = (flicker[::2] * 0.8).astype(np.uint8)
    reasons = " ".join(check(flicker, PROMPT)["reasons"])
    assert "background flickers" in reasons


def test_wrong_size_and_wrong_half(tmp_path):
    reasons = check(
        _clip("a small red circle staying still on a black background"),
        "a big red circle staying still on a black background",
    )["reasons"]
    assert len(reasons) == 1 and "expected big" in reasons[0]
    two = "a red circle staying still and a blue square staying still on a black background"
    swapped = "a blue square staying still and a red circle staying still on a black background"
    reasons = " ".join(check(_clip(swapped), two)["reasons"])
    assert "not found" in reasons and "extra" in reasons


def test_identity_change_midway_fails():
    clip = _clip()
    clip[8:] = _clip("a green circle moving down on a white background")[8:]
    report = check(clip, PROMPT)
    assert not report["pass"] and "looks like a circle in frames 8-15 (8 of 16 measured frames" in " ".join(
        report["reasons"]
    )
    assert report["objects"][0]["shape"]["failing_frames"] == list(range(8, 16))


def test_short_clips_shrink_thresholds_and_tiny_ones_skip_motion():
    for frames in (5, 8):
        assert check(_clip(frames=frames), PROMPT)["pass"]
    report = check(_clip(frames=3), PROMPT)
    assert report["pass"] and report["objects"][0]["motion"]["judged"] is False
    report = check(_clip(frames=1), PROMPT)
    assert report["pass"]


def test_long_clips_judged_on_the_first_sixteen_frames():
    assert check(_clip(frames=64), PROMPT)["pass"]
