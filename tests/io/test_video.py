import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kinema.io.video as video_module
from kinema.io import Audio, Video, VideoError, check_output_path, read_image, read_video, write_png


def _clip(t=8, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, 4:14, 2 + i : 12 + i] = rng.integers(0, 255, 3)
    return frames


@pytest.mark.parametrize("name, tolerance", [("a.mp4", 6), ("a.webm", 6), ("a.gif", 0.5), ("frames", 0)])
def test_round_trip_every_format(tmp_path, name, tolerance):
    frames = _clip()
    Video(frames, fps=12).save(tmp_path / name)
    back = read_video(tmp_path / name)
    assert back.frames.shape == frames.shape and back.fps == 12
    assert np.abs(back.frames.astype(int) - frames).mean() <= tolerance


@pytest.mark.parametrize("name", ["a.mp4", "a.webm", "a.gif", "frames/"])
@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 17, 33), (2, 1, 1)])
def test_odd_sizes_and_single_frames(tmp_path, name, shape):
    frames = np.random.default_rng(1).integers(0, 255, (*shape, 3), dtype=np.uint8)
    Video(frames).save(tmp_path / name)
    assert read_video(tmp_path / name).frames.shape == frames.shape


@pytest.mark.parametrize("name, rate", [("a.mp4", 16000), ("a.webm", 48000)])
def test_audio_is_carried(tmp_path, name, rate):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)
    Video(_clip(t=16), 8, Audio(tone, 16000)).save(tmp_path / name)
    back = read_video(tmp_path / name)
    assert back.audio is not None and back.audio.rate == rate
    assert back.audio.seconds == pytest.approx(2.0, abs=0.1)
    assert np.abs(back.audio.samples).max() > 0.3


@pytest.mark.parametrize("name", ["a.gif", "frames"])
def test_audio_refused_where_the_format_has_none(tmp_path, name):
    with pytest.raises(VideoError, match="cannot carry audio"):
        Video(_clip(), 8, Audio(np.zeros(100), 16000)).save(tmp_path / name)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "a.mp4"
    Video(_clip()).save(target)
    before = target.read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(video_module, "_write_av", explode)
    with pytest.raises(RuntimeError):
        Video(_clip(seed=5)).save(target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.mp4"]


def test_frame_folder_replaces_own_files_and_refuses_foreign(tmp_path):
    folder = tmp_path / "frames"
    Video(_clip(t=8)).save(folder)
    Video(_clip(t=3)).save(folder)
    assert sorted(os.listdir(folder)) == [
        "frame_0000.png",
        "frame_0001.png",
        "frame_0002.png",
        "settings.json",
    ]
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(VideoError, match="did not write"):
        Video(_clip()).save(folder)
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "target, message",
    [
        ("missing/a.mp4", "does not exist"),
        ("a.avi", "unsupported output extension"),
        ("dir.mp4", "is a directory"),
    ],
)
def test_bad_output_paths(tmp_path, target, message):
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(VideoError, match=message):
        check_output_path(tmp_path / target)


def test_reading_refuses_missing_broken_and_oversized(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="cannot decode"):
        read_video(tmp_path / "text.mp4")
    Video(_clip()).save(tmp_path / "a.mp4")
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "a.mp4").read_bytes()[:200])
    with pytest.raises(VideoError):
        read_video(tmp_path / "cut.mp4")
    with pytest.raises(VideoError, match="too large"):
        read_video(tmp_path / "a.mp4", max_bytes=10_000)
    assert read_video(tmp_path / "a.mp4", max_frames=3).num_frames == 3


def test_invalid_values_are_refused():
    with pytest.raises(VideoError):
        Video(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(VideoError):
        Video(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(VideoError):
        Video(np.zeros((0, 4, 4, 3), np.uint8))
    with pytest.raises(VideoError):
        Video(np.zeros((1, 4, 4, 3), np.uint8), fps=0)


def test_png_image_round_trip(tmp_path):
    image = _clip(t=1)[0]
    write_png(image, tmp_path / "x.png")
    assert np.array_equal(read_image(tmp_path / "x.png"), image)


@settings(max_examples=15, deadline=None)
@given(t=st.integers(1, 4), h=st.integers(1, 24), w=st.integers(1, 24), seed=st.integers(0, 99))
def test_png_folders_are_lossless(tmp_path_factory, t, h, w, seed):
    frames = np.random.default_rng(seed).integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    folder = tmp_path_factory.mktemp("f") / "frames"
    Video(frames, fps=5).save(folder)
    back = read_video(folder)
    assert np.array_equal(back.frames, frames) and back.fps == 5
