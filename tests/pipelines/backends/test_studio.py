"""The studio on a large model's backend (issue 24, part 2): best-of-N with auto-retakes,
a storyboard whose shots continue one another, QA of what a backend made, and the whole
publish path (watermark, C2PA, review), on a tiny random LTX-Video folder."""

import json

import numpy as np
import pytest

from kinema.cli import main
from kinema.io import read_video
from kinema.provenance.verify import verify_file

PROMPT = "a red ball rolls across a table"


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_best_of_with_retakes_keeps_the_best_take_and_publishes_it(capsys, tmp_path, tiny_folders):
    out = tmp_path / "take.mp4"
    code, stdout, err = run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        out,
        "--model",
        tiny_folders["ltx"],
        "--frames",
        9,
        "--size",
        64,
        "--steps",
        2,
        "--seed",
        3,
        "--candidates",
        2,
        "--retakes",
        1,
        "--qa-threshold",
        1.0,  # no take of a random model passes: every retake is spent
        "--json",
    )
    assert code == 0, err
    record = json.loads(stdout)["takes"]
    assert [t["kind"] for t in record["takes"]] == ["candidate", "candidate", "retake"]
    assert [t["seed"] for t in record["takes"]] == [3, 4, 5]
    best = max(record["takes"], key=lambda t: t["score"])
    assert record["seed"] == best["seed"] and not record["passed"]
    assert "no take passed QA after 3 tries" in record["notes"][0]
    assert read_video(out).num_frames == 9
    report = verify_file(out)
    assert report["c2pa"]["state"] == "Trusted"
    code, listing, _ = run(capsys, "review", "list", "--status", "pending")
    assert code == 0 and str(out) in listing  # waiting for a person, like any take


BOARD = f"""
shots:
  - prompt: {PROMPT}
    frames: 9
    seed: 1
    candidates: 2
  - prompt: the ball stops by a cup
    frames: 9
    transition: continue
  - prompt: a blue cube spins
    frames: 9
    transition: crossfade:2
"""


def test_a_storyboard_continues_its_shots_on_a_backend(capsys, tmp_path, tiny_folders):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    film = tmp_path / "film.mp4"
    args = ("storyboard", board, "-o", film, "--model", tiny_folders["ltx"], "--steps", 2, "--size", 64)
    code, stdout, err = run(capsys, *args, "--json")
    assert code == 0, err
    record = json.loads(stdout)
    # 9 + (9 - 1: the continued shot starts on shot 1's last frame) + 9 - 2 in the crossfade
    assert record["frames"] == read_video(film).num_frames == 9 + 8 + 7
    assert [s["transition"] for s in record["shots"]] == ["cut", "continue", "crossfade:2"]
    assert verify_file(film)["c2pa"]["state"] == "Trusted"
    # a rerun reads every shot back from the board's cache
    code, stdout, _ = run(capsys, *args, "--json")
    assert code == 0 and all(s["cached"] for s in json.loads(stdout)["shots"])


def test_a_storyboard_refuses_a_size_the_backend_cannot_make(capsys, tmp_path, tiny_folders):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    film = tmp_path / "film.mp4"
    code, _, err = run(
        capsys, "storyboard", board, "-o", film, "--model", tiny_folders["ltx"], "--size", "60", "--steps", 1
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "size" in err
    assert not film.exists()


def test_qa_measures_a_backend_clip(capsys, tmp_path, tiny_folders):
    clip = tmp_path / "clip.mp4"
    code, _, err = run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        clip,
        "--model",
        tiny_folders["ltx"],
        "--frames",
        9,
        "--size",
        64,
        "--steps",
        2,
    )
    assert code == 0, err
    code, stdout, err = run(capsys, "qa", clip, "--prompt", PROMPT)
    assert code in (0, 1), err  # 1: the clip failed QA, which a random model's clip may
    report = json.loads(stdout)
    assert set(report["metrics"]) >= {"background_flicker", "warping_error", "identity_drift"}
    assert all(np.isfinite(m["value"]) and len(m["per_frame"]) >= 8 for m in report["metrics"].values())


def test_a_continued_shot_on_a_folder_without_i2v_is_refused_before_any_shot(capsys, tmp_path, tiny_folders):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    film = tmp_path / "film.mp4"
    args = ("storyboard", board, "-o", film, "--model", tiny_folders["wan"], "--steps", 1, "--size", 64)
    code, _, err = run(capsys, *args)
    assert code == 2 and err.strip() == (
        "kinema: error: shot 2: the model wan does not do image to video from a first image (i2v); "
        "it serves t2v, remix"
    )
    assert not film.exists() and not list(tmp_path.glob(".kinema*"))  # shot 1 was never made
