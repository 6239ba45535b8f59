"""Temporal QA separates good clips from bad ones.

Rendered shapes-world clips (16 frames, 64×64, deterministic seeds, every fourth one
through H.264) against the same clips with one injected defect each. Each measure must
flag the defect it is for with ≥ 95 % accuracy on a balanced set (clean + defective),
and flag few clean clips.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from kinema.io import Video, read_video
from kinema.metrics import (
    background_flicker,
    cut_detection,
    dynamic_degree,
    frame_order,
    identity_drift,
    motion_smoothness,
    qa,
    warping_error,
)
from kinema.world import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    SHAPES,
    TWO_OBJECT_MOTIONS,
    Scene,
    WorldObject,
    format_prompt,
    render_frames,
)

N_CLIPS = 40
T, SIZE = 16, 64


@pytest.fixture(autouse=True)
def _single_thread():
    cv2.setNumThreads(1)


# ---------------------------------------------------------------- clips and defects


def random_scene(rng: np.random.Generator, motion: str = "any") -> Scene:
    """A random world scene; motion "any", "moving" (not everything stays still) or
    "translating" (the first object moves left, right, up or down)."""
    bg = str(rng.choice(list(BACKGROUNDS)))
    allowed = {
        "any": MOTIONS,
        "moving": [m for m in MOTIONS if m != "staying still"],
        "translating": [m for m in MOTIONS if m.startswith("moving")],
    }[motion]
    if rng.random() < 0.3:
        first = [m for m in TWO_OBJECT_MOTIONS if m in allowed]
        c1, c2 = rng.choice(list(COLOURS), 2, replace=False)
        objs = (
            WorldObject(str(c1), str(rng.choice(SHAPES)), str(rng.choice(first))),
            WorldObject(str(c2), str(rng.choice(SHAPES)), str(rng.choice(TWO_OBJECT_MOTIONS))),
        )
    else:
        size = [None, "small", "big"][rng.integers(3)]
        colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
        objs = (WorldObject(colour, shape, str(rng.choice(allowed)), size),)
    return Scene(objs, bg)


def clean_clip(i: int, motion: str = "any") -> tuple[Scene, int, int]:
    """Scene, layout seed and start frame of clean clip i (a third start mid-ping-pong)."""
    rng = np.random.default_rng(1000 + i)
    scene = random_scene(rng, motion)
    start = int(rng.integers(0, 30)) if i % 3 == 2 else 0
    return scene, 5000 + i, start


def render(scene: Scene, seed: int, start: int) -> np.ndarray:
    return render_frames(scene, seed=seed, frames=T, size=SIZE, start=start).astype(np.float32)


def flicker(scene, seed, start, rng) -> np.ndarray:
    """1-4 random frames shifted in brightness by 12-40 levels (towards mid-gray)."""
    f = render(scene, seed, start)
    bg = np.array(BACKGROUNDS[scene.background], np.float32).mean()
    for t in rng.choice(T, int(rng.integers(1, 5)), replace=False):
        sign = 1 if bg < 100 else -1 if bg > 200 else rng.choice([-1, 1])
        f[t] += sign * rng.uniform(12, 40)
    return f


def shuffle(scene, seed, start, rng) -> np.ndarray:
    """Two frames up to 5 apart swapped, or a window of 3-5 frames permuted."""
    f = render(scene, seed, start)
    order = np.arange(T)
    if rng.random() < 0.5:
        i = int(rng.integers(0, T - 1))
        j = int(min(T - 1, i + rng.integers(1, 6)))
        order[i], order[j] = order[j], order[i]
    else:
        n = int(rng.integers(3, 6))
        i = int(rng.integers(0, T - n + 1))
        while True:
            perm = rng.permutation(n)
            if (perm != np.arange(n)).any() and (perm != np.arange(n)[::-1]).any():
                break
        order[i : i + n] = order[i : i + n][perm]
    return f[order]


def _blend_towards(scene, other: Scene, seed, start, rng) -> np.ndarray:
    a, b = render(scene, seed, start), render(other, seed, start)
    end = rng.uniform(0.7, 1.0)
    w = (np.arange(T) / (T - 1) * end)[:, None, None, None]
    return a * (1 - w) + b * w


def colour_drift(scene, seed, start, rng) -> np.ndarray:
    """One object's colour fades into another palette colour over the clip."""
    k = int(rng.integers(len(scene.objects)))
    used = {o.colour for o in scene.objects}
    new = str(rng.choice([c for c in COLOURS if c not in used]))
    objs = list(scene.objects)
    objs[k] = dataclasses.replace(objs[k], colour=new)
    return _blend_towards(scene, Scene(tuple(objs), scene.background), seed, start, rng)


def shape_morph(scene, seed, start, rng) -> np.ndarray:
    """One object's shape dissolves into another shape over the clip (same path)."""
    k = int(rng.integers(len(scene.objects)))
    objs = list(scene.objects)
    objs[k] = dataclasses.replace(objs[k], shape=str(rng.choice([s for s in SHAPES if s != objs[k].shape])))
    return _blend_towards(scene, Scene(tuple(objs), scene.background), seed, start, rng)


