"""The reference branch end to end on a tiny model: its training stream, resume, the files
beside the model, --reference on the CLI and in storyboards, its refusals, and its sets in
`kinema eval --control`."""

import json

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.io import read_video, write_png
from kinema.pipelines.facts import ModelFacts
from kinema.pipelines.loading import load
from kinema.train.evaluate_control import evaluate_control, reference_cases
from kinema.train.reference import ReferenceSettings, train_reference, training_clip
from kinema.world import parse, render_frames
from kinema.world.render import render_track

PROMPT = "an object moving right on a black background"


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def still(tmp_path, name="ref.png", shape="square", colour=(30, 180, 50), background=(128, 128, 128)):
    path = tmp_path / name
    write_png(render_track(shape, colour, background, np.array([[0.4, 0.6, 0.3]]), 64)[0], path)
    return path


def test_the_stream_leaves_colour_and_shape_to_the_reference():
    settings = ReferenceSettings(frames=9)
    named = 0
    for index in range(20):
        prompt, frames, image = training_clip(index, settings)
        assert frames.shape == (9, 64, 64, 3) and image.shape == (64, 64, 3)
        assert not any(
            pair in prompt for pair in ("red triangle", "blue circle", "yellow square", "purple triangle")
        )
        named += "object" not in prompt
    assert 0 < named < 12  # most captions leave colour and shape out
    prompt, frames, image = training_clip(3, settings)
    assert np.array_equal(image, training_clip(3, settings)[2])


def test_a_killed_run_resumes_onto_the_same_branch(controlled_model, tmp_path):
    quick = ReferenceSettings(steps=3, batch=2, clips=8, frames=9, checkpoint_every=2)
    first, _ = train_reference(str(controlled_model), tmp_path / "a", quick, False, "", lambda s: None)
    train_reference(
        str(controlled_model),
        tmp_path / "b",
        ReferenceSettings(**{**quick.__dict__, "steps": 2}),
        False,
        "",
        lambda s: None,
    )
    resumed, _ = train_reference(str(controlled_model), tmp_path / "b", quick, True, "", lambda s: None)
    for a, b in zip(first.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_generate_takes_the_reference_and_records_it(capsys, controlled_model, tmp_path):
    assert "reference" in ModelFacts.read(controlled_model).controls
    ref = still(tmp_path)
    out = tmp_path / "clip.mp4"
    common = ["--model", str(controlled_model), "--frames", "9", "--steps", "2", "--seed", "4"]
    code, _, err = run(capsys, "generate", PROMPT, *common, "--reference", str(ref), "-o", str(out))
    assert code == 0, err
    assert "understood as" not in err or "object" in err  # colour and shape are not filled in
    sidecar = json.loads(out.with_name("clip.mp4.json").read_text())
    assert sidecar["reference_sha256"] and len(sidecar["reference_branch_sha256"]) == 64
    code, report, _ = run(capsys, "verify", str(out))
    assert "ref.png" in [i["title"] for i in json.loads(report)["c2pa"]["ingredients"]]
    base = tmp_path / "base.mp4"
    assert run(capsys, "generate", PROMPT, *common, "-o", str(base))[0] == 0
    assert not np.array_equal(read_video(out).frames, read_video(base).frames)  # the branch acts


@pytest.mark.parametrize(
    "make, prompt, message",
    [
        (lambda p: write_png(np.full((64, 64, 3), 128, np.uint8), p), PROMPT, "shows no object"),
        (
            lambda p: write_png(
                render_frames(
                    parse("a red circle moving up and a blue square growing on a black background"),
                    1,
                    frames=1,
                )[0],
                p,
            ),
            PROMPT,
            "shows 2 objects",
        ),
        (lambda p: p.write_bytes(b"not an image"), PROMPT, "ref.png"),
        (
            None,
            "a red circle staying still and a blue square moving up on a black background",
            "the prompt names two",
        ),
    ],
)
def test_bad_references_are_refused_before_any_work(
    capsys, controlled_model, tmp_path, make, prompt, message
):
    ref = tmp_path / "ref.png"
    if make is None:
        still(tmp_path)
    else:
        make(ref)
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()
    code, _, err = run(
        capsys, "generate", prompt, "--model", str(controlled_model), "--reference", str(ref), "-o", str(out)
    )
    assert code == 2 and message in err, err
    assert list(out.parent.iterdir()) == []


def test_storyboard_shots_share_a_reference(capsys, controlled_model, tmp_path):
    still(tmp_path, "hero.png")
    board = tmp_path / "board.yaml"
    board.write_text(
        "shots:\n"
        "  - {prompt: 'an object moving up on a black background', frames: 9, reference: hero.png}\n"
        "  - {prompt: 'an object growing on a white background', frames: 9, reference: hero.png}\n"
    )
    code, _, err = run(
        capsys,
        "storyboard",
        str(board),
        "-o",
        str(tmp_path / "film.mp4"),
        "--model",
        str(controlled_model),
        "--steps",
        "1",
    )
    assert code == 0, err
    assert read_video(tmp_path / "film.mp4").num_frames == 18


def test_eval_control_has_the_reference_sets(controlled_model):
    cases = reference_cases(7)
    assert len({c["look"] for c in cases}) == 7 and all("object" in c["prompt"] for c in cases)
    results = evaluate_control(load(controlled_model), n=1, steps=1)
    assert set(results["sets"]) == {"paths", "control_clips", "references", "reference_boards"}
    assert results["sets"]["reference_boards"]["shots"] == 4
