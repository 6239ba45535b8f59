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
from kinema.world.scene import COLOURS

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
        prompt, frames, image, canonical = training_clip(index, settings)
        assert frames.shape == (9, 64, 64, 3) and image.shape == (64, 64, 3)
        assert not any(
            pair in canonical for pair in ("red triangle", "blue circle", "yellow square", "purple triangle")
        )
        named += "object" not in prompt
        # the teacher's caption says what the reference shows, in the world's words
        obj = parse(canonical).objects[0]
        assert prompt == canonical or prompt.split("object ")[1] == canonical.split(f"{obj.shape} ")[1]
        assert (image.reshape(-1, 3) == COLOURS[obj.colour]).all(1).any()  # the reference shows it
    assert 0 < named < 12  # most captions leave colour and shape out
    prompt, frames, image, _ = training_clip(3, settings)
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


def test_each_clip_keeps_its_teacher_caption_and_the_loss_learns_from_it(controlled_model, tmp_path):
    quick = ReferenceSettings(steps=2, batch=2, clips=4, frames=9)
    taught, _ = train_reference(str(controlled_model), tmp_path / "a", quick, False, "", lambda s: None)
    data = torch.load(tmp_path / "a" / "data.pt")
    old = {k: v for k, v in data.items() if k not in ("format", "extra_pixels", "teacher_ids")}
    torch.save(old, tmp_path / "a" / "data.pt")  # a cache from before pixels and teachers were kept
    train_reference(str(controlled_model), tmp_path / "a", quick, False, "", lambda s: None)
    data = torch.load(tmp_path / "a" / "data.pt")
    assert data["extra_pixels"].shape == (4, 64, 64, 3)  # built again, not read back
    for i in range(4):
        caption, _, _, canonical = training_clip(i, quick)
        assert data["prompts"][data["prompt_ids"][i]] == caption
        assert data["prompts"][data["teacher_ids"][i]] == canonical
    untaught, _ = train_reference(
        str(controlled_model),
        tmp_path / "b",
        ReferenceSettings(**{**quick.__dict__, "distill": 0.0}),
        False,
        "",
        lambda s: None,
    )
    assert not all(
        torch.equal(a, b)
        for a, b in zip(taught.state_dict().values(), untaught.state_dict().values(), strict=True)
    )


def test_the_look_lesson_resumes_exactly_with_its_training_only_head(controlled_model, tmp_path):
    quick = ReferenceSettings(steps=3, batch=2, clips=4, frames=9, checkpoint_every=2, look_weight=1.0)
    first, _ = train_reference(str(controlled_model), tmp_path / "a", quick, False, "", lambda s: None)
    two = ReferenceSettings(**{**quick.__dict__, "steps": 2})
    train_reference(str(controlled_model), tmp_path / "b", two, False, "", lambda s: None)
    assert "auxiliary" in torch.load(tmp_path / "b" / "state.pt")  # the head is kept, for resuming
    resumed, _ = train_reference(str(controlled_model), tmp_path / "b", quick, True, "", lambda s: None)
    for a, b in zip(first.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    plain, _ = train_reference(
        str(controlled_model),
        tmp_path / "c",
        ReferenceSettings(**{**quick.__dict__, "look_weight": 0.0}),
        False,
        "",
        lambda s: None,
    )
    assert not torch.equal(plain.to_words[1].weight, first.to_words[1].weight)  # the lesson acts
    # the head never leaves the run: the exported branch has only the branch's weights
    assert set(first.state_dict()) == set(plain.state_dict())


def test_word_anchors_are_the_colour_and_shape_words_in_context():
    from kinema.models.text import MiniLMTextEncoder
    from kinema.train.reference import word_anchors

    encoder = MiniLMTextEncoder()
    captions = [
        "a big cyan triangle moving right on a black background",
        "a red square growing on a white background",
    ]
    data = {"prompts": captions, "teacher_ids": torch.tensor([1, 0, 1])}
    anchors = word_anchors(data, encoder)
    assert anchors.shape == (3, 2, encoder.dim)
    states, _ = encoder.encode(captions)
    # [CLS] a big cy ##an triangle …: cyan is the mean of its two word pieces
    assert torch.allclose(anchors[1, 0], states[0, 3:5].mean(0)) and torch.allclose(
        anchors[1, 1], states[0, 5]
    )
    # [CLS] a red square …
    assert torch.allclose(anchors[0, 0], states[1, 2]) and torch.allclose(anchors[0, 1], states[1, 3])
    assert torch.equal(anchors[0], anchors[2])


def test_the_per_word_anchor_trains(controlled_model, tmp_path):
    quick = ReferenceSettings(steps=2, batch=2, clips=4, frames=9, checkpoint_every=2, anchor_words=True)
    words, _ = train_reference(str(controlled_model), tmp_path / "a", quick, False, "", lambda s: None)
    mean = ReferenceSettings(**{**quick.__dict__, "anchor_words": False})
    means, _ = train_reference(str(controlled_model), tmp_path / "b", mean, False, "", lambda s: None)
    assert not torch.equal(words.to_words[1].weight, means.to_words[1].weight)


def test_a_run_can_start_from_a_branch_without_the_pixel_path(controlled_model, tmp_path):
    quick = ReferenceSettings(steps=2, batch=2, clips=4, frames=9)
    first, _ = train_reference(str(controlled_model), tmp_path / "a", quick, False, "", lambda s: None)
    state = torch.load(tmp_path / "a" / "state.pt")
    state["branch"] = {k: v for k, v in state["branch"].items() if not k.startswith("pixel_stem.")}
    torch.save(state, tmp_path / "latents-only.pt")
    start = ReferenceSettings(
        **{**quick.__dict__, "steps": 0, "init_from": str(tmp_path / "latents-only.pt")}
    )
    second, _ = train_reference(str(controlled_model), tmp_path / "b", start, False, "", lambda s: None)
    for name, value in second.state_dict().items():
        if not name.startswith("pixel_stem."):
            assert torch.equal(value, first.state_dict()[name]), name
    assert not second.pixel_stem[-1].weight.any()  # the new path starts at zero
    torch.save({"branch": {"stem.0.weight": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises((ValueError, RuntimeError)):
        train_reference(
            str(controlled_model),
            tmp_path / "c",
            ReferenceSettings(**{**start.__dict__, "init_from": str(tmp_path / "other.pt")}),
            False,
            "",
            lambda s: None,
        )


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


def test_a_model_without_the_branch_refuses_a_reference(capsys, tiny_model, tmp_path):
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()
    code, _, err = run(
        capsys,
        "generate",
        PROMPT,
        "--model",
        str(tiny_model),
        "--reference",
        str(still(tmp_path)),
        "-o",
        str(out),
    )
    assert code == 2 and "has no reference branch" in err and len(err.strip().splitlines()) == 1
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
