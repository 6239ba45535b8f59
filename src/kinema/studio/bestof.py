"""Best-of-N and auto-retake: several seeds for one shot, the best kept by a QA score.

A take's QA score (0..1) is the share of checks it passes. The temporal measures
(kinema.metrics: flicker, warping, identity drift, smoothness, dynamic degree, cuts,
frame order; for a shot continued from the one before, also its seam) are one block,
each counting when it does not flag. For a shapes-world prompt the world checker is a
second block of equal weight: its sub-checks (background; per object found, shape,
size when asked, motion; no extra objects), 1 when it passes. A take passes QA when
the world check passes (a prompt outside the world has none) and its score reaches
the threshold.

Candidates use seeds seed, seed+1, …, seed+N-1; the kept take is the first by (passes
QA, passes the world check, score), the earliest seed on ties. When none passes,
retakes try the following seeds one at a time, up to the limit, and stop at the first
take that passes; each retake records why it was needed. Takes are made through a
`make(seed)` callable, so the caller decides where they come from (a cache, a pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kinema.errors import InputError
from kinema.io import Video

DEFAULT_THRESHOLD = 0.7  # of 7 temporal measures: ≤ 4 flags with a world pass, ≤ 2 without a world prompt
MAX_TAKES = 64  # candidates, and retakes, a shot may ask for
THUMBS = 3  # frames kept of every take for reports: first, middle, last


def qa_score(video: Video, prompt: str | None, before: np.ndarray | None = None) -> dict:
    """The QA of one take: temporal measures and, for a world prompt, the world checker.

    `before` is the frame a continued take starts from (its own frame 0 is that frame
    remade, and is dropped when the shots are joined); then the seam from it to the
    take's frame 1 is one more temporal measure (seam_measure).
    Returns a JSON-ready dict: "score" (0..1), "temporal_score", "world_pass" (None
    without a world prompt), "world_score", "world_reasons", "flags" (temporal measures
    that flagged) and "metrics" ({name: {value, threshold, flag, vbench}}).
    """
    from kinema.qa import clip_qa  # QA (and OpenCV with it) only when a take is judged

    result = clip_qa(video, prompt)
    metrics = result["metrics"]
    if before is not None and video.num_frames > 2:  # a seam needs an inner step to compare with
        metrics["seam"] = seam_measure(before, video.frames)
        result["flags"] += ["seam"] * metrics["seam"]["flag"]
    temporal = 1.0 - len(result["flags"]) / len(metrics)
    world = result["world"]
    world_score = None if world is None else _world_share(world)
    score = temporal if world_score is None else 0.5 * world_score + 0.5 * temporal
    return {
        "score": round(score, 3),
        "temporal_score": round(temporal, 3),
        "world_pass": None if world is None else bool(world["pass"]),
        "world_score": None if world_score is None else round(world_score, 3),
        "world_reasons": [] if world is None else list(world["reasons"]),
        "flags": list(result["flags"]),
        "metrics": {
            name: {"value": m["value"], "threshold": m["threshold"], "flag": m["flag"], "vbench": m["vbench"]}
            for name, m in metrics.items()
        },
    }


def seam_measure(before: np.ndarray, frames: np.ndarray) -> dict:
    """The extension seam rule for a take that continues from `before`: the mean absolute
    difference of the step before → frames[1] against the median step inside the take
    (at least SEAM_FLOOR levels); flags above SEAM_RATIO."""
    from kinema.metrics.temporal import SEAM_RATIO, frame_differences, seam_ratio

    steps = frame_differences(np.concatenate([before[None], frames[1:]]))
    ratio, _ = seam_ratio(steps[0], steps[1:])
    return {
        "value": round(ratio, 3),
        "threshold": SEAM_RATIO,
        "flag": ratio > SEAM_RATIO,
        "vbench": "none: the join to the previous shot (extension seam rule)",
    }


def _world_share(world: dict) -> float:
    """Share of the world checker's sub-checks passed; 1 exactly when the clip passes."""
    checks = [bool(world["background"]["ok"])]
    for obj in world["objects"]:
        found = obj.get("found_frames", 0) >= 0.9 * obj.get("frames", 1)
        checks += [found, bool(obj.get("shape", {}).get("ok")), bool(obj.get("motion", {}).get("ok"))]
        if "ok" in obj.get("size", {}):
            checks.append(bool(obj["size"]["ok"]))
    checks.append(not any(r.startswith("extra ") for r in world["reasons"]))
    if world["pass"]:
        return 1.0
    # a reason no sub-check names still keeps a failing clip below a passing one
    return min(sum(checks) / len(checks), (len(checks) - 1) / len(checks))


def passes(qa: dict, threshold: float) -> bool:
    """Whether a take's QA (from qa_score) is good enough to keep without a retake."""
    return qa["world_pass"] is not False and qa["score"] >= threshold


def failures(qa: dict, threshold: float) -> list[str]:
    """Why a take does not pass QA, in words (empty when it passes)."""
    out = []
    if qa["world_pass"] is False:
        out.append("world check: " + "; ".join(qa["world_reasons"][:3]))
    if qa["score"] < threshold:
        flagged = ", ".join(qa["flags"]) or "none"
        out.append(f"score {qa['score']:.2f} below {threshold:.2f} (temporal flags: {flagged})")
    return out


