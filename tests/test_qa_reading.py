"""QA with the prompt's reading: other words are checked as the scene they were read as,
and a prompt outside the world fails the world check saying so (kinema qa --prompt)."""

import json

import numpy as np
import pytest

from kinema.cli import main
from kinema.io import Video, write_video
from kinema.qa import clip_qa
from kinema.world import parse, render_frames
from kinema.world.reading import read

CANONICAL = "a red circle moving right on a black background"
PARAPHRASE = "a scarlet ball sliding to the right on a dark backdrop"


def _clip() -> Video:
    return Video(render_frames(parse(CANONICAL), seed=0, frames=16, size=64).astype(np.uint8))


def test_other_words_are_checked_as_the_scene_they_were_read_as():
    video = _clip()
    without = clip_qa(video, PARAPHRASE)
    assert without["world"] is None and without["world_note"].startswith("not a shapes-world prompt")
    result = clip_qa(video, PARAPHRASE, reading=read(PARAPHRASE))
    assert result["understood_prompt"] == CANONICAL and result["world"]["pass"]
    assert "world_note" not in result and "warnings" not in result
    assert clip_qa(video, CANONICAL, reading=read(CANONICAL)) == clip_qa(video, CANONICAL)


def test_a_prompt_outside_the_world_fails_the_world_check_and_says_why():
    result = clip_qa(_clip(), "a cat playing piano", reading=read("a cat playing piano"))
    assert result["world"]["pass"] is False and result["world"]["outside_world"] == [
        "cat",
        "playing",
        "piano",
    ]
    assert "outside the shapes world" in result["world"]["reasons"][0]
    assert result["warnings"] and "world_note" not in result
    json.dumps(result)


def test_kinema_qa_reads_the_prompt(tmp_path, capsys):
    clip = write_video(_clip(), tmp_path / "clip.mp4")
    with pytest.raises(SystemExit) as done:
        main(["qa", str(clip), "--prompt", "a cat playing piano"])
    assert done.value.code == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["world"]["pass"] is False
    assert (
        'kinema: warning: the built-in model knows coloured shapes; nothing here matches "cat", "piano"'
        in out.err
    )
    with pytest.raises(SystemExit):
        main(["qa", str(clip), "--prompt", PARAPHRASE])
    result = json.loads(capsys.readouterr().out)
    assert result["understood_prompt"] == CANONICAL and result["world"]["pass"]
