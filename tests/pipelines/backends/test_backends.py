"""Every mode each diffusers backend maps, end to end through `kinema generate`, on tiny
random models; and the refusals, each one clear line with exit status 2."""

import json

import numpy as np
import pytest

from kinema.cli import main
from kinema.errors import InputError
from kinema.io import read_video, write_png
from kinema.pipelines.backends import load_backend
from kinema.pipelines.backends.cogvideox import decoded_frames
from kinema.pipelines.loading import load
from kinema.pipelines.protocol import MODES as MODE_ORDER
from kinema.provenance.verify import verify_file
from tests.pipelines.test_protocol import assert_satisfies

PROMPT = "a red ball rolls across a table"


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture
def images(tmp_path):
    first = np.zeros((64, 64, 3), np.uint8)
    first[16:48, 16:48] = (220, 40, 40)
    last = np.full((64, 64, 3), 30, np.uint8)
    last[8:24, 40:56] = (40, 200, 60)
    return write_png(first, tmp_path / "first.png"), write_png(last, tmp_path / "last.png")


# (folder, frames, which images): every mode each family maps
MODES = [
    ("wan", 5, ()),
    ("wan", 16, ()),  # not a count Wan's VAE makes: 17 are made and the clip trimmed
    ("ltx", 16, ()),
    ("wan-vace", 9, ()),
    ("wan-i2v", 5, ("--image",)),
    ("wan-i2v", 9, ("--image", "--last-image")),
    ("ltx", 9, ()),
    ("ltx", 5, ("--image",)),
    ("ltx", 9, ("--image", "--last-image")),
    ("cogvideox", 8, ()),
    ("cogvideox", 9, ()),
    ("cogvideox-i2v", 9, ("--image",)),
    ("wan-vace", 9, ("--image",)),
    ("wan-vace", 9, ("--image", "--last-image")),
    ("ltx-condition", 9, ()),
]


@pytest.mark.parametrize(
    "kind,frames,options", MODES, ids=["-".join([m[0], str(m[1]), *m[2]]) for m in MODES]
)
def test_generate_every_mode(capsys, tmp_path, tiny_folders, images, kind, frames, options):
    out = tmp_path / "clip"  # a folder of lossless PNG frames
    conditions = [
        a
        for option, path in zip(("--image", "--last-image"), images, strict=True)
        if option in options
        for a in (option, path)
    ]
    code, stdout, err = run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        out,
        "--model",
        tiny_folders[kind],
        "--frames",
        frames,
        "--size",
        64,
        "--steps",
        2,
        "--seed",
        1,
        "--json",
        *conditions,
    )
    assert code == 0, err
    record = json.loads(stdout)
    video = read_video(out)
    assert (video.num_frames, video.width, video.height) == (frames, 64, 64)
    assert verify_file(out)["c2pa"]["state"] == "Trusted"
    assert record["seed"] == 1 and len(record["watermark"]["payload"]) > 0


def test_output_carries_the_watermark(capsys, tmp_path, tiny_folders):
    # publish treats every backend's Video alike; Wan's tiny model is the one whose output is
    # not noise at the watermark's own scale (LTX's and CogVideoX's random VAEs make such
    # noise, and the detector then reads a wrong payload), so it carries the end-to-end check
    kind, frames = "wan", 9
    out = tmp_path / "clip"
    code, stdout, err = run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        out,
        "--model",
        tiny_folders[kind],
        "--frames",
        frames,
        "--size",
        64,
        "--steps",
        2,
        "--seed",
        1,
        "--json",
    )
    assert code == 0, err
    report = verify_file(out)
    assert report["watermark"]["detected"], report["watermark"]
    assert report["watermark"]["payload"] == json.loads(stdout)["watermark"]["payload"]


def test_generate_writes_an_mp4(capsys, tmp_path, tiny_folders):
    out = tmp_path / "out.mp4"
    code, _, err = run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        out,
        "--model",
        tiny_folders["wan"],
        "--frames",
        9,
        "--size",
        64,
        "--steps",
        2,
        "--seed",
        1,
    )
    video = read_video(out)
    assert code == 0 and (video.num_frames, video.width, video.height) == (9, 64, 64)
    assert verify_file(out)["c2pa"]["state"] == "Trusted"


@pytest.mark.parametrize("kind,frames", [("wan", 5), ("ltx", 9), ("cogvideox", 8)])
def test_same_seed_same_frames(tiny_folders, kind, frames):
    backend = load(tiny_folders[kind])
    make = lambda seed: backend(PROMPT, seed=seed, frames=frames, size=32, steps=2).frames  # noqa: E731
    assert np.array_equal(make(1), make(1))
    assert not np.array_equal(make(1), make(2))


def test_backend_reports_what_the_cli_needs(tiny_folders):
    backend = load_backend(tiny_folders["ltx"])
    assert backend.name == "ltx" and len(backend.model_hash) == 64
    assert {"frames", "size", "fps", "steps", "guidance", "sampler"} <= set(backend.defaults)
    assert backend.model_hash != load_backend(tiny_folders["wan"]).model_hash
    steps = []
    backend(PROMPT, frames=5, size=32, steps=2, progress=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 2), (2, 2)]


