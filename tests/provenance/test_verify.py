"""`verify_file`: manifest state and watermark for good, stripped, tampered, foreign,
truncated and non-media files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import av
import numpy as np
import pytest

from kinema.errors import InputError
from kinema.io import Audio, Video, VideoError, read_video, write_png, write_video
from kinema.provenance import verify, watermark, watermark_v2
from kinema.provenance import watermark_grid as grid
from kinema.provenance.c2pa import (
    ALGORITHMIC_MEDIA,
    Generation,
    ManifestSpec,
    SoftBinding,
    sign_file,
)
from kinema.provenance.keys import ensure_keys, key_paths, watermark_key
from kinema.provenance.verify import VerifyError, verify_file
from kinema.state import kinema_home
from kinema.world import parse, render_frames

PROMPT = "a red circle moving right on a black background"
PAYLOAD = bytes.fromhex("0123456789abcdef")[: watermark.PAYLOAD_BYTES]
CARRIED = PAYLOAD[: watermark.payload_bytes(64, 64)]  # what a 64 px mark carries: 32 bits


@pytest.fixture
def keys():
    return ensure_keys(kinema_home())[0]


def clip(frames: int = 16, size: int = 64) -> Video:
    return Video(render_frames(parse(PROMPT), seed=0, frames=frames, size=size), fps=8)


def spec(title: str, **changes) -> ManifestSpec:
    fields = dict(
        title=title,
        generation=Generation(model="kinema-shapes-tiny", seed=7, prompt=PROMPT),
        soft_binding=SoftBinding(watermark.ALGORITHM, PAYLOAD.hex()),
    )
    fields.update(changes)
    return ManifestSpec(**fields)


def published(tmp_path: Path, name: str, keys, video: Video | None = None, mark=True) -> Path:
    """What publish makes: watermarked pixels, written, then signed."""
    video = video or clip()
    if mark:
        video = watermark.embed(video, PAYLOAD, watermark_key(kinema_home()))
    path = tmp_path / name
    write_video(video, path)
    sign_file(path, spec(path.name), keys)
    return path


def flip_mdat_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"mdat":
            data[offset + 8 + (size - 8) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            return
        offset += size
    raise AssertionError("no mdat box")


def faststart_mp4(path: Path, video: Video) -> None:
    """An mp4 with its index (moov) before the media data, as streaming files have."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=int(video.fps))
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for frame in video.frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


# ----------------------------------------------------------------------------- states


def test_published_mp4_is_trusted_with_watermark(tmp_path, keys):
    report = verify_file(published(tmp_path, "clip.mp4", keys))
    c2pa, mark = report["c2pa"], report["watermark"]
    assert c2pa["state"] == "Trusted", c2pa["reason"]
    assert c2pa["claims"]["generation"]["prompt"] == PROMPT
    assert c2pa["trust_anchor"] == str(keys.root_cert)
    # a 64 px clip carries the soft binding's first 32 bits, and they match it
    assert mark["detected"] is True and mark["payload"] == CARRIED.hex() and mark["payload_bits"] == 32
    assert mark["payload_valid"] is True and mark["version"] == 4 and mark["algorithm"] == watermark.ALGORITHM
    assert isinstance(mark["score"], float) and mark["matches_manifest"] is True
    assert report["summary"].startswith("manifest trusted")
    assert report["summary"].endswith("kinema watermark found")
    assert report["media"]["kind"] == "mp4" and report["media"]["has_audio"] is False
    assert report["media"]["damaged"] is False and report["media"]["decode_error"] is None
    assert "audio_watermark" not in report
    json.dumps(report, allow_nan=False)


def test_reencoded_file_keeps_the_watermark_only(tmp_path, keys):
    path = published(tmp_path, "clip.mp4", keys)
    copy = tmp_path / "copy.mp4"
    write_video(read_video(path), copy, crf=23)
    report = verify_file(copy)
    assert report["c2pa"]["state"] == "Absent"
    assert report["watermark"]["detected"] and report["watermark"]["payload"] == CARRIED.hex()
    assert report["summary"] == "kinema watermark found; no manifest (stripped?)"


def test_tampered_mp4_is_invalid(tmp_path, keys):
    path = published(tmp_path, "clip.mp4", keys)
    flip_mdat_byte(path)
    report = verify_file(path)
    assert report["c2pa"]["state"] == "Invalid"
    assert report["summary"].startswith("manifest invalid: ")
    assert "mismatch" in report["summary"]