@dataclass
class Take:
    """One generated take of a shot and its QA."""

    seed: int
    kind: str  # "candidate" or "retake"
    qa: dict
    passed: bool
    cached: bool
    thumbs: np.ndarray  # (THUMBS, H, W, 3) uint8: first, middle and last frame
    why: str | None = None  # for a retake: what the best take before it lacked

    def record(self) -> dict:
        """JSON-ready summary (no pixels)."""
        out = {
            "seed": self.seed,
            "kind": self.kind,
            "score": self.qa["score"],
            "world_pass": self.qa["world_pass"],
            "passed": self.passed,
            "flags": self.qa["flags"],
            "world_reasons": self.qa["world_reasons"][:3],
            "cached": self.cached,
        }
        if self.why is not None:
            out["why"] = self.why
        return out


@dataclass
class Choice:
    """Every take of a shot, which one was kept, and the kept take's clip."""

    takes: list[Take]
    chosen: int
    video: Video
    threshold: float
    retakes_allowed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Take:
        return self.takes[self.chosen]

    @property
    def retaken(self) -> list[Take]:
        return [t for t in self.takes if t.kind == "retake"]

    def record(self) -> dict:
        """JSON-ready: the kept seed and QA, every take, the retakes and why."""
        best = self.best
        return {
            "seed": best.seed,
            "passed": best.passed,
            "qa": {
                "score": best.qa["score"],
                "world_pass": best.qa["world_pass"],
                "flags": best.qa["flags"],
                "metrics": {k: m["value"] for k, m in best.qa["metrics"].items()},
            },
            "threshold": self.threshold,
            "takes": [t.record() for t in self.takes],
            "retakes": len(self.retaken),
            "retake_reasons": [t.why for t in self.retaken],
            **({"notes": self.notes} if self.notes else {}),
        }


def _rank(take: Take, index: int) -> tuple:
    return (take.passed, take.qa["world_pass"] is not False, take.qa["score"], -index)


def check_counts(candidates: object, retakes: object, threshold: object) -> None:
    """Refuse (InputError) candidates outside 1..MAX_TAKES, retakes outside 0..MAX_TAKES
    or a threshold outside [0, 1]; the message names the setting."""
    for name, value, low in (("candidates", candidates, 1), ("retakes", retakes, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_TAKES:
            raise InputError(f"{name} must be a whole number from {low} to {MAX_TAKES}, got {value!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InputError(f"qa_threshold must be a number from 0 to 1, got {threshold!r}")


def best_of(
    make: Callable[[int], tuple[Video, bool]],
    prompt: str | None,
    seed: int,
    candidates: int = 1,
    retakes: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[Take], None] | None = None,
    before: np.ndarray | None = None,
) -> Choice:
    """Make `candidates` takes (seeds seed, seed+1, …), retake up to `retakes` more while
    none passes QA, and keep the best (see the module docstring).

    `make(seed)` returns the take's clip and whether it came from a cache; `progress` is
    called with each finished Take; `before` is the frame a continued shot starts from
    (its seam is then judged, see qa_score). Refuses bad counts or threshold (InputError) before
    making anything.
    """
    check_counts(candidates, retakes, threshold)
    takes: list[Take] = []
    best_video: Video | None = None
    chosen = 0

    def add(take_seed: int, kind: str, why: str | None) -> None:
        nonlocal best_video, chosen
        video, cached = make(take_seed)
        qa = qa_score(video, prompt, before)
        t = video.num_frames
        thumbs = video.frames[sorted({0, t // 2, t - 1})]
        take = Take(take_seed, kind, qa, passes(qa, threshold), cached, thumbs, why)
        takes.append(take)
        # only the best take's pixels are kept: N candidates of a long shot would not fit
        if best_video is None or _rank(take, len(takes) - 1) > _rank(takes[chosen], chosen):
            best_video, chosen = video, len(takes) - 1
        if progress:
            progress(take)

    for k in range(candidates):
        add(seed + k, "candidate", None)
    for r in range(retakes):
        best = takes[chosen]
        if best.passed:
            break
        why = f"best so far (seed {best.seed}) failed QA: " + "; ".join(failures(best.qa, threshold))
        add(seed + candidates + r, "retake", why)
    choice = Choice(takes, chosen, best_video, threshold, retakes)
    if not choice.best.passed:
        choice.notes.append(
            f"no take passed QA after {len(takes)} tries; kept seed {choice.best.seed}: "
            + "; ".join(failures(choice.best.qa, threshold))
        )
    return choice


def generate_best(
    pipe,
    prompt: str,
    *,
    seed: int = 0,
    candidates: int = 1,
    retakes: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    **settings,
) -> Choice:
    """`pipe(prompt, seed=…, **settings)` made best-of-`candidates` with up to `retakes`
    retakes; returns the Choice (its .video is the kept clip, .record() the log)."""
    return best_of(
        lambda s: (pipe(prompt, seed=s, **settings), False), prompt, seed, candidates, retakes, threshold
    )
