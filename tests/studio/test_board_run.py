"""Board runs with takes, retakes, caching, seams and reports, on a stand-in model that
draws shapes-world clips (so the world checker's verdicts are known in advance)."""

import base64
import dataclasses
import re

import cv2
import numpy as np
import pytest

from kinema.io import Video, read_image
from kinema.studio.report import CELL_WIDTH, SHEET_COLUMNS, html_report
from kinema.studio.storyboard import (
    CACHE_DIR,
    SETTLE_FRAMES,
    _join,
    load_board,
    render_board,
    run_board,
    seam_check,
    settle_first_frame,
)
from kinema.world import is_world_prompt, parse, render_frames

RED = "a red circle moving right on a black background"
BLUE = "a blue square moving down on a black background"
ELSEWHERE = "a purple triangle moving left on a gray background"  # drawn for prompts outside the world


class DrawingPipe:
    """Stands in for a model: draws the prompt's scene, in the wrong colour for seeds in
    `bad` (the world checker fails those); raises once `stop_after` takes are made."""

    name, model_hash = "drawing", "drawing-0"
    defaults = {"size": 64, "steps": 24, "guidance": 4.0, "sampler": "dpmpp_2m"}

    def __init__(self, bad=(), stop_after=None):
        self.bad, self.stop_after, self.calls = set(bad), stop_after, []

    def __call__(self, prompt, *, seed, frames, fps, keyframes, **settings):
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise RuntimeError("killed")
        self.calls.append((prompt, seed))
        scene = parse(prompt) if is_world_prompt(prompt) else parse(ELSEWHERE)
        if seed in self.bad:
            wrong = "green" if scene.objects[0].colour != "green" else "yellow"
            scene = dataclasses.replace(scene, objects=[dataclasses.replace(scene.objects[0], colour=wrong)])
        return Video(render_frames(scene, seed=seed, frames=frames), fps)


def write_board(tmp_path, text):
    (tmp_path / "board.yaml").write_text(text)
    return load_board(tmp_path / "board.yaml")


BOARD = f"""
candidates: 2
shots:
  - prompt: {RED}
    seed: 10
  - prompt: {BLUE}
    seed: 20
    transition: cut
    candidates: 1
    retakes: 3
"""


def test_the_board_picks_candidates_and_retakes_failing_shots(tmp_path):
    board = write_board(tmp_path, BOARD)
    pipe = DrawingPipe(bad={10, 20, 21})
    video, log = render_board(pipe, board, tmp_path, 8.0)
    assert pipe.calls == [(RED, 10), (RED, 11), (BLUE, 20), (BLUE, 21), (BLUE, 22)]
    first, second = log
    assert first["seed"] == 11 and first["passed"] and first["retakes"] == 0
    assert [t["seed"] for t in first["takes"]] == [10, 11]
    assert second["seed"] == 22 and second["retakes"] == 2
    assert [t["kind"] for t in second["takes"]] == ["candidate", "retake", "retake"]
    assert all("world check" in why for why in second["retake_reasons"])
    assert video.num_frames == 32
    assert np.array_equal(video.frames[16:], render_frames(parse(BLUE), seed=22, frames=16))


def test_a_killed_run_resumes_without_redoing_takes(tmp_path):
    board = write_board(tmp_path, BOARD)
    with pytest.raises(RuntimeError, match="killed"):
        run_board(DrawingPipe(bad={10, 20, 21}, stop_after=3), board, tmp_path, 8.0)
    assert len(list((tmp_path / CACHE_DIR).glob("*.npy"))) == 3
    again = DrawingPipe(bad={10, 20, 21})
    run = run_board(again, board, tmp_path, 8.0)
    assert again.calls == [(BLUE, 21), (BLUE, 22)]  # only the takes the killed run never made
    assert [t.cached for r in run.shots for t in r.choice.takes] == [True, True, True, False, False]
    third = DrawingPipe(bad={10, 20, 21})
    rerun = run_board(third, board, tmp_path, 8.0)
    assert third.calls == [] and all(entry["cached"] for entry in rerun.log)
    assert np.array_equal(rerun.video.frames, run.video.frames)
    assert [e["seed"] for e in rerun.log] == [e["seed"] for e in run.log]


