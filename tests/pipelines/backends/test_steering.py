"""Steering the diffusers backends: a control clip (Wan VACE, CogVideoX-Fun control), a
reference image (Wan VACE) and the images VACE keeps exactly, end to end through the CLI
on tiny random folders and through the backends; the refusals, one line each."""

import json

import numpy as np
import pytest

from kinema.errors import InputError
from kinema.io import Video, read_video, write_png
from kinema.pipelines.backends import load_backend
from kinema.provenance.verify import verify_file
from tests.pipelines.backends.test_backends import PROMPT, run

FAST = ["--size", 64, "--steps", 2, "--seed", 1]


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    image = np.full((64, 64, 3), 40, np.uint8)
    image[20:44, 12:52] = (230, 200, 30)
    return write_png(image, tmp_path_factory.mktemp("picture") / "picture.png")


def _image():
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = (220, 40, 40)
    return image


# (folder, options): each steering pair through `kinema generate`, 9 frames 64x64
STEERED = [
    ("wan-vace", ["--control", "{control}"]),
    ("wan-vace", ["--control", "{control}", "--control-scale", 0.5]),
    ("wan-vace", ["--reference", "{picture}"]),
    ("wan-vace", ["--control", "{control}", "--reference", "{picture}", "--image", "{picture}"]),
    ("cogvideox-fun-control", ["--control", "{control}"]),
]


@pytest.mark.parametrize(
    "kind,options", STEERED, ids=["-".join([s[0], *(str(o)[2:] for o in s[1][::2])]) for s in STEERED]
)
def test_steering_through_the_cli(capsys, tmp_path, tiny_folders, control_clip, picture, kind, options):
    out = tmp_path / "clip"
    options = [str(o).format(control=control_clip, picture=picture) for o in options]
    code, stdout, err = run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        out,
        "--model",
        tiny_folders[kind],
        "--frames",
        9,
        *FAST,
        "--json",
        *options,
    )
    assert code == 0, err
    video = read_video(out)
    assert (video.num_frames, video.width, video.height) == (9, 64, 64)
    assert verify_file(out)["c2pa"]["state"] == "Trusted"
    record = json.loads(stdout)
    if "--control" in options:
        assert "control_sha256" in json.dumps(record)


def test_control_and_its_scale_steer_vace(tiny_folders):
    backend = load_backend(tiny_folders["wan-vace"])
    rng = np.random.default_rng(0)
    control = Video(rng.integers(0, 256, (9, 64, 64, 3), dtype=np.uint8), 8.0)
    make = lambda **steer: backend(PROMPT, frames=9, size=64, steps=2, seed=1, **steer).frames  # noqa: E731
    plain, steered = make(), make(control=control)
    assert not np.array_equal(plain, steered)
    assert not np.array_equal(steered, make(control=control, control_scale=0.3))
    assert not np.array_equal(plain, make(reference=_image()))


def test_fun_control_follows_its_control_clip(tiny_folders):
    backend = load_backend(tiny_folders["cogvideox-fun-control"])
    rng = np.random.default_rng(0)
    clips = [Video(rng.integers(0, 256, (9, 64, 64, 3), dtype=np.uint8), 8.0) for _ in range(2)]
    made = [backend(PROMPT, frames=9, size=64, steps=2, seed=1, control=c).frames for c in clips]
    assert made[0].shape == (9, 64, 64, 3) and not np.array_equal(*made)
    # 8 frames is a count CogVideoX makes too; a 10-frame request makes 16 and keeps 10
    assert (
        backend(
            PROMPT, frames=10, size=64, steps=2, control=Video(np.repeat(clips[0].frames, 2, 0), 8.0)
        ).frames.shape[0]
        == 10
    )


def test_vace_keeps_its_images_exactly(tiny_folders):
    backend = load_backend(tiny_folders["wan-vace"])
    first, last = _image(), _image()[::-1].copy()
    clip = backend(PROMPT, frames=9, size=64, steps=2, keyframes={0: first, 4: last}).frames
    assert np.array_equal(clip[0], first) and np.array_equal(clip[4], last)
    # with a last image the clip is made longer (13 for 10) and spread over: both ends stay
    clip = backend(PROMPT, frames=10, size=64, steps=2, keyframes={0: first}, last_image=last).frames
    assert clip.shape[0] == 10 and np.array_equal(clip[0], first) and np.array_equal(clip[-1], last)


@pytest.mark.parametrize(
    "kind,args,message",
    [
        ("ltx", ["--control", "{control}"], "has no control branch"),
        ("wan", ["--reference", "{picture}"], "has no reference branch"),
        ("cogvideox-fun-control", ["--reference", "{picture}", "--control", "{control}"], "has no reference"),
        ("cogvideox-fun-control", ["--control", "{control}", "--control-scale", 0.5], "has no control scale"),
        ("cogvideox-fun-control", [], "it needs a control clip (control)"),
        (
            "cogvideox-fun-control",
            ["--image", "{picture}", "--control", "{control}"],
            "does not do image to video",
        ),
        ("wan-vace", ["--control", "{control}", "--frames", 17], "has 12 frames; the clip has 17"),
    ],
)
def test_steering_refusals_are_one_line(
    capsys, tmp_path, tiny_folders, control_clip, picture, kind, args, message
):
    args = [str(a).format(control=control_clip, picture=picture) for a in args]
    frames = [] if "--frames" in args else ["--frames", 9]
    out = tmp_path / "out.mp4"
    code, _, err = run(
        capsys, "generate", PROMPT, "-o", out, "--model", tiny_folders[kind], *frames, *FAST, *args
    )
    lines = [
        line for line in err.strip().splitlines() if not line.startswith(("image ", "control ", "reference "))
    ]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists()


def test_a_control_shorter_than_the_default_length_is_refused(tiny_folders):
    # the request layer cannot know a diffusers model's default length (VACE: 81), the backend does
    backend = load_backend(tiny_folders["wan-vace"])
    short = Video(np.zeros((12, 64, 64, 3), np.uint8), 8.0)
    with pytest.raises(InputError, match="the control clip has 12 frames; the clip has 81"):
        backend(PROMPT, size=64, steps=2, control=short)