def cut(scene, seed, start, rng) -> np.ndarray:
    """Frames from frame 4-12 on come from another scene (another background or colour)."""
    a = render(scene, seed, start)
    while True:
        other = random_scene(rng)
        if other.background != scene.background or {o.colour for o in other.objects} != {
            o.colour for o in scene.objects
        }:
            break
    b = render(other, seed + 777, start)
    k = int(rng.integers(4, 13))
    return np.concatenate([a[:k], b[k:]])


def freeze(scene, seed, start, rng) -> np.ndarray:
    """A moving clip stuck on one frame."""
    f = render(scene, seed, start)
    return np.repeat(f[int(rng.integers(T))][None], T, axis=0)


# defect → (injector, which clips it is applied to). Shuffles need visible motion:
# swapping frames of a shape that grows by a third of a pixel a frame changes nothing
# that optical flow (or a viewer) can see, so they go on clips where something translates.
DEFECTS = {
    "flicker": (flicker, "any"),
    "shuffle": (shuffle, "translating"),
    "colour_drift": (colour_drift, "any"),
    "shape_morph": (shape_morph, "any"),
    "cut": (cut, "any"),
    "freeze": (freeze, "moving"),
}
# which measure is meant to catch which defect
CATCHES = {
    "flicker": ["background_flicker", "warping_error"],
    "shuffle": ["frame_order", "motion_smoothness"],
    "colour_drift": ["identity_drift"],
    "shape_morph": ["identity_drift"],
    "cut": ["cut_detection"],
    "freeze": ["dynamic_degree"],
}


def finish(frames: np.ndarray, i: int, tmp_path) -> Video:
    """uint8 clip; every fourth one goes through an H.264 file and back."""
    video = Video(np.clip(np.rint(frames), 0, 255).astype(np.uint8), fps=8)
    if i % 4 == 3:
        path = tmp_path / f"clip{i}.mp4"
        video.save(path)
        video = read_video(path)
    return video


def defect_set(name: str, tmp_path) -> list[tuple[Video, str]]:
    fn, motion = DEFECTS[name]
    out = []
    for i in range(N_CLIPS):
        scene, seed, start = clean_clip(i, motion)
        rng = np.random.default_rng([i, list(DEFECTS).index(name)])
        out.append((finish(fn(scene, seed, start, rng), i, tmp_path), format_prompt(scene)))
    return out


def clean_set(tmp_path) -> list[tuple[Video, str]]:
    out = []
    for i in range(N_CLIPS):
        scene, seed, start = clean_clip(i)
        out.append((finish(render(scene, seed, start), i, tmp_path), format_prompt(scene)))
    return out


# ---------------------------------------------------------------- separation


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """qa of every clean and defective clip, computed once: {set name: [qa result]}."""
    cv2.setNumThreads(1)
    tmp = tmp_path_factory.mktemp("clips")
    out = {"clean": [qa(v, expect_static=expects_static(p)) for v, p in clean_set(tmp)]}
    for name in DEFECTS:
        out[name] = [qa(v, expect_static=expects_static(p)) for v, p in defect_set(name, tmp)]
    return out


def expects_static(prompt: str) -> bool:
    """What the prompt says of motion: every object stays still (so a static clip is right)."""
    return all(o.motion == "staying still" for o in parse_scene(prompt).objects)


def separation_table(results) -> dict:
    """{(defect, metric): (accuracy on clean+defect, true-positive rate, false-flag rate)}."""
    table = {}
    for defect, metrics in CATCHES.items():
        for metric in metrics:
            tp = np.mean([r["metrics"][metric]["flag"] for r in results[defect]])
            fp = np.mean([r["metrics"][metric]["flag"] for r in results["clean"]])
            table[defect, metric] = ((tp + 1 - fp) / 2, tp, fp)
    return table


def test_each_measure_flags_its_defect(results):
    table = separation_table(results)
    lines = [f"{d:13s} {m:19s} acc {a:.3f}  tpr {t:.3f}  fpr {f:.3f}" for (d, m), (a, t, f) in table.items()]
    print("\n" + "\n".join(lines))
    for (defect, metric), (accuracy, _, _) in table.items():
        assert accuracy >= 0.95, f"{metric} on {defect}: {accuracy:.3f}"


def test_clean_clips_are_rarely_flagged(results):
    rates = {m: np.mean([m in r["flags"] for r in results["clean"]]) for m in MEASURE_NAMES}
    print("\nclean false-flag rate", {m: round(float(v), 3) for m, v in rates.items()})
    assert max(rates.values()) <= 0.05
    assert np.mean([bool(r["flags"]) for r in results["clean"]]) <= 0.1


