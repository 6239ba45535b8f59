"""Loops on the diffusers backends: closed with keyframes where a family places them (Wan
I2V first–last, Wan VACE, LTX-Video's condition pipeline), refused in one line elsewhere.

A loop of N frames is the first N frames of a clip of N + 1 whose last keyframe is its
first image: the frame after the clip's last is its first. Random weights draw no motion
to judge a seam by, so the tests hold the construction and, where VACE keeps the images
exactly, that the seam is the model's own last step."""

import numpy as np
import pytest

from kinema.errors import InputError
from kinema.io import read_video, write_png
from kinema.pipelines.backends import load_backend
from kinema.provenance.verify import verify_file
from tests.pipelines.backends.test_backends import PROMPT, run


def _image():
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = (220, 40, 40)
    return image


def _steps(frames: np.ndarray) -> np.ndarray:
    """Mean absolute change from each frame to the next."""
    return np.abs(np.diff(frames.astype(float), axis=0)).mean(axis=(1, 2, 3))


# (folder, with a first image): the request layer's loops are whole periods of 30 frames
LOOPS = [("wan-i2v", True), ("wan-vace", False), ("wan-vace", True), ("ltx", False), ("ltx-condition", True)]


@pytest.mark.parametrize("kind,with_image", LOOPS, ids=[f"{k}-{'image' if i else 'text'}" for k, i in LOOPS])
def test_loop_through_the_cli(capsys, tmp_path, tiny_folders, kind, with_image):
    image = ["--image", write_png(_image(), tmp_path / "first.png")] if with_image else []
    out = tmp_path / "loop.mp4"
    code, _, err = run(
        capsys, "generate", PROMPT, "-o", out, "--model", tiny_folders[kind], "--loop", "--frames", 30,
        "--size", 64, "--steps", 2, "--seed", 1, *image,
    )  # fmt: skip
    assert code == 0, err
    video = read_video(out)
    assert (video.num_frames, video.width, video.height) == (30, 64, 64)
    assert verify_file(out)["c2pa"]["state"] == "Trusted"


@pytest.mark.parametrize("kind", ["wan-i2v", "wan-vace", "ltx"])
def test_a_loop_is_a_clip_one_longer_that_ends_on_its_first_frame(tiny_folders, kind):
    backend = load_backend(tiny_folders[kind])
    image, options = _image(), {"size": 64, "steps": 2, "seed": 3}
    loop = backend(PROMPT, frames=9, keyframes={0: image}, loop=True, **options).frames
    closed = backend(PROMPT, frames=10, keyframes={0: image}, last_image=image, **options).frames
    assert loop.shape == (9, 64, 64, 3) and np.array_equal(loop, closed[:-1])


def test_vace_closes_the_loop_exactly(tiny_folders):
    # VACE keeps its keyframes exactly, so the frame after the loop's last is its first, and
    # the seam (last to first) is the model's own step into that frame: never larger than
    # the clip's largest step
    backend = load_backend(tiny_folders["wan-vace"])
    options = {"size": 64, "steps": 2, "seed": 3}
    for keyframes in ({}, {0: _image()}):
        loop = backend(PROMPT, frames=9, keyframes=keyframes, loop=True, **options).frames
        first = loop[0]
        closed = backend(PROMPT, frames=10, keyframes={0: first}, last_image=first, **options).frames
        assert np.array_equal(closed[-1], first)
        seam = np.abs(loop[-1].astype(float) - loop[0]).mean()
        assert seam == pytest.approx(_steps(closed)[-1]) and seam <= _steps(loop).max()


def test_a_text_loop_starts_from_the_models_own_first_frame(tiny_folders):
    backend = load_backend(tiny_folders["ltx"])
    options = {"size": 64, "steps": 2, "seed": 3}
    still = backend(PROMPT, frames=1, **options).frames[0]
    loop = backend(PROMPT, frames=9, loop=True, **options).frames
    closed = backend(PROMPT, frames=10, keyframes={0: still}, last_image=still, **options).frames
    assert np.array_equal(loop, closed[:-1])


@pytest.mark.parametrize(
    "kind,args,message",
    [
        ("wan", [], "the model wan does not do loops (loop); it serves t2v, remix"),
        ("cogvideox-i2v", ["--image", "{first}"], "does not do loops (loop); it serves i2v"),
        ("wan-i2v", [], "makes a loop from a first image (image); give one"),
    ],
)
def test_loop_refusals_are_one_line(capsys, tmp_path, tiny_folders, kind, args, message):
    first = write_png(_image(), tmp_path / "first.png")
    args = [str(a).format(first=first) for a in args]
    out = tmp_path / "out.mp4"
    code, _, err = run(
        capsys, "generate", PROMPT, "-o", out, "--model", tiny_folders[kind], "--loop", "--frames", 30,
        "--size", 64, "--steps", 2, *args,
    )  # fmt: skip
    lines = [line for line in err.strip().splitlines() if not line.startswith("image ")]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists()


def test_a_loop_takes_no_last_image(tiny_folders):
    with pytest.raises(InputError, match="a loop ends where it starts"):
        load_backend(tiny_folders["ltx"])(PROMPT, frames=9, size=64, steps=2, loop=True, last_image=_image())
