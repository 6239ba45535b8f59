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
  - prompt: a red circle moving left on a black background
    seconds: 1
    transition: continue
  - prompt: a blue square growing on a white background
    frames: 5
    transition: crossfade:2
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


def run_board(capsys, board, model, *options):
    """`kinema storyboard BOARD -o film.mp4` (next to the board) on MODEL at 1 step."""
    film = board.parent / "film.mp4"
    return run(capsys, "storyboard", board, "-o", film, "--model", model, "--steps", "1", *options)


def test_board_renders_joins_and_caches(tiny_model, tmp_path, capsys):
    board = _board(tmp_path)
    code, out, err = run_board(capsys, board, tiny_model, "--json")
    assert code == 0, err
    record = json.loads(out)
    # 9 + (8 - 1 for the continue) + 5 - 2 overlapping in the crossfade
    assert read_video(tmp_path / "film.mp4").num_frames == 9 + 7 + 5 - 2
    assert [s["cached"] for s in record["shots"]] == [False, False, False]
    assert len(list((tmp_path / CACHE_DIR).glob("*.npy"))) == 3
    board.write_text(BOARD.replace("frames: 5", "frames: 9"))  # edit the last shot only
    code, out, _ = run_board(capsys, board, tiny_model, "--json")
    assert code == 0 and [s["cached"] for s in json.loads(out)["shots"]] == [True, True, False]


@pytest.mark.parametrize(
    "change, message",
    [
        (("prompt: a red circle moving right on a black background", "prompt: ''"), "shot 1, field 'prompt'"),
        (("seconds: 1", "seconds: -1"), "shot 2, field 'seconds'"),
        (("transition: crossfade:2", "transition: wipe"), "shot 3, field 'transition'"),
        (("image: start.png", "image: ../escape.png"), "shot 1, field 'image'"),
        (("frames: 5", "frames: 5\n    colour: red"), "shot 3, field 'colour'"),
        (("transition: crossfade:2", "transition: crossfade:20"), "shorter than the shots it joins"),
        (
            ("image: start.png", "image: start.png\n    transition: cut"),
            "shot 1, field 'transition'.*none before",
        ),
        (("frames: 9", "frames: 9\n    candidates: 0"), "shot 1, field 'candidates'"),
        (("seconds: 1", "seconds: 1\n    retakes: -1"), "shot 2, field 'retakes'"),
        (("frames: 5", "frames: 5\n    qa_threshold: 2"), "shot 3, field 'qa_threshold'"),
        (("shots:", "candidates: many\nshots:"), "storyboard, field 'candidates'"),
        (("shots:", "colour: red\nshots:"), "storyboard, field 'colour'"),
        (("shots:", "report: ../run.html\nshots:"), "storyboard, field 'report'.*outside"),
        (("shots:", "report: run.txt\nshots:"), "storyboard, field 'report'.*must end in .html"),
        (
            ("shots:", "contact_sheet: nowhere/sheet.png\nshots:"),
            "field 'contact_sheet'.*folder that does not exist",
        ),
    ],
)
def test_bad_boards_are_refused_before_work(tmp_path, change, message):
    board = _board(tmp_path, BOARD.replace(*change))
    with pytest.raises(InputError, match=message):
        load_board(board)
    assert not (tmp_path / CACHE_DIR).exists()


def test_board_takes_and_report_work_through_the_command(tiny_model, tmp_path, capsys):
    text = "candidates: 2\nretakes: 1\nreport: run.html\ncontact_sheet: sheet.png\n" + BOARD
    board = _board(tmp_path, text)
    code, out, err = run_board(capsys, board, tiny_model, "--json")
    assert code == 0, err
    shots = json.loads(out)["shots"]
    for entry in shots:
        seeds = [t["seed"] for t in entry["takes"]]
        assert seeds[:2] == [entry["takes"][0]["seed"], entry["takes"][0]["seed"] + 1] and len(seeds) <= 3
        assert entry["seed"] in seeds and entry["retakes"] == len(seeds) - 2
    made = len(list((tmp_path / CACHE_DIR).glob("*.npy")))
    assert made == sum(len(e["takes"]) for e in shots)
    assert (tmp_path / "run.html").stat().st_size > 0 and (tmp_path / "sheet.png").stat().st_size > 0
    code, out, _ = run_board(capsys, board, tiny_model, "--json")
    assert code == 0 and all(e["cached"] for e in json.loads(out)["shots"])
    assert len(list((tmp_path / CACHE_DIR).glob("*.npy"))) == made


