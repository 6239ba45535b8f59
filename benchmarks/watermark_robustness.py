"""Watermark robustness table: for each content × size × attack, was the mark found?

Prints JSON (a list of rows: content, size, attack, detected, payload_ok, bit_errors,
score, psnr) and a summary with false-positive checks on unmarked clips and wrong keys.

    .venv/bin/python benchmarks/watermark_robustness.py [--quick] [--null N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from kinema.io import Video, read_video
from kinema.provenance.watermark import PAYLOAD_BYTES, detect, embed, psnr

KEY = b"benchmark-key-0123456789"
PAYLOAD = bytes.fromhex("c0ffee0123456789")[:PAYLOAD_BYTES]


# ---------------------------------------------------------------- content


def shapes_clip(
    size: int, bg: tuple, colour: tuple, frames: int = 16, d: float = 0.22, seed: int = 0
) -> Video:
    """A disk of diameter d·size moving right across a uniform background (4× supersampled)."""
    rng = np.random.default_rng(seed)
    cy = rng.uniform(0.3, 0.7)
    a = rng.uniform(0.2, 0.3)
    ss = 4
    out = np.empty((frames, size, size, 3), np.uint8)
    yy, xx = np.mgrid[0 : size * ss, 0 : size * ss]
    yy = (yy + 0.5) / (size * ss)
    xx = (xx + 0.5) / (size * ss)
    for t in range(frames):
        u = min(t, 15) / 15
        cx = a + (1 - 2 * a) * u
        inside = ((xx - cx) ** 2 + (yy - cy) ** 2 <= (d / 2) ** 2).astype(np.float32)
        cover = inside.reshape(size, ss, size, ss).mean(axis=(1, 3))[..., None]
        img = np.asarray(bg, np.float32) * (1 - cover) + np.asarray(colour, np.float32) * cover
        out[t] = np.round(img).astype(np.uint8)
    return Video(out, 8.0)


def texture_clip(size: int, frames: int = 16, seed: int = 0) -> Video:
    """Natural-ish content: multi-octave coloured noise with a gradient, drifting slowly."""
    rng = np.random.default_rng(seed)
    big = size + 2 * frames
    img = np.zeros((big, big, 3), np.float32)
    for octave in range(1, 7):
        sigma = big / 2**octave
        noise = rng.normal(0, 1, (big, big, 3)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
        img += noise / (noise.std() + 1e-6) * 40 / octave**0.7
    img += np.linspace(-40, 40, big, dtype=np.float32)[None, :, None]
    img = np.clip(img + 128, 0, 255)
    out = np.stack([img[t : t + size, 2 * t : 2 * t + size] for t in range(frames)])
    return Video(np.round(out).astype(np.uint8), 8.0)


def noise_clip(size: int, frames: int = 16, seed: int = 0) -> Video:
    """Independent uniform noise each frame: a worst case for host interference."""
    rng = np.random.default_rng(seed)
    return Video(rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8), 8.0)


CONTENTS = {
    "black+red": lambda s: shapes_clip(s, (0, 0, 0), (220, 30, 30)),
    "black+small-red": lambda s: shapes_clip(s, (0, 0, 0), (220, 30, 30), d=0.16, seed=1),
    "white+blue": lambda s: shapes_clip(s, (255, 255, 255), (30, 60, 220), seed=2),
    "gray+green": lambda s: shapes_clip(s, (128, 128, 128), (30, 180, 50), seed=3),
    "texture": texture_clip,
}


# ---------------------------------------------------------------- attacks


def _through(video: Video, suffix: str, crf: int | None = None) -> Video:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{suffix}"
        video.save(path, crf=crf)
        return read_video(path)


def _map(video: Video, fn) -> Video:
    return video.with_frames(np.stack([fn(f) for f in video.frames]))


def _resize_half(v: Video) -> Video:
    h, w = v.height, v.width

    def f(x):
        small = cv2.resize(x, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    return _map(v, f)


def _crop(v: Video, where: str, resize_back: bool, frac: float = 0.10) -> Video:
    h, w = v.height, v.width
    ch, cw = int(round(h * frac)), int(round(w * frac))
    if where == "center":
        y0, x0 = ch // 2, cw // 2
    else:
        y0, x0 = ch, cw  # crop 10 % from the top-left corner
    y1, x1 = y0 + h - ch, x0 + w - cw

    def f(x):
        c = x[y0:y1, x0:x1]
        return cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) if resize_back else c

    return _map(v, f)


def _bright(v: Video, k: float) -> Video:
    return v.with_frames(np.clip(v.frames.astype(np.float32) * k, 0, 255).round().astype(np.uint8))


ATTACKS = {
    "none": lambda v: v,
    "h264_crf23": lambda v: _through(v, ".mp4", 23),
    "h264_crf30": lambda v: _through(v, ".mp4", 30),
    "vp9": lambda v: _through(v, ".webm"),
    "gif": lambda v: _through(v, ".gif"),
    "resize_0.5x_back": _resize_half,
    "crop10_center_resize": lambda v: _crop(v, "center", True),
    "crop10_corner_resize": lambda v: _crop(v, "corner", True),
    "crop10_center": lambda v: _crop(v, "center", False),
    "crop10_corner": lambda v: _crop(v, "corner", False),
    "bright_0.8": lambda v: _bright(v, 0.8),
    "bright_1.2": lambda v: _bright(v, 1.2),
    "drop_every_other": lambda v: Video(v.frames[::2], v.fps / 2),
    "first_second": lambda v: Video(v.frames[: int(v.fps)], v.fps),
    "one_frame": lambda v: Video(v.frames[5:6], v.fps),
    "crop10_resize+h264_crf23": lambda v: _through(_crop(v, "center", True), ".mp4", 23),
    "resize_0.5x+h264_crf30": lambda v: _through(_resize_half(v), ".mp4", 30),
}


def run(sizes, contents, attacks, null_trials: int) -> dict:
    rows = []
    for size in sizes:
        for cname in contents:
            clip = CONTENTS[cname](size)
            t0 = time.perf_counter()
            marked = embed(clip, PAYLOAD, KEY)
            t_embed = time.perf_counter() - t0
            q = psnr(clip.frames, marked.frames)
            for aname in attacks:
                attacked = ATTACKS[aname](marked)
                t0 = time.perf_counter()
                r = detect(attacked, KEY)
                t_detect = time.perf_counter() - t0
                rows.append(
                    {
                        "content": cname,
                        "size": size,
                        "attack": aname,
                        "detected": r.detected,
                        "payload_ok": r.payload == PAYLOAD,
                        "bit_errors": r.bit_errors,
                        "score": round(r.score, 2),
                        "psnr": round(q, 2),
                        "embed_s": round(t_embed, 3),
                        "detect_s": round(t_detect, 3),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr)
    # false positives: unmarked clips (attacked or not) and marked clips with wrong keys
    rng = np.random.default_rng(1234)
    null_scores, null_hits = [], 0
    makers = list(CONTENTS.values()) + [noise_clip]
    for i in range(null_trials):
        size = int(rng.choice([64, 128]))
        clip = makers[i % len(makers)](size)
        if i % 2:
            clip = embed(clip, rng.bytes(PAYLOAD_BYTES), rng.bytes(16))  # marked, other key
        key = rng.bytes(16)
        r = detect(clip, key)
        null_scores.append(r.score)
        null_hits += r.detected
    summary = {
        "null_trials": null_trials,
        "null_detections": null_hits,
        "null_score_max": round(max(null_scores), 2) if null_scores else None,
        "null_score_mean": round(float(np.mean(null_scores)), 2) if null_scores else None,
        "threshold_64": round(detect(CONTENTS["texture"](64), KEY).threshold, 2),
        "rows": len(rows),
        "detected": sum(r["detected"] for r in rows),
        "payload_ok": sum(r["payload_ok"] for r in rows),
    }
    return {"rows": rows, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="64×64 only, fewer attacks")
    ap.add_argument("--sizes", default="64,512")
    ap.add_argument("--contents", default=",".join(CONTENTS))
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--null", type=int, default=40, help="false-positive trials")
    args = ap.parse_args()
    sizes = [64] if args.quick else [int(s) for s in args.sizes.split(",")]
    result = run(sizes, args.contents.split(","), args.attacks.split(","), args.null)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
