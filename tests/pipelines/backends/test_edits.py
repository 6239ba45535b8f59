"""The edits each diffusers family serves, end to end through the CLI on tiny random
folders, and their exactness (pixels outside the mask, the kept frames) through the
backends themselves, where no watermark is added."""

import numpy as np
import pytest

from kinema.io import Video, read_video, write_png, write_video
from kinema.pipelines.backends import load_backend
from kinema.provenance.verify import verify_file
from tests.pipelines.backends.test_backends import PROMPT, run

STEPS = ["--steps", 2, "--seed", 1]


@pytest.fixture
def clip(tmp_path):
    """A 9-frame 64x64 clip: a square moving right over a grey ground."""
    frames = np.full((9, 64, 64, 3), 60, np.uint8)
    for t in range(9):
        frames[t, 24:40, 4 + 4 * t : 20 + 4 * t] = (200, 60, 40)
    path = tmp_path / "in.mp4"
    write_video(Video(frames, 8.0), path)
    return path


@pytest.fixture
def mask(tmp_path):
    region = np.zeros((64, 64, 3), np.uint8)
    region[16:48, 16:48] = 255
    return write_png(region, tmp_path / "mask.png")


# (folder, command, options, (frames, width, height) of the result)
EDITS = [
    ("wan", "remix", ["--strength", 0.5], (9, 64, 64)),
    ("cogvideox", "remix", ["--strength", 0.5], (9, 64, 64)),
    ("cogvideox-v2v", "remix", ["--strength", 0.5], (9, 64, 64)),
    ("ltx", "remix", ["--strength", 0.5], (9, 64, 64)),
    ("ltx", "extend", ["--add-frames", 7], (16, 64, 64)),
    ("ltx-condition", "extend", ["--add-frames", 4, "--backward"], (13, 64, 64)),
    ("wan-vace", "extend", ["--add-frames", 7], (16, 64, 64)),
    ("wan-vace", "extend", ["--add-frames", 4, "--backward"], (13, 64, 64)),
    ("wan-vace", "inpaint", ["--mask", "{mask}"], (9, 64, 64)),
    ("wan-vace", "inpaint", ["--outpaint", "16,0,16,0"], (9, 96, 64)),
]


@pytest.mark.parametrize(
    "kind,command,options,shape", EDITS, ids=["-".join([e[0], e[1], *map(str, e[2])]) for e in EDITS]
)
def test_edit_through_the_cli(capsys, tmp_path, tiny_folders, clip, mask, kind, command, options, shape):
    out = tmp_path / "out.mp4"
    options = [str(o).format(mask=mask) for o in options]
    code, _, err = run(
        capsys, command, clip, PROMPT, "-o", out, "--model", tiny_folders[kind], *STEPS, *options
    )
    assert code == 0, err
    video = read_video(out)
    assert (video.num_frames, video.width, video.height) == shape
    assert verify_file(out)["c2pa"]["state"] == "Trusted"


def test_vace_keeps_what_it_must(tiny_folders):
    backend = load_backend(tiny_folders["wan-vace"])
    rng = np.random.default_rng(0)
    source = Video(rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8), 8.0)
    region = np.zeros((64, 64), bool)
    region[8:40, 24:56] = True
    inpainted = backend.inpaint(source, PROMPT, region, steps=2).frames
    assert np.array_equal(inpainted[:, ~region], source.frames[:, ~region])
    assert not np.array_equal(inpainted[:, region], source.frames[:, region])
    grown = backend.outpaint(source, PROMPT, 0, 16, 0, 16, steps=2).frames
    assert grown.shape == (6, 96, 64, 3) and np.array_equal(grown[:, 16:80], source.frames)
    backward = backend.extend(source, PROMPT, 3, backward=True, steps=2).frames
    assert backward.shape[0] == 9 and np.array_equal(backward[3:], source.frames)


def test_ltx_extension_keeps_the_clip_and_remix_zero_is_the_clip(tiny_folders):
    backend = load_backend(tiny_folders["ltx"])
    source = Video(np.random.default_rng(1).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8), 8.0)
    longer = backend.extend(source, PROMPT, 5, steps=2).frames
    assert longer.shape[0] == 15 and np.array_equal(longer[:10], source.frames)
    assert np.array_equal(backend.remix(source, PROMPT, strength=0, steps=2).frames, source.frames)