def test_manifest_from_an_unknown_key_is_valid_not_trusted(tmp_path, keys):
    other, _ = ensure_keys(tmp_path / "other-home")
    path = tmp_path / "foreign.mp4"
    clip().save(path)
    sign_file(path, spec("foreign.mp4"), other)
    report = verify_file(path)
    assert report["c2pa"]["state"] == "Valid"
    assert "signingCredential.untrusted" in report["c2pa"]["codes"]
    assert report["watermark"]["detected"] is False and report["watermark"]["checked"] is True
    assert report["summary"].startswith("manifest valid but not trusted")
    assert report["summary"].endswith("no kinema watermark found")


def test_without_local_keys_nothing_is_created(tmp_path):
    other, _ = ensure_keys(tmp_path / "other-home")
    path = tmp_path / "clip.gif"
    clip(4).save(path)
    sign_file(path, spec("clip.gif"), other)
    report = verify_file(path)
    assert report["c2pa"]["state"] == "Valid" and report["c2pa"]["trust_anchor"] is None
    mark = report["watermark"]
    assert mark == {
        "detected": False,
        "payload_valid": False,
        "payload": None,
        "score": 0.0,
        "checked": False,
        "reason": "no local keys",
        "matches_manifest": None,
    }
    assert "watermark not checked (no local keys)" in report["summary"]
    assert not key_paths(kinema_home()).folder.exists()


def test_unsigned_unmarked_file_is_absent(tmp_path, keys):
    path = tmp_path / "plain.mp4"
    clip().save(path)
    report = verify_file(path)
    assert report["c2pa"]["state"] == "Absent" and not report["watermark"]["detected"]
    assert report["watermark"]["payload_valid"] is False and report["watermark"]["payload"] is None
    assert report["summary"] == "no manifest; no kinema watermark found"


def test_world_render_is_trusted_algorithmic_media_without_watermark(tmp_path, keys):
    path = tmp_path / "world.mp4"
    clip().save(path)
    sign_file(path, ManifestSpec(title="world.mp4", digital_source_type=ALGORITHMIC_MEDIA), keys)
    report = verify_file(path)
    assert report["c2pa"]["state"] == "Trusted"
    assert report["summary"] == (
        "manifest trusted (signed under the local root, algorithmicMedia); no kinema watermark found"
    )


@pytest.mark.parametrize("name", ["clip.webm", "clip.gif", "frames", "still.png"])
def test_other_media_kinds(tmp_path, keys, name):
    video = clip(1) if name.endswith(".png") else clip(16)
    if name.endswith(".png"):
        frame = watermark.embed(video, PAYLOAD, watermark_key(kinema_home())).frames[0]
        path = write_png(frame, tmp_path / name)
        sign_file(path, spec(name), keys)
    else:
        path = published(tmp_path, name, keys, video)
    report = verify_file(path)
    assert report["c2pa"]["state"] == "Trusted", report["c2pa"]["reason"]
    assert report["watermark"]["detected"], report["watermark"]
    assert report["watermark"]["payload"] == CARRIED.hex()
    if name == "clip.webm":
        assert report["c2pa"]["source"] == "sidecar"
    if name == "frames":
        assert report["media"]["kind"] == "frames"


def unreadable(video: Video) -> Video:
    """VIDEO with a mark under the local key whose pilot is intact but whose data cells
    are scrambled: what a heavily attacked clip can leave."""
    key = watermark_key(kinema_home())
    prof = grid.profile(video.height, video.width)
    lay = grid.layout(key, prof)
    chips = grid.chip_grid(CARRIED, key, prof).reshape(-1)
    chips[lay.data_cells] = np.random.default_rng(3).choice([-1.0, 1.0], len(lay.data_cells))
    mark = grid.render(chips.reshape(prof.grid, -1), video.height, video.width, 1)
    frames = video.frames.astype(np.float32) + 4 * mark[None, ..., None]
    return video.with_frames(np.clip(frames, 0, 255).round().astype(np.uint8))


def test_a_mark_with_an_unreadable_payload_is_found_but_not_matched(tmp_path, keys):
    gray = Video(np.full((8, 64, 64, 3), 128, np.uint8), fps=8)
    path = published(tmp_path, "frames", keys, unreadable(gray), mark=False)
    report = verify_file(path)
    mark = report["watermark"]
    assert mark["detected"] is True and mark["payload_valid"] is False
    assert mark["payload"] is None and mark["matches_manifest"] is None
    assert report["c2pa"]["state"] == "Trusted"
    assert report["summary"].endswith("; kinema watermark found (payload unreadable)")
    write_video(read_video(path), tmp_path / "copy.mp4", crf=18)  # stripped: no manifest
    report = verify_file(tmp_path / "copy.mp4")
    assert report["summary"] == "kinema watermark found (payload unreadable); no manifest (stripped?)"