@pytest.mark.parametrize(
    "kind,modes",
    [
        ("wan", {"t2v", "remix"}),
        ("wan-i2v", {"i2v", "keyframes", "loop"}),
        ("wan-vace", {"t2v", "i2v", "keyframes", "loop", "extend", "inpaint", "outpaint"}),
        ("ltx", {"t2v", "i2v", "keyframes", "loop", "extend", "remix"}),
        ("cogvideox", {"t2v", "remix"}),
        ("cogvideox-i2v", {"i2v"}),
        ("cogvideox-fun-control", {"t2v"}),
    ],
)
def test_backends_satisfy_the_pipeline_protocol(tiny_folders, kind, modes):
    backend = load_backend(tiny_folders[kind])
    assert_satisfies(backend)
    assert backend.modes == modes
    # the shared resolution refuses alike for kinema's pipeline and a backend
    with pytest.raises(InputError, match="steps must be at least 1, got 0"):
        backend(PROMPT, frames=5, size=32, steps=0)
    served = ", ".join(m for m in MODE_ORDER if m in modes)
    for edit in {"extend", "remix", "inpaint", "outpaint"} - modes:
        with pytest.raises(InputError, match=f"does not do {edit}; it serves {served}"):
            getattr(backend, edit)(
                None, PROMPT, *[1] * {"extend": 1, "inpaint": 1, "outpaint": 4}.get(edit, 0)
            )


def test_cogvideox_frame_rule_follows_its_vae():
    # 49 frames (CogVideoX's default) come from 13 latents; 8 from 2, 9 from 3
    assert [decoded_frames(n, 2, 4) for n in (1, 2, 3, 4, 13)] == [1, 8, 9, 16, 49]


@pytest.mark.parametrize(
    "kind,args,message",
    [
        ("wan", ["--frames", 130], "makes at most 125 frames; 130 is more"),
        ("wan", ["--size", 40], "multiples of 16"),
        ("ltx", ["--size", 48], "multiples of 32"),
        ("cogvideox-i2v", ["--size", 32, "--image", "{first}"], "only makes 64x64"),
        ("wan", ["--image", "{first}"], "does not do image to video from a first image (i2v); it serves t2v"),
        ("wan-i2v", [], "does not do text to video without a first image (t2v); it serves i2v"),
        ("cogvideox-i2v", ["--image", "{first}", "--last-image", "{last}"], "does not do keyframes"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(capsys, tmp_path, tiny_folders, images, kind, args, message):
    args = [str(a).format(first=images[0], last=images[1]) for a in args]
    base = ["--frames", 9, "--size", 64] if kind.startswith("cog") else ["--frames", 5, "--size", 64]
    out = tmp_path / "out.mp4"
    code, _, err = run(
        capsys, "generate", PROMPT, "-o", out, "--model", tiny_folders[kind], "--steps", 2, *base, *args
    )
    lines = [line for line in err.strip().splitlines() if not line.startswith(("image ", "last_image "))]
    assert code == 2 and message in lines[-1] and len(lines) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
def test_loop_is_refused_without_keyframes(tiny_folders, kind):
    # neither places an image on a later frame, so neither can close a loop
    with pytest.raises(InputError, match="does not do loop; it serves t2v, remix"):
        load(tiny_folders[kind])(PROMPT, frames=9, size=32, steps=2, loop=True)


def test_edits_are_refused_in_one_line(capsys, tmp_path, tiny_folders):
    clip = tmp_path / "c.mp4"
    assert (
        run(
            capsys,
            "generate",
            PROMPT,
            "-o",
            clip,
            "--model",
            tiny_folders["wan"],
            "--frames",
            5,
            "--size",
            64,
            "--steps",
            2,
        )[0]
        == 0
    )
    code, _, err = run(
        capsys, "remix", clip, PROMPT, "-o", tmp_path / "r.mp4", "--model", tiny_folders["wan-i2v"]
    )
    assert (
        code == 2
        and "the model wan-i2v does not do remix; it serves i2v, keyframes" in err
        and not (tmp_path / "r.mp4").exists()
    )


def test_a_folder_of_another_pipeline_names_what_it_found(capsys, tmp_path):
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    code, _, err = run(capsys, "generate", PROMPT, "-o", tmp_path / "o.mp4", "--model", tmp_path / "sd")
    assert (
        code == 2
        and "StableDiffusionPipeline" in err
        and "WanPipeline" in err
        and len(err.strip().splitlines()) == 1
    )


def test_cpu_offload_needs_cuda(tiny_folders, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(InputError, match="needs a CUDA device"):
        load_backend(tiny_folders["wan"], cpu_offload=True)


def test_memory_savers_keep_the_output(tiny_folders):
    plain = load_backend(tiny_folders["ltx"])(PROMPT, seed=3, frames=5, size=32, steps=2).frames
    saving = load_backend(tiny_folders["ltx"], vae_slicing=True, attention_slicing=True)
    assert np.abs(saving(PROMPT, seed=3, frames=5, size=32, steps=2).frames.astype(int) - plain).max() <= 1
