"""`kinema detect`: a triage score for "made by kinema's built-in model" vs rendered/real.

Triage only: never the sole basis for a decision. The watermark and the C2PA manifest
(`kinema verify`) are the evidence; this score is for clips that carry neither, and it
knows only what it was trained on.

The classifier is small and readable: FEATURE_NAMES hand-made measures of a clip (edge
sharpness, high-frequency and residual-noise energy, temporal flicker, colour and palette
statistics) on a canonical 64×64 view of its first 16 frames, standardised, then a
logistic regression over each standardised feature and its square (a curved boundary;
fitted in numpy, L2, Newton's method), calibrated by Platt scaling on a held-out split,
so `score` is a probability. Its weights are a JSON file
(weights/triage/triage.json) that also records the data, the metrics on a held-out test
split and the command that made it.

Training data (`collect`): clips made by a generator (the built-in model) and clips
rendered for the same prompts (the shapes-world renderer), plus procedural
natural-texture clips as a stand-in for real footage; every clip is also seen re-encoded
(H.264 at a random CRF, VP9) and watermarked then re-encoded, so codec artefacts and
the watermark are in both classes and are not the signal. The split is by prompt: no
prompt's clips are in two splits. `collect` takes the generator and renderer as
functions (provenance knows no model and no renderer); `kinema detect --retrain` passes
them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from kinema.errors import InputError
from kinema.io import Video, read_video
from kinema.provenance.watermark import PAYLOAD_BYTES, embed

CAVEAT = "triage only: never the sole basis for a decision"
FORMAT = "kinema-triage-v1"
SIDE = 64  # features are measured on a SIDE×SIDE view
MAX_FRAMES = 16  # … of the first MAX_FRAMES frames
FEATURE_NAMES = (
    "edge_p99",
    "edge_profile",
    "laplacian_ratio",
    "hf_power",
    "mid_power",
    "flat_noise",
    "median_residual",
    "flicker",
    "flat_flicker",
    "temporal_accel",
    "saturation_mean",
    "saturation_p95",
    "chroma_noise",
    "palette_share",
    "distinct_colours",
    "value_range",
    "border_std",
)
GENERATED, RENDERED, TEXTURE = "generated", "rendered", "texture"


class TriageError(InputError):
    """The input is not a clip the classifier can score, or the weights are unusable."""


# ---------------------------------------------------------------- features


def _canonical(video: Video) -> np.ndarray:
    """The first MAX_FRAMES frames at SIDE×SIDE (area averaging down, bilinear up), float32."""
    frames = video.frames[:MAX_FRAMES]
    h, w = frames.shape[1:3]
    if (h, w) == (SIDE, SIDE):
        return frames.astype(np.float32)
    shrink = h >= SIDE and w >= SIDE
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (SIDE, SIDE), interpolation=method) for f in frames]).astype(np.float32)


def _log(x: float, floor: float = 0.1) -> float:
    return math.log(max(float(x), 0.0) + floor)


def _band_power(luma: np.ndarray) -> tuple[float, float]:
    """Shares of the non-DC spectral power above 0.35 and in 0.12–0.35 cycles a pixel."""
    window = np.outer(np.hanning(SIDE), np.hanning(SIDE)).astype(np.float32)
    power = np.zeros((SIDE, SIDE), np.float64)
    for y in luma:
        power += np.abs(np.fft.fft2((y - y.mean()) * window)) ** 2
    f = np.fft.fftfreq(SIDE)
    radius = np.hypot(f[:, None], f[None, :])
    total = power[radius > 0].sum() + 1e-9
    return (power[radius > 0.35].sum() / total, power[(radius > 0.12) & (radius <= 0.35)].sum() / total)


def features(video: Video) -> np.ndarray:
    """FEATURE_NAMES measured on `video` (float64, finite): see the module doc."""
    rgb = _canonical(video)  # (T, S, S, 3)
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    grad = np.stack(
        [np.hypot(cv2.Sobel(y, cv2.CV_32F, 1, 0), cv2.Sobel(y, cv2.CV_32F, 0, 1)) / 8 for y in luma]
    )
    lap = np.stack([np.abs(cv2.Laplacian(y, cv2.CV_32F, ksize=1)) for y in luma])
    span = float(np.percentile(luma, 99.5) - np.percentile(luma, 0.5)) + 8.0
    g = np.sort(grad.reshape(-1))[::-1]
    top1, top10 = g[: max(1, len(g) // 100)].mean(), g[: max(1, len(g) // 10)].mean()
    flat = grad < max(2.0, float(np.percentile(grad, 50)))
    hf, mid = _band_power(luma)

    local_var = np.stack([cv2.blur(y * y, (3, 3)) - cv2.blur(y, (3, 3)) ** 2 for y in luma])
    local_std = np.sqrt(np.maximum(local_var, 0))
    residual = np.stack([y - cv2.medianBlur(np.ascontiguousarray(y), 3) for y in luma])

    if len(luma) > 1:
        step = np.abs(np.diff(luma, axis=0))
        both_flat = flat[1:] & flat[:-1]
        flicker = float(np.median(step.mean(axis=0)))
        flat_flicker = float(step[both_flat].mean()) if both_flat.any() else 0.0
        accel = float(np.abs(np.diff(luma, n=2, axis=0)).mean()) if len(luma) > 2 else 0.0
        temporal_accel = math.log((accel + 0.1) / (float(step.mean()) + 0.1))
    else:
        flicker = flat_flicker = temporal_accel = 0.0

    hsv = np.stack([cv2.cvtColor(f.astype(np.uint8), cv2.COLOR_RGB2HSV) for f in rgb]).astype(np.float32)
    saturation = hsv[..., 1] / 255.0
    chroma = rgb - luma[..., None]
    chroma_hp = np.stack([c - cv2.GaussianBlur(c, (0, 0), 1.0) for c in chroma])
    chroma_noise = float(chroma_hp[flat].std()) if flat.any() else 0.0

    quantised = (rgb.reshape(-1, 3) // 16).astype(np.int64)
    codes = quantised[:, 0] * 256 + quantised[:, 1] * 16 + quantised[:, 2]
    counts = np.bincount(codes, minlength=4096)
    palette_share = float(np.sort(counts)[::-1][:8].sum() / len(codes))
    fine = (rgb.reshape(-1, 3) // 8).astype(np.int64)
    distinct = len(np.unique(fine[:, 0] * 1024 + fine[:, 1] * 32 + fine[:, 2])) / len(fine)

    border = np.concatenate(
        [
            rgb[:, :2].reshape(-1, 3),
            rgb[:, -2:].reshape(-1, 3),
            rgb[:, :, :2].reshape(-1, 3),
            rgb[:, :, -2:].reshape(-1, 3),
        ]
    )
    values = [
        _log(np.percentile(grad, 99) / span, 1e-3),
        math.log((top1 + 0.1) / (top10 + 0.1)),
        math.log((float(lap.mean()) + 0.1) / (float(grad.mean()) + 0.1)),
        _log(hf, 1e-6),
        _log(mid, 1e-6),
        _log(np.median(local_std)),
        _log(residual[flat].std() if flat.any() else 0.0),
        _log(flicker),
        _log(flat_flicker),
        temporal_accel,
        float(saturation.mean()),
        float(np.percentile(saturation, 95)),
        _log(chroma_noise),
        palette_share,
        _log(distinct, 1e-4),
        float(np.percentile(luma, 99) - np.percentile(luma, 1)) / 255.0,
        _log(border.std(axis=0).mean()),
    ]
    out = np.asarray(values, np.float64)
    return np.where(np.isfinite(out), out, 0.0)


# ---------------------------------------------------------------- model


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # exact and overflow-free


def _newton(a: np.ndarray, target: np.ndarray, penalty: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Minimise Σ cross-entropy(target, sigmoid(a·w)) + ½ Σ penalty·w² from w by Newton's
    method with a backtracking line search (a plain Newton step can overshoot and diverge
    when the classes are nearly separable)."""

    def loss(w: np.ndarray) -> float:
        z = a @ w  # log(1 + e^z) - t·z, written to stay finite for any z
        return float(np.sum(np.logaddexp(0.0, z) - target * z) + 0.5 * np.sum(penalty * w * w))

    current = loss(w)
    for _ in range(100):
        p = _sigmoid(a @ w)
        grad = a.T @ (p - target) + penalty * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8 and loss(w - t * step) > current - 1e-4 * t * float(grad @ step):
            t *= 0.5
        w = w - t * step
        previous, current = current, loss(w)
        if previous - current < 1e-12 * max(1.0, abs(previous)):
            break
    return w


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method: (coef, intercept).

    x: (N, D) (standardise it first), y: (N,) of 0/1. The intercept is not penalised.
    """
    x = np.asarray(x, np.float64)
    n, d = x.shape
    penalty = np.full(d + 1, float(l2))
    penalty[-1] = 0.0
    w = _newton(np.hstack([x, np.ones((n, 1))]), np.asarray(y, np.float64), penalty, np.zeros(d + 1))
    return w[:-1], float(w[-1])


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: (a, b) with P(y=1) = sigmoid(a·logit + b), fitted to Platt's smoothed
    targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)), which keep a separable calibration set from
    driving the probabilities to exactly 0 and 1. Refuses a calibration set whose logits
    run the wrong way (a ≤ 0: the classifier is worse than chance there)."""
    y = np.asarray(y, np.float64)
    pos, neg = y.sum(), len(y) - y.sum()
    target = np.where(y > 0.5, (pos + 1) / (pos + 2), 1 / (neg + 2))
    a = np.stack([np.asarray(logits, np.float64), np.ones(len(y))], axis=1)
    w = _newton(a, target, np.zeros(2), np.array([1.0, 0.0]))
    if not w[0] > 0:
        raise ValueError(f"calibration failed: the logits run against the labels (slope {w[0]:.3g})")
    return float(w[0]), float(w[1])


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (Mann–Whitney, ties count half); nan without both classes."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy at 0.5, AUC, Brier score, log loss and expected calibration error (10 bins)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(labels, np.float64)
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * np.sum(bins == b) for b in set(bins.tolist()))
    return {
        "n": len(y),
        "accuracy": round(float(np.mean((p >= 0.5) == (y > 0.5))), 4),
        "auc": round(auc(p, y), 4),
        "brier": round(float(np.mean((p - y) ** 2)), 4),
        "log_loss": round(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), 4),
        "ece": round(float(ece / len(y)), 4),
    }


