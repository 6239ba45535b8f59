import json

import pytest

from kinema.cli import main
from kinema.errors import InputError
from kinema.io import read_video, write_png
from kinema.studio.storyboard import CACHE_DIR, load_board
from kinema.world import parse, render_frames

BOARD = """
shots:
  - prompt: a red circle moving right on a black background
    frames: 9
    seed: 1
    image: start.png
    transition: continue
  - prompt: a red circle moving left on a black background
    seconds: 1
    transition: crossfade:2
  - prompt: a blue square growing on a white background
    frames: 5
"""


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    return info.value.code, *capsys.readouterr()


def _board(tmp_path, text=BOARD):
    write_png(
        render_frames(parse("a red circle moving right on a black background"), frames=1)[0],
        tmp_path / "start.png",
    )
    (tmp_path / "board.yaml").write_text(text)
    return tmp_path / "board.yaml"


def test_board_renders_joins_and_caches(tiny_model, tmp_path, capsys):
    board = _board(tmp_path)
    code, out, err = run(
        capsys,
        "storyboard",
        board,
        "-o",
        tmp_path / "film.mp4",
        "--model",
        tiny_model,
        "--steps",
        "1",
        "--json",
    )
    assert code == 0, err
    record = json.loads(out)
    # 9 + (8 - 1 for the continue) + 5 - 2 overlapping in the crossfade
    assert read_video(tmp_path / "film.mp4").num_frames == 9 + 7 + 5 - 2
    assert [s["cached"] for s in record["shots"]] == [False, False, False]
    assert len(list((tmp_path / CACHE_DIR).glob("*.npy"))) == 3
    board.write_text(BOARD.replace("frames: 5", "frames: 9"))  # edit the last shot only
    code, out, _ = run(
        capsys,
        "storyboard",
        board,
        "-o",
        tmp_path / "film.mp4",
        "--model",
        tiny_model,
        "--steps",
        "1",
        "--json",
    )
    assert code == 0 and [s["cached"] for s in json.loads(out)["shots"]] == [True, True, False]


@pytest.mark.parametrize(
    "change, message",
    [
        (("prompt: a red circle moving right on a black background", "prompt: ''"), "shot 1, field 'prompt'"),
        (("seconds: 1", "seconds: -1"), "shot 2, field 'seconds'"),
        (("transition: crossfade:2", "transition: wipe"), "shot 2, field 'transition'"),
        (("image: start.png", "image: ../escape.png"), "shot 1, field 'image'"),
        (("frames: 5", "frames: 5\n    colour: red"), "shot 3, field 'colour'"),
        (("transition: crossfade:2", "transition: crossfade:20"), "shorter than the shot"),
    ],
)
def test_bad_boards_are_refused_before_work(tmp_path, change, message):
    board = _board(tmp_path, BOARD.replace(*change))
    with pytest.raises(InputError, match=message):
        load_board(board)
    assert not (tmp_path / CACHE_DIR).exists()
