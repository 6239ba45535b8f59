"""Stitching: frames and sound line up, transitions render, inputs become ingredients."""

import json

import cv2
import numpy as np
import pytest

from kinema.errors import InputError
from kinema.governance import review
from kinema.io import Audio, Video, read_video
from kinema.provenance.verify import verify_file
from kinema.studio import letterbox, parse_transition, resample_fps, stitch, stitch_files


@pytest.fixture(autouse=True)
def _single_thread():
    cv2.setNumThreads(1)


def solid(t, colour, h=16, w=16, fps=8.0, audio=None) -> Video:
    return Video(np.full((t, h, w, 3), colour, np.uint8), fps, audio)


def tone(seconds, rate=16000, freq=440.0, channels=1) -> Audio:
    x = np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate).astype(np.float32) * 0.5
    return Audio(np.repeat(x[None], channels, axis=0), rate)


def test_cut_concatenates():
    out = stitch([solid(4, 10), solid(6, 200)])
    assert out.num_frames == 10 and out.fps == 8
    assert (out.frames[:4] == 10).all() and (out.frames[4:] == 200).all()


def test_crossfade_blends_linearly_over_n_frames():
    out = stitch([solid(8, 0), solid(8, 200)], "crossfade:3")
    assert out.num_frames == 13
    levels = out.frames[:, 0, 0, 0].tolist()
    assert levels[:5] == [0] * 5 and levels[8:] == [200] * 5
    assert levels[5:8] == [50, 100, 150]  # (k + 1) / (N + 1) of the way


def test_frame_rate_is_normalised_by_time():
    frames = np.zeros((8, 4, 4, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(8) * 10
    fast = Video(frames, fps=16)  # half a second
    resampled = resample_fps(fast, 8)
    assert len(resampled) == 4 and resampled[:, 0, 0, 0].tolist() == [0, 20, 40, 60]
    out = stitch([solid(8, 0, h=4, w=4), fast])
    assert out.num_frames == 12 and out.fps == 8


def test_size_is_normalised_by_letterboxing():
    wide = Video(np.full((2, 10, 40, 3), 255, np.uint8))
    boxed = letterbox(wide.frames, 20, 20)
    assert boxed.shape == (2, 20, 20, 3)
    assert (boxed[:, :7] == 0).all() and (boxed[:, 8:12] == 255).all() and (boxed[:, 13:] == 0).all()
    out = stitch([solid(2, 9, h=20, w=20), wide])
    assert out.frames.shape == (4, 20, 20, 3)


def test_audio_is_carried_with_silence_and_crossfaded():
    a = solid(8, 0, audio=tone(1.0))  # one second of frames and sound
    b = solid(8, 100)  # no sound: one second of silence
    c = solid(8, 200, audio=tone(2.0, rate=8000, channels=2))  # sound longer than its frames
    out = stitch([a, b, c])
    assert out.audio is not None and out.audio.rate == 16000 and out.audio.samples.shape == (2, 48000)
    s = out.audio.samples
    assert np.abs(s[:, :16000]).max() > 0.4
    assert np.abs(s[:, 16000:32000]).max() == 0
    assert np.abs(s[:, 32000:]).max() > 0.4
    faded = stitch([a, b], "crossfade:4")
    # 4 frames at 8 fps: half a second of overlap, sound fading out under the picture
    assert faded.audio.samples.shape[1] == round((16 - 4) / 8 * 16000)
    mid = faded.audio.samples[0, 12000:16000]
    assert 0.0 < np.abs(mid).max() < 0.5
    assert stitch([solid(2, 0), solid(2, 1)]).audio is None


@pytest.mark.parametrize(
    "spec, words",
    [
        ("wipe", "unknown transition 'wipe'"),
        ("crossfade", "unknown transition"),
        ("crossfade:x", "not a whole number"),
        ("crossfade:0", "at least 1 frame"),
        ("crossfade:-2", "at least 1 frame"),
    ],
)
def test_bad_transitions_are_refused_by_name(spec, words):
    with pytest.raises(InputError, match=words):
        stitch([solid(4, 0), solid(4, 1)], spec)


def test_a_crossfade_longer_than_a_clip_names_the_clip():
    assert parse_transition("Crossfade:5") == 5 and parse_transition("cut") == 0
    with pytest.raises(InputError, match="clip 2 allows: it has 6 frames .* needs 8"):
        stitch([solid(10, 0), solid(6, 1), solid(10, 2)], "crossfade:4")
    with pytest.raises(InputError, match="clip 1"):
        stitch([solid(3, 0), solid(10, 2)], "crossfade:4")
    with pytest.raises(InputError, match="nothing to stitch"):
        stitch([])


def test_stitch_files_publishes_an_edit_with_every_input_as_ingredient(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.webm"
    solid(8, 40, h=32, w=32, audio=tone(1.0)).save(a)
    solid(12, 160, h=24, w=48, fps=12).save(b)
    (tmp_path / "a.mp4.json").write_text(json.dumps({"seed": 1234}))
    out = tmp_path / "joined.mp4"
    record = stitch_files([a, b], out, "crossfade:2")
    assert record["seed"] == 1234 and record["path"] == str(out)
    assert record["transition"] == "crossfade:2" and record["inputs"] == [str(a), str(b)]
    video = read_video(out)
    assert video.frames.shape == (8 + 8 - 2, 32, 32, 3) and video.fps == 8
    assert video.audio is not None
    report = verify_file(out)
    manifest = report["c2pa"]
    assert manifest["state"] in ("Trusted", "Valid")
    assert manifest["claims"]["digital_source_type"].endswith("/algorithmicMedia")
    assert [i["relationship"] for i in manifest["ingredients"]] == ["parentOf", "inputTo"]
    assert [i["title"] for i in manifest["ingredients"]] == ["a.mp4", "b.webm"]
    assert not report["watermark"]["detected"]
    assert review.get(record["id"]).status == "pending"
    sidecar = json.loads((tmp_path / "joined.mp4.json").read_text())
    assert sidecar["model"] == "kinema stitch" and len(sidecar["inputs_sha256"]) == 2


def test_stitch_files_refuses_before_writing(tmp_path):
    a = tmp_path / "a.mp4"
    solid(4, 0).save(a)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="junk.mp4"):
        stitch_files([a, tmp_path / "junk.mp4"], tmp_path / "out.mp4")
    with pytest.raises(InputError, match="missing.mp4"):
        stitch_files([a, tmp_path / "missing.mp4"], tmp_path / "out.mp4")
    with pytest.raises(InputError, match="also an input"):
        stitch_files([a, a], a)
    with pytest.raises(InputError, match="unknown transition"):
        stitch_files([a, a], tmp_path / "out.mp4", "dissolve")
    with pytest.raises(InputError, match="does not exist"):
        stitch_files([a, a], tmp_path / "nowhere" / "out.mp4")
    with_sound = tmp_path / "s.mp4"
    solid(8, 0, audio=tone(1.0)).save(with_sound)
    with pytest.raises(InputError, match="GIF cannot hold"):
        stitch_files([with_sound, a], tmp_path / "out.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "junk.mp4", "s.mp4"]