@dataclass(frozen=True)
class TriageModel:
    """Standardisation, logistic weights and Platt calibration over FEATURE_NAMES."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    platt_a: float
    platt_b: float
    likely: float = 0.8  # score at or above: "likely kinema model"
    unlikely: float = 0.2  # score at or below: "likely not kinema model"
    info: dict = field(default_factory=dict)  # how it was made: data, metrics, command

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated logits of feature rows x (N, D)."""
        return _terms((np.atleast_2d(x) - self.mean) / self.scale) @ self.coef + self.intercept

    def probability(self, x: np.ndarray) -> np.ndarray:
        """Calibrated P(made by the model) of feature rows x (N, D)."""
        return _sigmoid(self.platt_a * self.logit(x) + self.platt_b)

    def label(self, score: float) -> str:
        if score >= self.likely:
            return "likely kinema model"
        if score <= self.unlikely:
            return "likely not kinema model"
        return "uncertain"

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "features": list(FEATURE_NAMES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "platt": {"a": self.platt_a, "b": self.platt_b},
            "labels": {"likely": self.likely, "unlikely": self.unlikely},
            **self.info,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TriageModel:
        """Refuses another format or feature list (TriageError)."""
        if data.get("format") != FORMAT or tuple(data.get("features", ())) != FEATURE_NAMES:
            raise TriageError(f"triage weights are not {FORMAT} over this version's features")
        if len(data["coef"]) != 2 * len(FEATURE_NAMES):
            raise TriageError(f"triage weights need {2 * len(FEATURE_NAMES)} coefficients")
        known = {"format", "features", "mean", "scale", "coef", "intercept", "platt", "labels"}
        return cls(
            mean=np.asarray(data["mean"], np.float64),
            scale=np.asarray(data["scale"], np.float64),
            coef=np.asarray(data["coef"], np.float64),
            intercept=float(data["intercept"]),
            platt_a=float(data["platt"]["a"]),
            platt_b=float(data["platt"]["b"]),
            likely=float(data["labels"]["likely"]),
            unlikely=float(data["labels"]["unlikely"]),
            info={k: v for k, v in data.items() if k not in known},
        )


def _terms(z: np.ndarray) -> np.ndarray:
    """The regression's inputs: each standardised feature and its square (N, 2D)."""
    return np.hstack([z, z * z])


def fit(
    x: np.ndarray, y: np.ndarray, calib_x: np.ndarray, calib_y: np.ndarray, l2: float = 1.0
) -> TriageModel:
    """Standardise on x, fit the logistic regression on (x, y), calibrate on (calib_x, calib_y)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    coef, intercept = fit_logistic(_terms((x - mean) / scale), y, l2)
    raw = TriageModel(mean, scale, coef, intercept, 1.0, 0.0)
    a, b = fit_platt(raw.logit(calib_x), calib_y)
    return TriageModel(mean, scale, coef, intercept, a, b)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Sample:
    features: np.ndarray
    label: int  # 1: made by the model
    group: int  # the prompt's index: a split keeps a group together
    kind: str  # GENERATED, RENDERED or TEXTURE
    variant: str  # raw, h264, vp9, marked+h264


def texture_clip(rng: np.random.Generator, size: int = SIDE, frames: int = 16) -> Video:
    """Procedural natural-ish footage: multi-octave coloured noise and a gradient, panning
    (the stand-in for real video in the "not the model" class)."""
    big = size + 2 * frames
    img = np.zeros((big, big, 3), np.float32)
    slope = float(rng.uniform(0.4, 1.6))
    for octave in range(1, 7):
        noise = cv2.GaussianBlur(rng.normal(0, 1, (big, big, 3)).astype(np.float32), (0, 0), big / 2**octave)
        img += noise / (noise.std() + 1e-6) * 40 / octave**slope
    img = np.clip(
        img + rng.uniform(60, 190) + np.linspace(-40, 40, big, dtype=np.float32)[None, :, None], 0, 255
    )
    dy, dx = (int(d) for d in rng.integers(-2, 3, size=2))
    y0, x0 = 2 * frames if dy < 0 else 0, 2 * frames if dx < 0 else 0
    out = [img[y0 + t * dy : y0 + t * dy + size, x0 + t * dx : x0 + t * dx + size] for t in range(frames)]
    return Video(np.stack(out).round().astype(np.uint8), 8.0)


def _variants(video: Video, rng: np.random.Generator, tmp: Path) -> list[tuple[str, Video]]:
    """The clip as it is, re-encoded (H.264 at CRF 18–32, VP9), and watermarked then re-encoded."""

    def through(v: Video, name: str, crf: int | None = None) -> Video:
        path = tmp / name
        v.save(path, crf=crf)
        return read_video(path)

    marked = embed(video, rng.bytes(PAYLOAD_BYTES), rng.bytes(16))
    return [
        ("raw", video),
        ("h264", through(video, "a.mp4", int(rng.integers(18, 33)))),
        ("vp9", through(video, "a.webm")),
        ("marked+h264", through(marked, "b.mp4", int(rng.integers(18, 33)))),
    ]


def collect(
    generate: Callable[[str, int], Video],
    render: Callable[[str, int], Video],
    prompts: Sequence[str],
    seed: int = 0,
    texture_every: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> list[Sample]:
    """Samples for prompts[i] (group i): generate(prompt, i) labelled 1, render(prompt, i)
    labelled 0, and every `texture_every`-th group a texture clip labelled 0; each in all
    its variants (see _variants)."""
    rng = np.random.default_rng(seed)
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="kinema-triage-") as folder:
        tmp = Path(folder)
        for i, prompt in enumerate(prompts):
            clips = [(GENERATED, 1, generate(prompt, i)), (RENDERED, 0, render(prompt, i))]
            if texture_every and i % texture_every == 0:
                clips.append((TEXTURE, 0, texture_clip(rng)))
            for kind, label, clip in clips:
                for variant, video in _variants(clip, rng, tmp):
                    samples.append(Sample(features(video), label, i, kind, variant))
            if progress:
                progress(i + 1, len(prompts))
    return samples


def train(samples: Sequence[Sample], seed: int = 0, l2: float = 1.0) -> tuple[TriageModel, dict]:
    """Split the groups 60/20/20 (train / calibration / test), fit, calibrate, and measure.

    Returns the model and a report: split sizes and metrics on each split (the test split
    is seen only here), plus test accuracy per kind and variant. Refuses samples without
    both labels or with fewer than five groups.
    """
    groups = np.array([s.group for s in samples])
    labels = np.array([s.label for s in samples])
    unique = np.unique(groups)
    if len(unique) < 5 or len(set(labels.tolist())) < 2:
        raise ValueError("training needs both labels and at least five groups (prompts)")
    order = np.random.default_rng(seed).permutation(unique)
    cut1, cut2 = int(round(0.6 * len(order))), int(round(0.8 * len(order)))
    part = {int(g): 0 for g in order[:cut1]} | {int(g): 1 for g in order[cut1:cut2]}
    part |= {int(g): 2 for g in order[cut2:]}
    split = np.array([part[int(g)] for g in groups])
    x = np.stack([s.features for s in samples])
    model = fit(x[split == 0], labels[split == 0], x[split == 1], labels[split == 1], l2)
    p = model.probability(x)
    report = {
        name: metrics(p[split == k], labels[split == k])
        for k, name in enumerate(("train", "calibration", "test"))
    }
    test = split == 2
    by = {}
    for attr in ("kind", "variant"):
        for value in sorted({getattr(s, attr) for s in samples}):
            mask = test & np.array([getattr(s, attr) == value for s in samples])
            if mask.any():
                by[value] = round(float(np.mean((p[mask] >= 0.5) == (labels[mask] == 1))), 4)
    report["test_accuracy_by"] = by
    report["groups"] = {"train": cut1, "calibration": cut2 - cut1, "test": len(order) - cut2}
    report["samples"] = len(samples)
    return model, report


def save(model: TriageModel, path: str | os.PathLike) -> Path:
    """Write the model (and its info) as JSON."""
    target = Path(os.fspath(path))
    target.write_text(json.dumps(model.to_dict(), indent=1) + "\n")
    return target


def cached(generate: Callable[[str, int], Video], folder: Path, tag: str) -> Callable[[str, int], Video]:
    """`generate` with its clips kept in FOLDER as TAG-INDEX.npz (frames, fps, prompt), so a
    retraining after a change to the features reuses them. TAG names the generator and
    its settings; a file whose prompt differs is made again."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(prompt: str, index: int) -> Video:
        path = folder / f"{tag}-{index:05d}.npz"
        if path.exists():
            with np.load(path) as data:
                if str(data["prompt"]) == prompt:
                    return Video(data["frames"], float(data["fps"]))
        video = generate(prompt, index)
        np.savez_compressed(path, frames=video.frames, fps=video.fps, prompt=prompt)
        return video

    return run


def retrain(
    generate: Callable[[str, int], Video],
    render: Callable[[str, int], Video],
    prompts: Sequence[str],
    out: str | os.PathLike,
    *,
    command: str,
    trained_on: dict,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """collect, train and save the weights to OUT with how they were made (the command, the
    data, the metrics); returns the report."""
    samples = collect(generate, render, prompts, seed, progress=progress)
    model, report = train(samples, seed)
    counts = {k: sum(s.kind == k for s in samples) for k in (GENERATED, RENDERED, TEXTURE)}
    info = {
        "command": command,
        "trained_on": {**trained_on, "prompts": len(prompts), "samples_by_kind": counts},
        "variants": sorted({s.variant for s in samples}),
        "seed": seed,
        "metrics": report,
    }
    model = TriageModel(**{**model.__dict__, "info": info})
    save(model, out)
    return {"path": os.fspath(out), **info}


# ---------------------------------------------------------------- use


def weights_path() -> Path:
    """The committed weights: kinema/weights/triage/triage.json."""
    return Path(str(resources.files("kinema") / "weights" / "triage" / "triage.json"))


def load(path: str | os.PathLike | None = None) -> TriageModel:
    """The model at PATH (the committed weights by default); TriageError if unusable."""
    target = Path(os.fspath(path)) if path is not None else weights_path()
    try:
        data = json.loads(target.read_text())
    except (OSError, ValueError) as e:
        raise TriageError(f"cannot read triage weights '{target}': {e}") from None
    try:
        return TriageModel.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise TriageError(f"triage weights '{target}' are malformed: {e}") from None


def score_video(video: Video, model: TriageModel | None = None) -> dict:
    """{"score": calibrated P(made by kinema's built-in model), "label", "caveat", …}."""
    model = model or load()
    p = float(model.probability(features(video))[0])
    return {
        "score": round(p, 4),
        "label": model.label(p),
        "caveat": CAVEAT,
        "frames_checked": min(video.num_frames, MAX_FRAMES),
        "classifier": {
            "trained_on": model.info.get("trained_on"),
            "test": (model.info.get("metrics") or {}).get("test"),
        },
    }


def detect_file(path: str | os.PathLike, model: TriageModel | None = None) -> dict:
    """score_video of the file or frame folder at PATH, with its path.

    Raises an InputError with one line when PATH is missing or not decodable video.
    """
    video = read_video(path, max_frames=MAX_FRAMES)
    return {"file": os.fspath(path), **score_video(video, model)}
