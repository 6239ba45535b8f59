"""How robust and how specific the video watermark is, measured (`kinema bench --watermark`).

Two measurements over clips that a caller supplies (`ClipSource`: index, size → an
unmarked Video; the CLI passes rendered shapes-world clips, and provenance itself knows
no renderer):

- `robustness`: for each size, `clips` clips each get a random 64-bit payload under one
  key, then every attack in ATTACKS; per (size, attack): detection rate, payload-valid
  rate (detected and the CRC held), exact-payload rate, wrong payloads (valid CRC, wrong
  bits: should never happen), bit accuracy of the decoder's 64 payload bits at the best
  geometry (whether or not the mark was detected), and the PSNR of the marked clip.
- `false_positives`: unmarked clips, and clips marked under another key, each scored
  under `keys` random keys (`watermark.pilot_scores`: the frames are prepared once per
  clip; the few scores over the lower threshold that a valid CRC-16 makes enough get the
  full `detect`); trials = sizes × clips × 2 × keys; reports detections, the score
  distribution and its maximum against the detection threshold.

Codec attacks go through real files (PyAV, kinema.io) in a working folder.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from kinema.io import Video, read_video
from kinema.provenance.watermark import PAYLOAD_BYTES, detect, detect_raw, embed, pilot_scores, psnr

ClipSource = Callable[[int, int], Video]  # (index, size) -> an unmarked clip
Progress = Callable[[int, int], None]  # (done, total)
BENCH_KEY = b"kinema-watermark-bench-key"
FALSE_POSITIVE_OFFSET = 1_000_000  # clip indices for the false-positive clips start here


# ---------------------------------------------------------------- attacks


def through_file(video: Video, path: Path, crf: int | None = None) -> Video:
    """VIDEO written to PATH (its extension picks the codec: mp4 H.264, webm VP9, gif) and
    read back."""
    video.save(path, crf=crf)
    return read_video(path)


def per_frame(video: Video, fn: Callable[[np.ndarray], np.ndarray]) -> Video:
    return video.with_frames(np.stack([fn(f) for f in video.frames]))


def resize_half(video: Video) -> Video:
    """Down to half size (area averaging) and back up (bilinear)."""
    h, w = video.height, video.width
    return per_frame(
        video,
        lambda f: cv2.resize(cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h)),
    )


def crop(video: Video, corner: bool, resize_back: bool, fraction: float = 0.10) -> Video:
    """Cut `fraction` of each side's length away: centred, or all from the top-left corner;
    optionally resized back to the original size."""
    h, w = video.height, video.width
    ch, cw = round(h * fraction), round(w * fraction)
    y0, x0 = (ch, cw) if corner else (ch // 2, cw // 2)

    def f(x: np.ndarray) -> np.ndarray:
        c = x[y0 : y0 + h - ch, x0 : x0 + w - cw]
        return cv2.resize(c, (w, h)) if resize_back else c

    return per_frame(video, f)


def brightness(video: Video, factor: float) -> Video:
    """Every channel times `factor`, clipped to 0..255."""
    return video.with_frames(np.clip(video.frames * np.float32(factor), 0, 255).round().astype(np.uint8))


def drop_every_other(video: Video) -> Video:
    """Frames 0, 2, 4, … at half the rate."""
    return Video(video.frames[::2], video.fps / 2)


Attack = Callable[[Video, Path], Video]  # (marked clip, working folder) -> attacked clip
ATTACKS: dict[str, Attack] = {
    "none": lambda v, tmp: v,
    "h264_crf23": lambda v, tmp: through_file(v, tmp / "a.mp4", 23),
    "h264_crf30": lambda v, tmp: through_file(v, tmp / "a.mp4", 30),
    "vp9": lambda v, tmp: through_file(v, tmp / "a.webm"),
    "gif": lambda v, tmp: through_file(v, tmp / "a.gif"),
    "resize_0.5x_back": lambda v, tmp: resize_half(v),
    "crop10_center": lambda v, tmp: crop(v, corner=False, resize_back=False),
    "crop10_corner": lambda v, tmp: crop(v, corner=True, resize_back=False),
    "crop10_center_resize": lambda v, tmp: crop(v, corner=False, resize_back=True),
    "crop10_corner_resize": lambda v, tmp: crop(v, corner=True, resize_back=True),
    "brightness_0.8": lambda v, tmp: brightness(v, 0.8),
    "brightness_1.2": lambda v, tmp: brightness(v, 1.2),
    "drop_every_other_frame": lambda v, tmp: drop_every_other(v),
}


# ---------------------------------------------------------------- measurements


def _bit_accuracy(a: bytes, b: bytes) -> float:
    diff = np.unpackbits(np.frombuffer(bytes(x ^ y for x, y in zip(a, b, strict=True)), np.uint8))
    return 1.0 - float(diff.mean())


def robustness(
    source: ClipSource,
    sizes: Sequence[int] = (64, 256),
    clips: int = 50,
    attacks: Sequence[str] | None = None,
    key: bytes = BENCH_KEY,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[dict]:
    """One row per (size, attack) over clips 0 … clips-1 of `source` (see the module doc).

    Refuses fewer than one clip and attack names not in ATTACKS.
    """
    names = list(ATTACKS) if attacks is None else list(attacks)
    unknown = [a for a in names if a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack {unknown[0]!r}; known: {', '.join(ATTACKS)}")
    if clips < 1:
        raise ValueError(f"clips must be at least 1, got {clips}")
    rng = np.random.default_rng(seed)
    acc: dict[tuple[int, str], dict[str, list]] = {}
    total, done = len(sizes) * clips, 0
    with tempfile.TemporaryDirectory(prefix="kinema-wm-bench-") as tmp:
        for size in sizes:
            for index in range(clips):
                clip = source(index, size)
                payload = rng.bytes(PAYLOAD_BYTES)
                marked = embed(clip, payload, key)
                quality = psnr(clip.frames, marked.frames)
                for name in names:
                    result, raw = detect_raw(ATTACKS[name](marked, Path(tmp)), key)
                    row = acc.setdefault((size, name), {k: [] for k in _FIELDS})
                    row["detected"].append(result.detected)
                    row["valid"].append(result.payload_valid)
                    row["exact"].append(result.payload == payload)
                    row["wrong"].append(result.payload is not None and result.payload != payload)
                    row["bits"].append(_bit_accuracy(raw, payload))
                    row["psnr"].append(quality)
                    row["score"].append(result.score)
                    row["threshold"].append(result.threshold)
                    row["check_threshold"].append(result.check_threshold)
                    if result.payload != payload:
                        row["failures"].append(index)
                done += 1
                if progress:
                    progress(done, total)
    return [_row(size, name, acc[(size, name)]) for size in sizes for name in names]


_FIELDS = (
    "detected",
    "valid",
    "exact",
    "wrong",
    "bits",
    "psnr",
    "score",
    "threshold",
    "check_threshold",
    "failures",
)


def _row(size: int, attack: str, r: dict[str, list]) -> dict:
    def mean(k: str) -> float:
        return round(float(np.mean(r[k])), 4)

    scores = np.asarray(r["score"], np.float64)
    finite = scores[np.isfinite(scores)]
    return {
        "size": size,
        "attack": attack,
        "clips": len(r["detected"]),
        "detection_rate": mean("detected"),
        "payload_valid_rate": mean("valid"),
        "exact_payload_rate": mean("exact"),
        "wrong_payloads": int(np.sum(r["wrong"])),
        "bit_accuracy": mean("bits"),
        "min_bit_accuracy": round(float(np.min(r["bits"])), 4),
        "mean_psnr_db": round(float(np.mean(r["psnr"])), 2),
        "min_psnr_db": round(float(np.min(r["psnr"])), 2),
        "min_score": round(float(finite.min()), 2) if len(finite) else None,
        "threshold": round(float(np.mean(r["threshold"])), 2),
        "check_threshold": round(float(np.mean(r["check_threshold"])), 2),
        "failed_clips": r["failures"],
    }


def false_positives(
    source: ClipSource,
    sizes: Sequence[int] = (64, 256),
    clips: int = 50,
    keys: int = 50,
    seed: int = 1,
    progress: Progress | None = None,
) -> dict:
    """Scores of unmarked clips and of clips marked under another key, each under `keys`
    random keys: trials = len(sizes) × clips × 2 × keys (see the module doc).

    The clips are `source`'s indices FALSE_POSITIVE_OFFSET + 0 … clips-1, not the ones
    `robustness` marks. Refuses fewer than one clip or key.
    """
    if clips < 1 or keys < 1:
        raise ValueError(f"clips and keys must be at least 1, got {clips} and {keys}")
    rng = np.random.default_rng(seed)
    per_size, all_scores, total, done = [], [], len(sizes) * clips, 0
    for size in sizes:
        scores: dict[str, list[float]] = {"unmarked": [], "other_key": []}
        threshold = check_threshold = math.nan
        detections = over_check = 0
        for index in range(clips):
            clip = source(FALSE_POSITIVE_OFFSET + index, size)
            foreign = embed(clip, rng.bytes(PAYLOAD_BYTES), rng.bytes(16))
            for kind, video in (("unmarked", clip), ("other_key", foreign)):
                trial_keys = [rng.bytes(16) for _ in range(keys)]
                s, threshold, check_threshold = pilot_scores(video, trial_keys)
                scores[kind].extend(np.where(np.isfinite(s), s, 0.0).tolist())
                for k in np.flatnonzero(s >= check_threshold):  # the CRC decides these
                    over_check += 1
                    detections += detect(video, trial_keys[k]).detected
            done += 1
            if progress:
                progress(done, total)
        both = np.array(scores["unmarked"] + scores["other_key"])
        all_scores.append((both, threshold, detections))
        per_size.append(
            {
                "size": size,
                "trials": len(both),
                "detections": detections,
                "over_check_threshold": over_check,
                "threshold": round(threshold, 3),
                "check_threshold": round(check_threshold, 3),
                "max_score": round(float(both.max()), 3),
                "max_score_unmarked": round(float(np.max(scores["unmarked"])), 3),
                "max_score_other_key": round(float(np.max(scores["other_key"])), 3),
                "mean_score": round(float(both.mean()), 3),
                "std_score": round(float(both.std()), 3),
                "p999_score": round(float(np.quantile(both, 0.999)), 3),
            }
        )
    trials = sum(len(s) for s, _, _ in all_scores)
    detections = sum(d for _, _, d in all_scores)
    return {
        "trials": trials,
        "detections": detections,
        "rate": detections / trials,
        "max_margin_below_threshold": round(min(t - float(s.max()) for s, t, _ in all_scores), 3),
        "sizes": per_size,
    }


def run(
    source: ClipSource,
    clips: int = 50,
    sizes: Sequence[int] = (64, 256),
    fp_keys: int = 50,
    progress: Progress | None = None,
) -> dict:
    """Both measurements, as `kinema bench --watermark` prints them: robustness over `clips`
    clips per size, and false positives over `clips` clips × 2 variants × `fp_keys` keys
    per size (10,000 trials with the defaults)."""
    start = time.perf_counter()
    total = 2 * len(sizes) * clips
    half = len(sizes) * clips

    def first(done: int, _: int) -> None:
        if progress:
            progress(done, total)

    def second(done: int, _: int) -> None:
        if progress:
            progress(half + done, total)

    table = robustness(source, sizes, clips, progress=first)
    null = false_positives(source, sizes, clips, fp_keys, progress=second)
    worst = min(table, key=lambda r: r["exact_payload_rate"])
    return {
        "watermark": {
            "clips_per_size": clips,
            "sizes": list(sizes),
            "robustness": table,
            "false_positives": null,
            "summary": {
                "worst_attack": f"{worst['attack']}@{worst['size']}",
                "worst_exact_payload_rate": worst["exact_payload_rate"],
                "wrong_payloads": sum(r["wrong_payloads"] for r in table),
                "min_psnr_db": min(r["min_psnr_db"] for r in table),
            },
            "seconds": round(time.perf_counter() - start, 1),
        }
    }
