"""The preview file: a watermarked contact sheet written atomically, its path refused
before any work, and the CLI's --preview run (sheets written while sampling, none left
after, the clip the same as without a preview)."""

import os

import cv2
import numpy as np
import pytest

from kinema.cli import main
from kinema.errors import InputError
from kinema.io import Video, read_video
from kinema.provenance.keys import watermark_key
from kinema.provenance.watermark import detect
from kinema.render import ClipRequest
from kinema.render import preview as preview_module
from kinema.render.preview import PreviewFile, check_preview_path, contact_sheet, tile_indices
from kinema.state import kinema_home

PROMPT = "a red circle moving right on a black background"


def _frames(t=16, size=64):
    frames = np.zeros((t, size, size, 3), np.uint8)
    for i in range(t):
        frames[i, 20:40, 2 * i : 2 * i + 20] = (220, 30, 30)
    return frames


def test_sheet_shows_every_other_frame_or_at_most_32():
    assert tile_indices(16) == [0, 2, 4, 6, 8, 10, 12, 14]
    long = tile_indices(256)
    assert len(long) == 32 and long[0] == 0 and long[-1] == 255
    sheet = contact_sheet(_frames(), 4, 24)
    assert sheet.dtype == np.uint8 and sheet.shape == (18 + 2 * 130, 4 * 130, 3)  # two rows of four


def test_file_is_a_watermarked_png_replaced_in_place(tmp_path):
    path = tmp_path / "p.png"
    sheet = PreviewFile(path, ClipRequest(prompt=PROMPT, seed=3), every=2)
    with sheet.removed():
        sheet.preview.show(2, 6, _frames())
        first = path.read_bytes()
        sheet.preview.show(4, 6, _frames(9))
        assert path.read_bytes() != first and sheet.written == 2
        assert os.listdir(tmp_path) == ["p.png"]  # no temporary file left beside it
        image = cv2.imread(str(path))[..., ::-1]
        assert image.shape[2] == 3
        found = detect(Video(np.ascontiguousarray(image)[None], 1.0), watermark_key(kinema_home()))
        assert found.detected
    assert not path.exists()  # removed when the run ends


@pytest.mark.parametrize(
    "name, why",
    [("", "needs a file name"), ("dir", "directory"), ("p.jpg", "does not end in .png"),
     ("missing/p.png", "does not exist"), ("out.png", "is the output")],
)  # fmt: skip
def test_bad_paths_are_refused(tmp_path, name, why):
    (tmp_path / "dir").mkdir()
    path = "" if name == "" else str(tmp_path / name)
    with pytest.raises(InputError, match=why):
        check_preview_path(path, tmp_path / "out.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(InputError, match="directory"):
        check_preview_path(tmp_path / "dir.png")


def _run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize("preview", ["", "sheet.jpg", "nowhere/sheet.png", "clip.mp4"])
def test_cli_refuses_a_bad_preview_path_before_any_work(capsys, tmp_path, monkeypatch, preview):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "generate", PROMPT, "-o", "clip.mp4", "--preview", preview, "--steps", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and out == ""
    assert os.listdir(tmp_path) == []


def test_cli_refuses_preview_on_batch(capsys, tmp_path):
    (tmp_path / "prompts.txt").write_text(PROMPT + "\n")
    code, _, err = _run(
        capsys, "batch", str(tmp_path / "prompts.txt"), "-o", str(tmp_path / "out"), "--preview", "p.png"
    )
    assert code == 2 and "--preview works with generate" in err


def test_cli_preview_written_while_sampling_and_gone_after(capsys, tmp_path, tiny_model, monkeypatch):
    seen = []
    write = PreviewFile.write

    def spy(self, step, total, frames):
        write(self, step, total, frames)
        data = self.path.read_bytes()
        seen.append(
            (step, total, data[:8], cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape)
        )

    monkeypatch.setattr(preview_module.PreviewFile, "write", spy)
    common = ["--model", str(tiny_model), "--seed", "7", "--steps", "3", "--frames", "9"]
    sheet = tmp_path / "live.png"
    code, _, _ = _run(capsys, "generate", PROMPT, "-o", str(tmp_path / "a"), "--preview", str(sheet),
                      "--preview-every", "2", *common)  # fmt: skip
    assert code == 0
    assert [(s, n) for s, n, _, _ in seen] == [(2, 3), (3, 3)]
    assert all(
        magic == b"\x89PNG\r\n\x1a\n" and shape[:2] == (18 + 2 * 130, 3 * 130) for _, _, magic, shape in seen
    )
    assert not sheet.exists()
    code, _, _ = _run(capsys, "generate", PROMPT, "-o", str(tmp_path / "b"), *common)
    assert code == 0
    assert np.array_equal(read_video(tmp_path / "a").frames, read_video(tmp_path / "b").frames)
