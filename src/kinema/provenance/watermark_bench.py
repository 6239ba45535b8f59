"""How invisible, robust and specific the video watermark is, measured (`kinema bench --watermark`).

Three measurements over clips that a caller supplies (provenance itself knows no model
and no renderer; the CLI passes the built-in model's output and shapes-world renders):

- `visibility` of one marked clip against its original: the luma of each frame minus its
  Gaussian blur (σ = 1.5 px), its std over the flat pixels (those at least 4 px from any
  pixel more than 30 grey levels from the frame's border median), pooled over all frames,
  for the marked and the unmarked clip; and the PSNR of the clip.
- `robustness`: for each background and size, `clips` model clips (`ModelSource`: index,
  background, size → an unmarked Video) each get a random payload under one key, then
  every attack in REQUIRED_ATTACKS (or those asked for); per (background, size, attack):
  detection rate, payload-valid rate (detected and the CRC held), exact-payload rate,
  wrong payloads (valid CRC, wrong bits: should never happen), bit accuracy of the
  decoder's payload bits at the best geometry (whether or not the mark was detected);
  per (background, size): the pooled visibility of all its clips and their PSNR.
- `false_positives`: unmarked clips, and clips marked under another key (`ClipSource`:
  index, size; shapes-world renders), each scored under `keys` random keys
  (`watermark.pilot_scores`: the frames are prepared once per clip; the few scores over
  the lower threshold that a valid CRC-16 makes enough get the full decode); trials =
  sizes × clips × 2 × keys; reports detections and the score distribution.

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
from kinema.provenance.watermark import ALGORITHM, PAYLOAD_BYTES, detect_raw, embed, pilot_scores, psnr
from kinema.provenance.watermark_grid import flat_mask, high_pass, luma

ClipSource = Callable[[int, int], Video]  # (index, size) -> an unmarked clip
ModelSource = Callable[[int, str, int], Video]  # (index, background, size) -> an unmarked model clip
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
    """Down to half size and back up, bilinear both ways."""
    h, w = video.height, video.width
    return per_frame(
        video,
        lambda f: cv2.resize(cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_LINEAR), (w, h)),
    )


def crop(video: Video, corner: bool, resize_back: bool, fraction: float = 0.10) -> Video:
    """Cut `fraction` of each side's length away: centred (half a side each: 5 % a side
    for 10 %), or all from the top-left corner; optionally resized back to the original
    size."""
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
# What issue 25 asks of v3, each on its own (VP9 at kinema's default quality, GIF through
# kinema's own writer, the crop kept at the cropped size).
REQUIRED_ATTACKS = (
    "none",
    "h264_crf30",
    "vp9",
    "gif",
    "resize_0.5x_back",
    "crop10_center",
    "brightness_0.8",
    "brightness_1.2",
    "drop_every_other_frame",
)
BACKGROUNDS = ("black", "gray", "white")
SIZES = (64, 128)


# ---------------------------------------------------------------- visibility


def residuals(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Luma minus its Gaussian blur (σ = 1.5 px, `watermark_grid.high_pass`) at the masked
    pixels of every frame, pooled (1-D)."""
    out = [high_pass(y)[mask] for y, mask in zip(luma(frames), masks, strict=True)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def visibility(original: Video, marked: Video) -> dict:
    """How visible the mark is in MARKED (the same frames as ORIGINAL plus the mark): the
    flat-region residual std of both (flat pixels as the original's frames define them,
    pooled over frames), their difference, the std of the mark-only part of the residual,
    the count of flat pixels and the clip's PSNR."""
    masks = np.stack([flat_mask(f) for f in original.frames])
    r_marked, r_plain = residuals(marked.frames, masks), residuals(original.frames, masks)
    return _visibility_row(r_marked, r_plain, psnr(original.frames, marked.frames))


def _visibility_row(r_marked: np.ndarray, r_plain: np.ndarray, quality: float) -> dict:
    if len(r_marked) == 0:
        return {"flat_pixels": 0, "residual_marked": None, "residual_unmarked": None, "psnr_db": quality}
    marked, plain = float(r_marked.std()), float(r_plain.std())
    return {
        "flat_pixels": len(r_marked),
        "residual_marked": round(marked, 3),
        "residual_unmarked": round(plain, 3),
        "residual_increase": round(marked - plain, 3),
        "residual_of_mark": round(float((r_marked - r_plain).std()), 3),
        "psnr_db": round(quality, 2),
    }


# ---------------------------------------------------------------- robustness


def _bit_accuracy(a: bytes, b: bytes) -> float:
    diff = np.unpackbits(np.frombuffer(bytes(x ^ y for x, y in zip(a, b, strict=True)), np.uint8))
    return 1.0 - float(diff.mean())


def robustness(
    source: ModelSource,
    backgrounds: Sequence[str] = BACKGROUNDS,
    sizes: Sequence[int] = SIZES,
    clips: int = 50,
    attacks: Sequence[str] | None = None,
    key: bytes = BENCH_KEY,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[list[dict], list[dict]]:
    """(attack rows, visibility rows) over clips 0 … clips-1 of `source` per background
    and size (see the module doc). The payload compared is what the mark carries at that
    size (`watermark.payload_bytes`: 32 bits under 96 px). Refuses fewer than one clip and
    attack names not in ATTACKS."""
    names = list(REQUIRED_ATTACKS) if attacks is None else list(attacks)
    unknown = [a for a in names if a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack {unknown[0]!r}; known: {', '.join(ATTACKS)}")
    if clips < 1:
        raise ValueError(f"clips must be at least 1, got {clips}")
    rng = np.random.default_rng(seed)
    rows, seen = [], []
    total, done = len(backgrounds) * len(sizes) * clips, 0
    with tempfile.TemporaryDirectory(prefix="kinema-wm-bench-") as tmp:
        for background in backgrounds:
            for size in sizes:
                acc: dict[str, dict[str, list]] = {n: {k: [] for k in _FIELDS} for n in names}
                pooled: dict[str, list] = {"marked": [], "plain": [], "sq": [], "n": []}
                for index in range(clips):
                    clip = source(index, background, size)
                    payload = rng.bytes(PAYLOAD_BYTES)
                    marked = embed(clip, payload, key)
                    masks = np.stack([flat_mask(f) for f in clip.frames])
                    pooled["marked"].append(residuals(marked.frames, masks))
                    pooled["plain"].append(residuals(clip.frames, masks))
                    diff = clip.frames.astype(np.float64) - marked.frames
                    pooled["sq"].append(float(np.sum(diff * diff)))
                    pooled["n"].append(diff.size)
                    for name in names:
                        result, raw = detect_raw(ATTACKS[name](marked, Path(tmp)), key)
                        carried = payload[: len(raw)]
                        row = acc[name]
                        row["detected"].append(result.detected)
                        row["valid"].append(result.payload_valid)
                        row["exact"].append(result.payload == carried)
                        row["wrong"].append(result.payload is not None and result.payload != carried)
                        row["bits"].append(_bit_accuracy(raw, carried))
                        row["score"].append(result.score)
                        row["threshold"].append(result.threshold)
                        row["payload_bits"].append(result.payload_bits)
                        if result.payload != carried:
                            row["failures"].append(index)
                    done += 1
                    if progress:
                        progress(done, total)
                mse = sum(pooled["sq"]) / sum(pooled["n"])
                quality = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
                seen.append(
                    {
                        "background": background,
                        "size": size,
                        "clips": clips,
                        **_visibility_row(
                            np.concatenate(pooled["marked"]), np.concatenate(pooled["plain"]), quality
                        ),
                    }
                )
                rows.extend(_row(background, size, name, acc[name]) for name in names)
    return rows, seen


_FIELDS = ("detected", "valid", "exact", "wrong", "bits", "score", "threshold", "payload_bits", "failures")


def _row(background: str, size: int, attack: str, r: dict[str, list]) -> dict:
    def mean(k: str) -> float:
        return round(float(np.mean(r[k])), 4)

    scores = np.asarray(r["score"], np.float64)
    finite = scores[np.isfinite(scores)]
    return {
        "background": background,
        "size": size,
        "attack": attack,
        "clips": len(r["detected"]),
        "payload_bits": int(max(r["payload_bits"])),
        "detection_rate": mean("detected"),
        "payload_valid_rate": mean("valid"),
        "exact_payload_rate": mean("exact"),
        "wrong_payloads": int(np.sum(r["wrong"])),
        "bit_accuracy": mean("bits"),
        "min_score": round(float(finite.min()), 2) if len(finite) else None,
        "threshold": round(float(np.mean(r["threshold"])), 2),
        "failed_clips": r["failures"],
    }


# ---------------------------------------------------------------- false positives


def false_positives(
    source: ClipSource,
    sizes: Sequence[int] = SIZES,
    clips: int = 50,
    keys: int = 50,
    seed: int = 1,
    progress: Progress | None = None,
) -> dict:
    """Scores of unmarked clips and of clips marked under another key, each under `keys`
    random keys: trials = len(sizes) × clips × 2 × keys (see the module doc).

    The clips are `source`'s indices FALSE_POSITIVE_OFFSET + 0 … clips-1. Refuses fewer
    than one clip or key.
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
                    detections += detect_raw(video, trial_keys[k])[0].detected
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


# ---------------------------------------------------------------- the whole bench

# Issue 25's acceptance: flat-region residual (grey levels) per size, PSNR, exact payload.
RESIDUAL_LIMITS = {64: 1.0, 128: 0.7}
MIN_PSNR = 40.0
MIN_EXACT = 0.99


def acceptance(robust: list[dict], seen: list[dict], null: dict) -> dict:
    """Each acceptance check of issue 25 with its measured value and whether it holds. The
    residual is checked as measured (marked clip) and as the mark's own increase over the
    model's residual; ×1.2 on white is reported, not required (the clipping erases it)."""
    checks = []
    for v in seen:
        limit = RESIDUAL_LIMITS.get(v["size"])
        if limit is not None and v["residual_marked"] is not None:
            where = f"{v['background']}@{v['size']}"
            checks.append(
                {
                    "check": f"residual {where} <= {limit}",
                    "value": v["residual_marked"],
                    "ok": v["residual_marked"] <= limit,
                }
            )
            checks.append(
                {
                    "check": f"residual increase {where} <= {limit}",
                    "value": v["residual_increase"],
                    "ok": v["residual_increase"] <= limit,
                }
            )
        checks.append(
            {
                "check": f"psnr {v['background']}@{v['size']} >= {MIN_PSNR}",
                "value": v["psnr_db"],
                "ok": v["psnr_db"] >= MIN_PSNR,
            }
        )
    for r in robust:
        if r["background"] == "white" and r["attack"] == "brightness_1.2":
            continue
        checks.append(
            {
                "check": f"exact {r['attack']} {r['background']}@{r['size']} >= {MIN_EXACT}",
                "value": r["exact_payload_rate"],
                "ok": r["exact_payload_rate"] >= MIN_EXACT,
            }
        )
    checks.append(
        {"check": "false positives == 0", "value": null["detections"], "ok": null["detections"] == 0}
    )
    checks.append(
        {
            "check": "wrong payloads == 0",
            "value": sum(r["wrong_payloads"] for r in robust),
            "ok": all(r["wrong_payloads"] == 0 for r in robust),
        }
    )
    failed = [c for c in checks if not c["ok"]]
    return {"passed": len(checks) - len(failed), "checks": len(checks), "failed": failed}


def run(
    model_source: ModelSource,
    world_source: ClipSource,
    clips: int = 50,
    sizes: Sequence[int] = SIZES,
    backgrounds: Sequence[str] = BACKGROUNDS,
    fp_keys: int = 50,
    progress: Progress | None = None,
) -> dict:
    """All three measurements, as `kinema bench --watermark` prints them: visibility and
    robustness over `clips` model clips per background and size, and false positives over
    `clips` world renders × 2 variants × `fp_keys` keys per size (10,000 trials with the
    defaults)."""
    start = time.perf_counter()
    half = len(backgrounds) * len(sizes) * clips
    total = half + len(sizes) * clips

    def first(done: int, _: int) -> None:
        if progress:
            progress(done, total)

    def second(done: int, _: int) -> None:
        if progress:
            progress(half + done, total)

    robust, seen = robustness(model_source, backgrounds, sizes, clips, progress=first)
    null = false_positives(world_source, sizes, clips, fp_keys, progress=second)
    return {
        "watermark": {
            "algorithm": ALGORITHM,
            "clips_per_background_and_size": clips,
            "backgrounds": list(backgrounds),
            "sizes": list(sizes),
            "visibility": seen,
            "robustness": robust,
            "false_positives": null,
            "acceptance": acceptance(robust, seen, null),
            "seconds": round(time.perf_counter() - start, 1),
        }
    }