MEASURE_NAMES = [
    "background_flicker",
    "warping_error",
    "identity_drift",
    "motion_smoothness",
    "dynamic_degree",
    "cut_detection",
    "frame_order",
]


# ---------------------------------------------------------------- any clip


def noise_pan(t=16, h=72, w=96, step=(1.5, 0.7), seed=0) -> Video:
    """A natural-looking texture (smoothed noise at several scales) panned by the camera."""
    rng = np.random.default_rng(seed)
    big = np.zeros((h + 80, w + 80, 3), np.float32)
    for sigma in (1.5, 4, 10):
        big += cv2.GaussianBlur(rng.normal(0, 1, big.shape).astype(np.float32), (0, 0), sigma) * sigma
    big = (big - big.min()) / (big.max() - big.min()) * 200 + 30
    frames = []
    for i in range(t):
        m = np.float32([[1, 0, -step[0] * i - 10], [0, 1, -step[1] * i - 10]])
        frames.append(cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR))
    return Video(np.clip(frames, 0, 255).astype(np.uint8), fps=24)


def test_a_panned_texture_is_clean_and_its_defects_are_not():
    cv2.setNumThreads(1)
    video = noise_pan()
    result = qa(video)
    assert result["flags"] == [], result["flags"]
    assert result["metrics"]["dynamic_degree"]["moving_fraction"] == 1.0
    flickered = video.frames.astype(np.float32)
    flickered[5] += 25
    flickered = Video(np.clip(flickered, 0, 255).astype(np.uint8))
    assert background_flicker(flickered)["flag"] and warping_error(flickered)["flag"]
    order = np.arange(16)
    order[[6, 9]] = order[[9, 6]]
    shuffled = Video(video.frames[order])
    assert frame_order(shuffled)["flag"] and motion_smoothness(shuffled)["flag"]
    spliced = Video(np.concatenate([video.frames[:8], noise_pan(seed=1).frames[8:]]))
    assert cut_detection(spliced)["cuts"] == [7]


@pytest.mark.parametrize("shape", [(1, 20, 30), (2, 17, 9), (5, 37, 53), (6, 300, 420)])
def test_any_size_and_length(shape):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    result = qa(Video(frames))
    assert set(result["metrics"]) == set(MEASURE_NAMES)
    assert "world" not in result  # temporal only: the world verdict is studio.qa.clip_qa's
    import json

    json.dumps(result)  # JSON-ready as it is


def test_every_measure_names_its_vbench_dimension_and_threshold():
    video = Video(
        render(parse_scene("a red circle moving right on a black background"), 0, 0).astype(np.uint8)
    )
    result = qa(video, expect_static=False)
    assert result["flags"] == []
    for name, m in result["metrics"].items():
        assert m["vbench"] and "threshold" in m and isinstance(m["flag"], bool), name
        assert result["vbench"][name] == m["vbench"]


def test_an_expected_static_clip_is_not_flagged():
    prompt = "a green square staying still on a gray background"
    still = Video(render(parse_scene(prompt), 3, 0).astype(np.uint8))
    assert dynamic_degree(still)["flag"]  # static, on its own
    assert qa(still)["metrics"]["dynamic_degree"]["flag"]
    assert not qa(still, expect_static=True)["metrics"]["dynamic_degree"]["flag"]
    moving = Video(
        render(parse_scene("a green square moving up on a gray background"), 3, 0).astype(np.uint8)
    )
    assert qa(moving, expect_static=True)["metrics"]["dynamic_degree"]["flag"]


def test_identity_drift_names_what_drifted():
    scene = parse_scene("a blue square moving right on a white background")
    drift = identity_drift(
        Video(np.clip(colour_drift(scene, 1, 0, np.random.default_rng(0)), 0, 255).astype(np.uint8))
    )
    assert drift["flag"] and drift["colour_drift"] > drift["thresholds"]["colour_drift"]
    morph = identity_drift(
        Video(np.clip(shape_morph(scene, 1, 0, np.random.default_rng(0)), 0, 255).astype(np.uint8))
    )
    assert morph["flag"] and morph["fill_drift"] > morph["thresholds"]["fill_drift"]
    assert len(morph["tracks"]) == 1


def parse_scene(prompt: str) -> Scene:
    from kinema.world import parse

    return parse(prompt)


def test_report_png_has_the_sheet_and_a_curve_per_measure(tmp_path):
    from kinema.io import read_image
    from kinema.metrics import draw_report

    prompt = "a red circle moving right on a black background"
    frames = np.clip(flicker(parse_scene(prompt), 0, 0, np.random.default_rng(0)), 0, 255).astype(np.uint8)
    video = Video(frames)
    result = qa(video, expect_static=False)
    path = draw_report(video, result, tmp_path / "report.png")
    image = read_image(path)
    assert image.shape[0] >= 7 * 76 and image.shape[1] > 4 * 160
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]  # no temporary left
    # a flagged measure's title is drawn in red
    assert ((image[..., 0] > 200) & (image[..., 1] < 100)).any()
