"""The invisible watermark: round trip, invisibility, robustness, false positives."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from kinema.io import Video, read_video
from kinema.provenance import watermark as wm
from kinema.provenance.watermark import PAYLOAD_BYTES, detect, embed, psnr

KEY = b"kinema-test-key"
PAYLOAD = bytes.fromhex("0123456789abcdef")

BLACK, WHITE, GRAY = (0, 0, 0), (255, 255, 255), (128, 128, 128)
RED, BLUE, GREEN = (220, 30, 30), (30, 60, 220), (30, 180, 50)


def shapes(size=64, bg=BLACK, colour=RED, frames=16, d=0.22, seed=0) -> Video:
    """A disk moving right over a flat background, anti-aliased as the shapes world draws it."""
    rng = np.random.default_rng(seed)
    cy, a, ss = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.3), 4
    yy, xx = (np.mgrid[0 : size * ss, 0 : size * ss] + 0.5) / (size * ss)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        cx = a + (1 - 2 * a) * min(t, 15) / 15
        disk = ((xx - cx) ** 2 + (yy - cy) ** 2 <= (d / 2) ** 2).astype(np.float32)
        cover = disk.reshape(size, ss, size, ss).mean(axis=(1, 3))[..., None]
        out[t] = np.round(np.multiply(bg, 1 - cover) + np.multiply(colour, cover))
    return Video(out, 8.0)


def texture(size=512, frames=8, seed=0) -> Video:
    """Natural-ish content: multi-octave coloured noise plus a gradient, drifting slowly."""
    rng = np.random.default_rng(seed)
    big = size + 2 * frames
    img = np.zeros((big, big, 3), np.float32)
    for octave in range(1, 7):
        noise = cv2.GaussianBlur(rng.normal(0, 1, (big, big, 3)).astype(np.float32), (0, 0), big / 2**octave)
        img += noise / (noise.std() + 1e-6) * 40 / octave**0.7
    img = np.clip(img + 128 + np.linspace(-40, 40, big, dtype=np.float32)[None, :, None], 0, 255)
    return Video(
        np.stack([img[t : t + size, 2 * t : 2 * t + size] for t in range(frames)]).round().astype(np.uint8)
    )


def through(video: Video, path, crf=None) -> Video:
    video.save(path, crf=crf)
    return read_video(path)


def per_frame(video: Video, fn) -> Video:
    return video.with_frames(np.stack([fn(f) for f in video.frames]))


def resize_half(v: Video) -> Video:
    h, w = v.height, v.width
    return per_frame(
        v,
        lambda f: cv2.resize(cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h)),
    )


def crop(v: Video, corner: bool, resize_back: bool) -> Video:
    h, w = v.height, v.width
    ch, cw = round(h * 0.1), round(w * 0.1)
    y0, x0 = (ch, cw) if corner else (ch // 2, cw // 2)

    def f(x):
        c = x[y0 : y0 + h - ch, x0 : x0 + w - cw]
        return cv2.resize(c, (w, h)) if resize_back else c

    return per_frame(v, f)


def bright(v: Video, k: float) -> Video:
    return v.with_frames(np.clip(v.frames * np.float32(k), 0, 255).round().astype(np.uint8))


ATTACKS = {
    "h264_crf23": lambda v, tmp: through(v, tmp / "a.mp4", 23),
    "h264_crf30": lambda v, tmp: through(v, tmp / "a.mp4", 30),
    "vp9": lambda v, tmp: through(v, tmp / "a.webm"),
    "gif": lambda v, tmp: through(v, tmp / "a.gif"),
    "resize_half_and_back": lambda v, tmp: resize_half(v),
    "crop_center_resize": lambda v, tmp: crop(v, corner=False, resize_back=True),
    "crop_corner_resize": lambda v, tmp: crop(v, corner=True, resize_back=True),
    "crop_center": lambda v, tmp: crop(v, corner=False, resize_back=False),
    "crop_corner": lambda v, tmp: crop(v, corner=True, resize_back=False),
    "brightness_0.8": lambda v, tmp: bright(v, 0.8),
    "brightness_1.2": lambda v, tmp: bright(v, 1.2),
    "drop_every_other_frame": lambda v, tmp: Video(v.frames[::2], v.fps / 2),
}

CLIPS = {
    "black_red": lambda: shapes(bg=BLACK, colour=RED),
    "white_blue": lambda: shapes(bg=WHITE, colour=BLUE, seed=2),
}
_marked: dict[str, Video] = {}


def marked(name: str) -> Video:
    if name not in _marked:
        _marked[name] = embed(CLIPS[name](), PAYLOAD, KEY)
    return _marked[name]


def test_round_trip_gives_the_exact_payload():
    clip = shapes()
    out = embed(clip, PAYLOAD, KEY)
    assert out.frames.shape == clip.frames.shape and out.fps == clip.fps
    r = detect(out, KEY)
    assert r.detected and r.payload == PAYLOAD
    assert r.score > r.threshold + 3
    assert 0 <= r.bit_errors < 0.1 * r.coded_bits
    d = r.to_dict()
    assert d["payload"] == PAYLOAD.hex() and d["detected"] is True and d["p_value"] < 1e-6


def test_embedding_is_deterministic():
    clip = shapes(bg=GRAY, colour=GREEN)
    assert np.array_equal(embed(clip, PAYLOAD, KEY).frames, embed(clip, PAYLOAD, KEY).frames)


@pytest.mark.parametrize(
    "clip",
    [
        shapes(bg=BLACK, colour=RED),
        shapes(bg=WHITE, colour=BLUE),
        shapes(bg=GRAY, colour=GREEN),
        Video(np.zeros((4, 64, 64, 3), np.uint8)),  # pure black: the mark can only add
        Video(np.full((4, 64, 64, 3), 255, np.uint8)),
        texture(512, frames=2),
        Video(np.random.default_rng(0).integers(0, 256, (2, 512, 512, 3), dtype=np.uint8)),
    ],
    ids=["black", "white", "gray", "pure-black", "pure-white", "texture512", "noise512"],
)
def test_psnr_is_at_least_38_db_in_every_frame(clip):
    out = embed(clip, PAYLOAD, KEY)
    for a, b in zip(clip.frames, out.frames, strict=True):
        assert 38.0 <= psnr(a, b) < 45  # invisible, yet not a no-op
    # a larger strength never goes below the floor
    strong = embed(clip, PAYLOAD, KEY, strength=4.0)
    assert psnr(clip.frames, strong.frames) >= 38.0


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("name", list(CLIPS))
def test_survives_attack_at_64(name, attack, tmp_path):
    attacked = ATTACKS[attack](marked(name), tmp_path)
    r = detect(attacked, KEY)
    if name == "white_blue" and attack == "brightness_1.2":
        # ×1.2 clips everything above 212 to 255: an invisible mark on white is erased
        # there, whatever the design. What is asked: no wrong payload is ever reported.
        assert not r.detected or r.payload == PAYLOAD
        return
    assert r.detected, r.to_dict()
    assert r.payload == PAYLOAD, r.to_dict()


def test_small_red_circle_on_black_survives_h264_crf23(tmp_path):
    clip = shapes(bg=BLACK, colour=RED, d=0.16, seed=5)
    r = detect(through(embed(clip, PAYLOAD, KEY), tmp_path / "c.mp4", 23), KEY)
    assert r.detected and r.payload == PAYLOAD


def test_gray_background_survives_codecs(tmp_path):
    m = embed(shapes(bg=GRAY, colour=GREEN, seed=3), PAYLOAD, KEY)
    for attacked in (through(m, tmp_path / "g.mp4", 30), resize_half(crop(m, False, True))):
        r = detect(attacked, KEY)
        assert r.detected and r.payload == PAYLOAD


def test_512_texture_survives_h264_and_crop(tmp_path):
    clip = texture(512, frames=8)
    m = embed(clip, PAYLOAD, KEY)
    assert psnr(clip.frames, m.frames) >= 38.0
    attacked = crop(through(m, tmp_path / "t.mp4", 23), corner=True, resize_back=False)
    r = detect(attacked, KEY)
    assert r.detected and r.payload == PAYLOAD, r.to_dict()
    assert r.tiles > 1


def test_any_one_second_window_decodes():
    m = embed(shapes(frames=32, seed=4), PAYLOAD, KEY)  # 4 s at 8 fps
    for start in (0, 8, 13, 24):
        window = Video(m.frames[start : start + 8], m.fps)
        r = detect(window, KEY)
        assert r.detected and r.payload == PAYLOAD, (start, r.to_dict())
    two_seconds = Video(m.frames[5:21], m.fps)
    assert detect(two_seconds, KEY).payload == PAYLOAD
    one_frame = Video(m.frames[20:21], m.fps)
    assert detect(one_frame, KEY).payload == PAYLOAD


def test_unmarked_clips_and_wrong_keys_are_not_detected():
    rng = np.random.default_rng(99)
    makers = [
        lambda s: shapes(s, BLACK, RED, frames=int(rng.integers(1, 17)), seed=s),
        lambda s: shapes(s, WHITE, BLUE, frames=8, d=0.3, seed=s),
        lambda s: shapes(s, GRAY, GREEN, frames=4, seed=s),
        lambda s: texture(s, frames=3, seed=s),
        lambda s: Video(rng.integers(0, 256, (2, s, s, 3), dtype=np.uint8)),
        lambda s: Video(np.zeros((3, s, s, 3), np.uint8)),
    ]
    scores = []
    for i in range(60):
        size = int(rng.choice([64, 96, 160]))
        clip = makers[i % len(makers)](size)
        if i % 2:  # marked, but under another key
            clip = embed(clip, rng.bytes(PAYLOAD_BYTES), rng.bytes(16))
        r = detect(clip, rng.bytes(16))
        assert not r.detected and r.payload is None and r.bit_errors is None
        scores.append(r.score)
    # the threshold sits far above what unmarked content reaches (it is set for 1e-6)
    assert max(scores) < detect(shapes(), KEY).threshold - 1.0
    assert not detect(marked("black_red"), b"another key").detected


def test_error_correction_fixes_flipped_bits():
    bits = np.unpackbits(np.frombuffer(PAYLOAD, np.uint8))
    coded = wm._conv_encode(bits)
    rng = np.random.default_rng(0)
    soft = 1.0 - 2.0 * coded
    flip = rng.choice(len(coded), size=len(coded) // 10, replace=False)
    soft[flip] *= -1
    assert np.array_equal(wm._viterbi(soft), bits)


def test_refusals():
    clip = shapes(frames=2)
    with pytest.raises(ValueError, match="payload"):
        embed(clip, b"short", KEY)
    with pytest.raises(ValueError, match="key"):
        embed(clip, PAYLOAD, b"")
    with pytest.raises(ValueError, match="key"):
        detect(clip, b"")
    with pytest.raises(ValueError, match="strength"):
        embed(clip, PAYLOAD, KEY, strength=0)
    with pytest.raises(ValueError, match="too small"):
        embed(Video(np.zeros((1, 4, 4, 3), np.uint8)), PAYLOAD, KEY)
    with pytest.raises(ValueError, match="shapes"):
        psnr(np.zeros((2, 2)), np.zeros((3, 3)))


def test_embedding_is_fast():
    clip = shapes(frames=16, seed=7)
    t0 = time.perf_counter()
    m = embed(clip, PAYLOAD, KEY)
    detect(m, KEY)
    assert time.perf_counter() - t0 < 1.0