def test_continued_shots_open_on_the_kept_frame_and_their_seams_are_judged(tmp_path):
    board = write_board(
        tmp_path,
        f"""
shots:
  - prompt: {RED}
  - prompt: {RED}
    transition: continue
  - prompt: {BLUE}
    transition: crossfade:2
""",
    )
    run = run_board(DrawingPipe(), board, tmp_path, 8.0)
    a, b, c = run.shots
    assert (a.start, b.start, c.start) == (0, 15, 29)
    assert run.video.num_frames == 16 + 15 + 16 - 2
    # the continued shot's frame 0 is the first shot's last frame, exactly, and shown once
    assert np.array_equal(b.choice.video.frames[0], a.choice.video.frames[-1])
    assert np.array_equal(run.video.frames[15:29], b.choice.video.frames[:14])
    assert "seam" in b.choice.best.qa["metrics"] and "seam" not in a.choice.best.qa["metrics"]
    continued, faded = run.seams
    assert continued["transition"] == "continue" and continued["ok"] is not None and continued["frame"] == 16
    assert faded["ok"] is None and faded["limit"] is None and faded["frame"] == 29
    # each seam is logged on the shot its transition joins into
    assert run.log[1]["seam"] == continued and run.log[2]["seam"] == faded and "seam" not in run.log[0]


def test_seam_rule_on_joined_clips():
    scene = parse(RED)
    clip = render_frames(scene, seed=3, frames=40)
    one, two = Video(clip[:16], 8.0), Video(clip[15:31], 8.0)  # two opens on one's last frame
    board = [
        dataclasses.make_dataclass("S", ["index", "transition"])(i, t)
        for i, t in ((1, "cut"), (2, "continue"), (3, "cut"))
    ]
    joined, boundaries = _join([one, two], board[:2])
    assert np.array_equal(joined.frames, clip[:31]) and boundaries[0]["steps"] == [15]
    assert seam_check(joined.frames, boundaries)[0]["ok"] is True
    jump = Video(render_frames(parse(BLUE), seed=3, frames=16), 8.0)
    joined, boundaries = _join([one, jump], board[:2])
    assert seam_check(joined.frames, boundaries)[0]["ok"] is False
    cut, boundaries = _join([one, jump], [board[0], board[2]])
    result = seam_check(cut.frames, boundaries)[0]
    assert result["ok"] is None and result["ratio"] > 1.5


def test_settle_first_frame_shows_the_image_and_fades_the_error():
    frames = np.full((8, 4, 4, 3), 100, np.uint8)
    first = np.full((4, 4, 3), 120, np.uint8)
    out = settle_first_frame(first, frames)
    assert np.array_equal(out[0], first)
    assert [int(out[k, 0, 0, 0]) for k in range(SETTLE_FRAMES + 1)] == [120, 115, 110, 105, 100]
    assert np.array_equal(out[SETTLE_FRAMES:], frames[SETTLE_FRAMES:])


def test_report_and_contact_sheet_are_written_and_self_contained(tmp_path):
    board = write_board(
        tmp_path,
        f"""
title: a <b>bold</b> test
candidates: 2
retakes: 1
report: run.html
contact_sheet: sheet.png
shots:
  - prompt: {RED}
    seed: 1
  - prompt: a <script>alert(1)</script> harbour
    seed: 5
    transition: continue
""",
    )
    _, log = render_board(DrawingPipe(bad={1, 2}), board, tmp_path, 8.0)
    assert [t["seed"] for t in log[0]["takes"]] == [1, 2, 3]
    page = (tmp_path / "run.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &lt;b&gt;bold&lt;/b&gt; test" in page
    assert not re.search(r"(src|href)=\"(?!data:)", page)  # nothing fetched from anywhere
    # shot 1: seeds 1, 2 fail the world check, retake 3 passes; shot 2 is no world prompt
    assert "retake:</b> best so far (seed 1) failed QA: world check" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 1 + sum(len(e["takes"]) for e in log)  # the sheet and every take's strip
    for data in images:
        assert cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR) is not None
    for words in ("background_flicker", "subject_consistency", "continue", "seam"):
        assert words in page
    sheet = read_image(tmp_path / "sheet.png")
    assert sheet.shape[1] == SHEET_COLUMNS * (CELL_WIDTH + 4) + 4
    assert sheet.shape[0] > 2 * CELL_WIDTH  # a row of frames per shot


def test_html_report_of_a_single_shot_has_no_seams(tmp_path):
    board = write_board(tmp_path, f"shots:\n  - prompt: {RED}\n")
    run = run_board(DrawingPipe(), board, tmp_path, 8.0)
    page = html_report(run, "one")
    assert "one shot: no seams" in page and "1 of 1" in page