def test_command_line_overrides_set_every_shots_takes_and_the_outputs(tmp_path):
    board = load_board(_board(tmp_path, "candidates: 2\n" + BOARD))
    assert [s.candidates for s in board] == [2, 2, 2]
    changed = board.with_takes(candidates=4, qa_threshold=0.5)
    assert [(s.candidates, s.retakes, s.qa_threshold) for s in changed] == [(4, 0, 0.5)] * 3
    assert board.with_takes() is board and changed[0].prompt == board[0].prompt
    with pytest.raises(InputError, match="retakes"):
        board.with_takes(retakes=-2)
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    out = changed.writing(report=elsewhere / "r.html", contact_sheet=elsewhere / "s.png")
    assert (out.report, out.contact_sheet) == (elsewhere / "r.html", elsewhere / "s.png")
    with pytest.raises(InputError, match="--report .* must end in .html"):
        board.writing(report=elsewhere / "r.pdf")
    with pytest.raises(InputError, match="--contact-sheet .* folder that does not exist"):
        board.writing(contact_sheet=tmp_path / "missing" / "s.png")


def test_storyboard_options_set_takes_and_write_the_report(tiny_model, tmp_path, capsys):
    board = _board(tmp_path)
    code, out, err = run_board(
        capsys,
        board,
        tiny_model,
        "--candidates",
        "2",
        "--report",
        tmp_path / "run.html",
        "--contact-sheet",
        tmp_path / "sheet.png",
        "--json",
    )
    assert code == 0, err
    shots = json.loads(out)["shots"]
    assert all(len(s["takes"]) >= 2 for s in shots)
    html = (tmp_path / "run.html").read_text()
    assert "<html" in html and "a blue square growing on a white background" in html
    assert (tmp_path / "sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--candidates", "0", "candidates"),
        ("--qa-threshold", "2", "threshold"),
        ("--report", "x.txt", "--report"),
    ],
)
def test_storyboard_refuses_bad_take_options_before_generating(tmp_path, capsys, option, value, message):
    board = _board(tmp_path)
    code, _, err = run(capsys, "storyboard", board, "-o", tmp_path / "film.mp4", option, value)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "film.mp4").exists()


def test_generate_keeps_the_best_of_several_takes(tiny_model, tmp_path, capsys):
    out_path = tmp_path / "best.mp4"
    code, out, err = run(
        capsys,
        "generate",
        "a red circle moving right on a black background",
        "-o",
        out_path,
        "--model",
        tiny_model,
        "--steps",
        "1",
        "--seed",
        "5",
        "--candidates",
        "3",
        "--json",
    )
    assert code == 0, err
    record = json.loads(out)
    assert sorted(t["seed"] for t in record["takes"]["takes"]) == [5, 6, 7]
    assert record["seed"] == record["takes"]["seed"] and read_video(out_path).num_frames == 16
    code, _, err = run(capsys, "generate", "a red circle", "-o", tmp_path / "x.mp4", "--candidates", "0")
    assert code == 2 and "candidates" in err and not (tmp_path / "x.mp4").exists()


def test_shots_take_adapters(tmp_path):
    text = BOARD.replace(
        "    seed: 1\n", "    seed: 1\n    lora: [pink:0.8, styles/ink.safetensors, gone:0]\n"
    )
    text = text.replace("    frames: 5\n", "    frames: 5\n    lora: pink\n")
    board = load_board(_board(tmp_path, text))
    first, _, last = board
    assert [(a.source, a.scale) for a in first.adapters] == [
        ("pink", 0.8),
        (str((tmp_path / "styles" / "ink.safetensors").resolve()), 1.0),
    ]  # scale 0 leaves an adapter out
    assert [(a.source, a.scale) for a in last.adapters] == [("pink", 1.0)]
    for bad, words in [
        ("[3]", "must be NAME_OR_FILE"),
        ("../x.safetensors", "outside the storyboard's folder"),
    ]:
        with pytest.raises(InputError, match=words):
            load_board(_board(tmp_path, BOARD.replace("    seed: 1\n", f"    seed: 1\n    lora: {bad}\n")))
