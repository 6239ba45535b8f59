"""The control branch end to end on a tiny model: training (resumable), the files beside
the model, --path and --control on the CLI, the refusals, scale 0, the sidecar and C2PA
ingredients, and `kinema eval --control`."""

import json
import shutil

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.errors import InputError
from kinema.io import Video, read_video, write_video
from kinema.pipelines.facts import ModelFacts
from kinema.pipelines.loading import load
from kinema.pipelines.motion_track import read_path, track_of_path
from kinema.train.control import ControlSettings, random_track, train_control, training_clip
from kinema.train.evaluate_control import (
    PATH_KINDS,
    control_cases,
    evaluate_control,
    held_out_path,
    path_cases,
)
from kinema.world import parse, render_frames

QUICK = ControlSettings(depth=1, steps=3, batch=2, clips=8, checkpoint_every=2)
PROMPT = "a red circle on a black background"


@pytest.fixture
def controlled(controlled_model):
    return controlled_model


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def write_path(tmp_path, points, name="path.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"points": points}))
    return path


# ---------------------------------------------------------------------- data and training


def test_the_training_stream_is_prompts_under_control_with_tracks_read_from_frames():
    settings = ControlSettings(frames=9)
    for index in range(12):
        prompt, frames, track = training_clip(index, settings)
        scene_words = prompt.split()
        assert "moving" not in scene_words and "staying" not in scene_words and prompt.endswith("background")
        assert frames.shape == (9, 64, 64, 3) and track.shape == (9, 3)
        assert not any(
            pair in prompt for pair in ("red triangle", "blue circle", "yellow square", "purple triangle")
        )
    again = training_clip(3, settings)
    assert again[0] == training_clip(3, settings)[0] and np.array_equal(
        again[1], training_clip(3, settings)[1]
    )
    rng = np.random.default_rng(0)
    for kind in ("world", "line", "waypoints", "arc", "wave"):
        xy = random_track(rng, 17, kind)
        assert xy.shape == (17, 2) and xy.min() >= 0.05 and xy.max() <= 0.95


def test_the_branch_lies_beside_the_model_bound_to_its_dit(controlled, tmp_path):
    config = json.loads((controlled / "control" / "config.json").read_text())
    assert config["kind"] == "control" and config["step"] == 3 and config["command"] == "test"
    assert ModelFacts.read(controlled).controls == ("control", "path", "reference")
    pipe = load(controlled)
    assert pipe.control_branch().config.depth == 1
    other = tmp_path / "other"
    shutil.copytree(controlled, other)
    dit = other / "dit" / "model.safetensors"
    dit.write_bytes(dit.read_bytes()[:-4] + b"\0\0\0\1")  # another DiT's weights
    with pytest.raises(InputError, match="was trained on another DiT"):
        load(other).control_branch()


def test_a_killed_run_resumes_onto_the_same_branch(controlled, tmp_path):
    straight = tmp_path / "straight"
    first, _ = train_control(str(controlled), straight, QUICK, resume=False, command="", say=lambda s: None)
    killed = tmp_path / "killed"
    train_control(
        str(controlled), killed, ControlSettings(**{**QUICK.__dict__, "steps": 2}), False, "", lambda s: None
    )
    resumed, _ = train_control(str(controlled), killed, QUICK, resume=True, command="", say=lambda s: None)
    for a, b in zip(first.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


# ---------------------------------------------------------------------- the CLI


def test_generate_follows_a_path_and_records_it(capsys, controlled, tmp_path):
    path = write_path(tmp_path, [[0, 0.2, 0.3], [8, 0.8, 0.6]])
    out = tmp_path / "clip.mp4"
    code, _, err = run(
        capsys,
        "generate",
        PROMPT,
        "--model",
        str(controlled),
        "--path",
        str(path),
        "--frames",
        "9",
        "--steps",
        "2",
        "--seed",
        "3",
        "-o",
        str(out),
    )
    assert code == 0, err
    settings = json.loads(out.with_name("clip.mp4.json").read_text())
    assert settings["path_sha256"] and settings["control_scale"] == 1.0
    assert len(settings["control_branch_sha256"]) == 64 and "reference_branch_sha256" not in settings
    code, report, _ = run(capsys, "verify", str(out))
    titles = [i["title"] for i in json.loads(report)["c2pa"]["ingredients"]]
    assert "path.json" in titles
    # a control clip drives the same way, and is an ingredient too
    control = tmp_path / "control.mp4"
    write_video(
        Video(render_frames(parse("a green square moving left on a gray background"), 1, frames=9), 8.0),
        control,
    )
    code, _, err = run(
        capsys,
        "generate",
        PROMPT,
        "--model",
        str(controlled),
        "--control",
        str(control),
        "--frames",
        "9",
        "--steps",
        "2",
        "-o",
        str(tmp_path / "c.mp4"),
    )
    assert code == 0, err
    assert json.loads((tmp_path / "c.mp4.json").read_text())["control_sha256"]


def test_scale_zero_drops_the_control_and_gives_the_base_models_clip(capsys, controlled, tmp_path):
    path = write_path(tmp_path, [[0, 0.2, 0.3], [8, 0.8, 0.6]])
    common = ["--model", str(controlled), "--frames", "9", "--steps", "2", "--seed", "5"]
    assert (
        run(
            capsys,
            "generate",
            PROMPT,
            *common,
            "--path",
            str(path),
            "--control-scale",
            "0",
            "-o",
            str(tmp_path / "a.mp4"),
        )[0]
        == 0
    )
    assert run(capsys, "generate", PROMPT, *common, "-o", str(tmp_path / "b.mp4"))[0] == 0
    assert np.array_equal(read_video(tmp_path / "a.mp4").frames, read_video(tmp_path / "b.mp4").frames)
    assert "path_sha256" not in json.loads((tmp_path / "a.mp4.json").read_text())


def test_the_base_model_is_untouched_by_a_branch_beside_it(controlled, tiny_model):
    with_branch = load(controlled)(PROMPT, seed=2, frames=9, steps=2)
    without = load(tiny_model)(PROMPT, seed=2, frames=9, steps=2)
    assert np.array_equal(with_branch.frames, without.frames)
    track = track_of_path([(0, 0.2, 0.2), (8, 0.8, 0.8)], 9, 0.22)
    steered = load(controlled)(PROMPT, seed=2, frames=9, steps=2, control=track)
    assert not np.array_equal(steered.frames, without.frames)  # the trained branch acts


@pytest.mark.parametrize(
    "prompt, option, message",
    [
        (
            "a red circle moving right on a black background",
            "path",
            "the path decides the motion: leave 'moving right' out",
        ),
        (
            "a big red circle on a black background",
            "control",
            "the control clip decides the object's size: leave 'big' out",
        ),
        (
            "a red circle staying still and a blue square growing on a black background",
            "path",
            "the prompt names two",
        ),
        (PROMPT, "late", "has a point at frame 12; the clip's last frame is 8"),
        (PROMPT, "broken", "is not JSON"),
        (PROMPT, "both", "control and path both move the object"),
        (PROMPT, "blank", "shows no object"),
        (PROMPT, "two", "shows several objects"),
        (PROMPT, "short", "has 5 frames; the clip has 9"),
        (PROMPT, "loop", "takes no path"),
    ],
)
def test_bad_control_input_is_refused_before_any_work(capsys, controlled, tmp_path, prompt, option, message):
    good = write_path(tmp_path, [[0, 0.2, 0.3], [8, 0.8, 0.6]])
    clips = {
        "blank": np.full((9, 64, 64, 3), 128, np.uint8),
        "two": render_frames(
            parse("a red circle moving up and a blue square growing on a black background"), 1, frames=9
        ),
        "short": render_frames(parse("a red circle moving up on a black background"), 1, frames=5),
    }
    args = ["--path", str(good)]
    if option == "control":
        write_video(Video(clips["short"].repeat(2, axis=0), 8.0), tmp_path / "ok.mp4")
        args = ["--control", str(tmp_path / "ok.mp4")]
    elif option == "late":
        args = ["--path", str(write_path(tmp_path, [[0, 0.2, 0.3], [12, 0.8, 0.6]], "late.json"))]
    elif option == "broken":
        (tmp_path / "broken.json").write_text("{points")
        args = ["--path", str(tmp_path / "broken.json")]
    elif option == "both":
        args += ["--control", str(good)]
    elif option in clips:
        write_video(Video(clips[option], 8.0), tmp_path / f"{option}.mp4")
        args = ["--control", str(tmp_path / f"{option}.mp4")]
    elif option == "loop":
        args += ["--loop"]
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()
    code, _, err = run(
        capsys, "generate", prompt, "--model", str(controlled), "--frames", "9", *args, "-o", str(out)
    )
    assert code == 2, err
    assert message in err and err.strip().splitlines()[-1].startswith("kinema: error:")
    assert list(out.parent.iterdir()) == []


def test_a_model_without_the_branch_refuses_path_and_control(capsys, tiny_model, tmp_path):
    path = write_path(tmp_path, [[0, 0.2, 0.3]])
    code, _, err = run(
        capsys,
        "generate",
        PROMPT,
        "--model",
        str(tiny_model),
        "--path",
        str(path),
        "-o",
        str(tmp_path / "x.mp4"),
    )
    assert code == 2 and "has no path branch" in err
    code, _, err = run(
        capsys, "extend", str(tmp_path / "x.mp4"), PROMPT, "--path", str(path), "-o", str(tmp_path / "y.mp4")
    )
    assert code == 2


# ---------------------------------------------------------------------- the eval


def test_the_held_out_paths_are_valid_path_files_of_every_kind(tmp_path):
    cases = path_cases(10)
    assert [c["kind"] for c in cases[:5]] == list(PATH_KINDS)
    for i, case in enumerate(cases):
        points = read_path(write_path(tmp_path, [list(p) for p in case["points"]], f"p{i}.json"))
        assert points[0][0] == 0 and points[-1][0] <= 15
        assert "moving" not in case["prompt"] and case["prompt"] == path_cases(10)[i]["prompt"]
    assert held_out_path(4)[0] == "loop"
    for case in control_cases(7):
        control = case["control"].objects[0]
        assert control.colour not in case["prompt"] and control.shape not in case["prompt"]
        assert case["control"].background not in case["prompt"]
        parse(case["implied"])  # the prompt the control implies is a world prompt


def test_eval_control_reports_both_sets(capsys, controlled):
    results = evaluate_control(load(controlled), n=2, steps=1)
    for name in ("paths", "control_clips"):
        row = results["sets"][name]
        assert row["total"] == 2 and 0 <= row["passed"] <= 2 and row["mean_centre_error"] >= 0
    code, out, err = run(
        capsys, "eval", "--control", "--prompts", "1", "--steps", "1", "--model", str(controlled)
    )
    assert code == 0 and "paths" in err and "control_clips" in err


# ---------------------------------------------------------------------- storyboards


def test_storyboard_shots_take_a_path_or_a_control(capsys, controlled, tmp_path):
    write_path(tmp_path, [[0, 0.2, 0.3], [8, 0.8, 0.6]], "zig.json")
    write_video(
        Video(render_frames(parse("a green square moving down on a gray background"), 2, frames=9), 8.0),
        tmp_path / "c.mp4",
    )
    board = tmp_path / "board.yaml"
    board.write_text(
        "shots:\n"
        f"  - {{prompt: '{PROMPT}', frames: 9, path: zig.json}}\n"
        f"  - {{prompt: '{PROMPT}', frames: 9, control: c.mp4, control_scale: 1.5, transition: continue}}\n"
    )
    common = ["--model", str(controlled), "--steps", "1"]
    code, _, err = run(capsys, "storyboard", str(board), "-o", str(tmp_path / "film.mp4"), *common)
    assert code == 0, err
    assert read_video(tmp_path / "film.mp4").num_frames == 17
    board.write_text(f"shots:\n  - {{prompt: '{PROMPT}', frames: 9, path: zig.json, control_scale: 3}}\n")
    code, _, err = run(capsys, "storyboard", str(board), "-o", str(tmp_path / "f2.mp4"), *common)
    assert code == 2 and "control_scale" in err and "from 0 to 2" in err
    board.write_text(
        "shots:\n  - {prompt: 'a red circle moving up on a black background', frames: 9, path: zig.json}\n"
    )
    code, _, err = run(capsys, "storyboard", str(board), "-o", str(tmp_path / "f3.mp4"), *common)
    assert code == 2 and "shot 1: the path decides the motion" in err
    assert not (tmp_path / "f2.mp4").exists() and not (tmp_path / "f3.mp4").exists()