def test_only_the_first_two_seconds_are_decoded(tmp_path, keys):
    path = published(tmp_path, "long.mp4", keys, clip(80))  # 10 s at 8 fps
    report = verify_file(path)
    assert report["media"]["frames_checked"] == 16
    assert report["watermark"]["frames_checked"] == 16 and report["watermark"]["detected"]


def test_unmarked_audio_is_checked_and_not_detected(tmp_path, keys):
    t = np.arange(16000) / 16000
    audio = Audio(0.2 * np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000)
    video = Video(clip(16).frames, 8, audio)
    report = verify_file(published(tmp_path, "talk.mp4", keys, video))
    assert report["media"]["has_audio"] is True
    assert report["audio_watermark"]["checked"] and not report["audio_watermark"]["detected"]
    assert report["c2pa"]["state"] == "Trusted"


# ----------------------------------------------------------------------------- bad input


def test_truncated_mp4_that_still_decodes_gives_a_report(tmp_path, keys):
    path = tmp_path / "stream.mp4"
    noise = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    faststart_mp4(path, Video(noise, fps=8))  # noise: big frames, so a cut lands late
    sign_file(path, spec(path.name), keys)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    report = verify_file(path)
    assert 0 < report["media"]["frames_checked"] < 16
    assert report["c2pa"]["state"] == "Invalid"
    assert report["summary"].startswith("manifest invalid")
    json.dumps(report, allow_nan=False)


def test_decode_error_midway_keeps_the_frames_before_it(tmp_path, keys, monkeypatch):
    path = published(tmp_path, "clip.mp4", keys)

    def failing_read(*args, **kwargs):
        raise VideoError("cannot decode 'clip.mp4': Invalid data found when processing input")

    monkeypatch.setattr(verify, "read_video", failing_read)
    report = verify_file(path)
    assert report["media"]["damaged"] is True and "Invalid data" in report["media"]["decode_error"]
    assert report["media"]["frames_checked"] == 16 and report["watermark"]["detected"]


def test_truncated_mp4_that_decodes_nothing_is_refused(tmp_path, keys):
    path = published(tmp_path, "clip.mp4", keys)  # index at the end: cut off
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(VerifyError, match="not media kinema can decode"):
        verify_file(path)


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.txt", b"hello, not a video"),
        ("fake.mp4", b"not an mp4 at all"),
        ("fake.png", b"\x89PNG\r\n\x1a\n broken"),
        ("empty.webm", b""),
    ],
)
def test_non_media_is_refused(tmp_path, keys, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VerifyError) as info:
        verify_file(path)
    assert isinstance(info.value, InputError) and "\n" not in str(info.value)


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (3, 200)])
def test_tiny_images_give_strict_json(tmp_path, keys, shape):
    path = write_png(np.zeros((*shape, 3), np.uint8), tmp_path / "tiny.png")
    report = verify_file(path)
    json.dumps(report, allow_nan=False)
    assert report["watermark"]["detected"] is False
    assert isinstance(report["watermark"]["score"], float)


def test_missing_path_and_empty_folder_are_refused(tmp_path):
    with pytest.raises(VerifyError, match="does not exist"):
        verify_file(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VerifyError, match="no frame"):
        verify_file(tmp_path / "empty")


def test_a_128px_clip_carries_all_64_bits_and_a_v2_mark_is_still_read(tmp_path, keys):
    report = verify_file(published(tmp_path, "big.mp4", keys, clip(16, size=128)))
    mark = report["watermark"]
    assert mark["payload"] == PAYLOAD.hex() and mark["payload_bits"] == 64 and mark["matches_manifest"]
    old = watermark_v2.embed(clip(), PAYLOAD, watermark_key(kinema_home()))
    report = verify_file(published(tmp_path, "old.mp4", keys, old, mark=False))
    mark = report["watermark"]
    assert mark["detected"] and mark["version"] == 2 and mark["payload"] == PAYLOAD.hex()
    assert mark["matches_manifest"] is True and report["summary"].endswith("kinema watermark found (v2)")


def test_a_soft_binding_that_does_not_start_with_the_marks_bits_is_a_mismatch(tmp_path, keys):
    video = watermark.embed(clip(), bytes(8), watermark_key(kinema_home()))
    report = verify_file(published(tmp_path, "other.mp4", keys, video, mark=False))
    assert report["watermark"]["payload"] == "00000000" and report["watermark"]["matches_manifest"] is False
