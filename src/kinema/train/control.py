"""Train the built-in model's control branch (kinema.models.control) on tracked world clips.

    python -m kinema.train.control --out runs/control [--steps N] [--resume]

The data: one-object clips of the shapes world whose object follows a random track (the
world's straight motions, lines with stops, zig-zags through waypoints, arcs, loops and
waves; constant, drawn or changing sizes), with the held-out colour–shape pairs left out.
Each clip's control signal is extracted from its frames by the same preprocessor a user's
control clip goes through (kinema.pipelines.motion_track), and its caption leaves the
motion out ("a red circle on a black background"), as prompts under control do. Latents
are encoded once and cached beside the run.

Only the branch trains (the DiT is frozen), by the DiT's flow-matching loss with text
dropout (so guidance works under control). A step's batch, times and noise are pure
functions of the step number, so a killed run resumes onto the same numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kinema.models.control import ControlBranch, ControlConfig, signal_tokens
from kinema.pipelines.motion_track import track_masks, track_of_clip
from kinema.world.render import render_track
from kinema.world.scene import BACKGROUNDS, COLOURS, HELD_OUT_PAIRS, SHAPES, SIZES

TRACK_KINDS = ("world", "line", "waypoints", "arc", "wave")
TRACK_WEIGHTS = (0.15, 0.2, 0.25, 0.25, 0.15)
MARGIN = 0.12  # track centres stay this far inside the canvas


@dataclass(frozen=True)
class ControlSettings:
    depth: int = 4
    steps: int = 3000
    lr: float = 1e-4
    batch: int = 8
    clips: int = 4096
    frames: int = 17
    size: int = 64
    seed: int = 0
    warmup: int = 100
    text_dropout: float = 0.1
    checkpoint_every: int = 100


# --- the data -------------------------------------------------------------------------------


def _extents(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, str | None]:
    """Per-frame extents and the size word a prompt may say (None: none fits or none said)."""
    draw = rng.random()
    if draw < 0.6:
        word = [None, "small", "big"][rng.integers(3)]
        said = word if rng.random() < 0.5 else None
        return np.full(frames, SIZES[word]), said if word is not None else None
    if draw < 0.85:
        return np.full(frames, rng.uniform(0.12, 0.40)), None
    a, b = rng.uniform(0.12, 0.42, size=2)
    return np.linspace(a, b, frames), None


def random_track(rng: np.random.Generator, frames: int, kind: str | None = None) -> np.ndarray:
    """A track's (cx, cy) per frame (T, 2), inside the canvas by MARGIN."""
    kind = kind or rng.choice(TRACK_KINDS, p=TRACK_WEIGHTS)
    t = np.arange(frames, dtype=np.float64)
    lo, hi = MARGIN, 1 - MARGIN
    if kind == "world":  # WORLD.md's straight motions and stills, over 16 frames then back
        from kinema.world.scene import ping_pong

        u = np.array([ping_pong(int(i)) for i in t])
        axis = rng.integers(3)
        a, other = rng.uniform(0.2, 0.3), rng.uniform(0.3, 0.7)
        if axis == 2:  # still
            xy = np.tile(rng.uniform(0.3, 0.7, size=2), (frames, 1))
        else:
            start, end = (a, 1 - a) if rng.random() < 0.5 else (1 - a, a)
            moving = start + (end - start) * u
            xy = np.stack([moving, np.full(frames, other)], 1)
            xy = xy if axis == 0 else xy[:, ::-1]
    elif kind == "line":  # a straight line, often with a stop at either end
        start, end = rng.uniform(lo, hi, size=(2, 2))
        t0 = rng.integers(0, frames // 3) if rng.random() < 0.5 else 0
        t1 = frames - 1 - (rng.integers(0, frames // 3) if rng.random() < 0.5 else 0)
        u = np.clip((t - t0) / max(1, t1 - t0), 0, 1)[:, None]
        xy = start + (end - start) * u
    elif kind == "waypoints":  # zig-zags and stops: straight lines between 3 to 5 points
        n = rng.integers(3, 6)
        times = np.sort(rng.choice(np.arange(1, frames - 1), size=n - 2, replace=False))
        times = np.concatenate([[0], times, [frames - 1]])
        points = rng.uniform(lo, hi, size=(n, 2))
        if rng.random() < 0.3:  # a stop: two points in a row at one place
            k = rng.integers(n - 1)
            points[k + 1] = points[k]
        xy = np.stack([np.interp(t, times, points[:, 0]), np.interp(t, times, points[:, 1])], 1)
    elif kind == "arc":  # arcs, circles and loops (more than one turn)
        radius = rng.uniform(0.08, 0.3, size=2) if rng.random() < 0.5 else np.full(2, rng.uniform(0.08, 0.3))
        centre = rng.uniform(lo + radius, hi - radius)
        phase, turns = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 1.5) * rng.choice([-1, 1])
        angle = phase + 2 * np.pi * turns * t / (frames - 1)
        xy = centre + radius * np.stack([np.cos(angle), np.sin(angle)], 1)
    else:  # a wave: along one axis, sinusoidal across it
        a, b = rng.uniform(lo, 0.35), rng.uniform(0.65, hi)
        along = np.linspace(a, b, frames) if rng.random() < 0.5 else np.linspace(b, a, frames)
        amplitude = rng.uniform(0.05, 0.2)
        middle = rng.uniform(lo + amplitude, hi - amplitude)
        across = middle + amplitude * np.sin(rng.uniform(0, 2 * np.pi) + t * rng.uniform(0.3, 0.9))
        xy = np.stack([along, across], 1)
        xy = xy if rng.random() < 0.5 else xy[:, ::-1]
    return np.clip(xy, 0.05, 0.95)


def track_prompt(colour: str, shape: str, size_word: str | None, background: str) -> str:
    """A prompt under control: the canonical one-object prompt without its motion phrase."""
    words = " ".join(w for w in (size_word, colour, shape) if w)
    article = "an" if words[0] in "aeiou" else "a"
    return f"{article} {words} on a {background} background"


def training_clip(index: int, settings: ControlSettings) -> tuple[str, np.ndarray, np.ndarray]:
    """Clip INDEX of the control stream: its prompt, its frames (T, S, S, 3) and the track
    the preprocessor reads from them (T, 3)."""
    rng = np.random.default_rng([settings.seed, 7919, index])
    pairs = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT_PAIRS]
    colour, shape = pairs[rng.integers(len(pairs))]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    extents, word = _extents(rng, settings.frames)
    states = np.concatenate([random_track(rng, settings.frames), extents[:, None]], axis=1)
    frames = render_track(shape, COLOURS[colour], BACKGROUNDS[background], states, settings.size)
    return track_prompt(colour, shape, word, background), frames, track_of_clip(frames).states


def batch_signal(tracks: torch.Tensor, size: int, config: ControlConfig) -> torch.Tensor:
    """Tracks (B, T, 3) → the branch's signal rows (B, T', n, features)."""
    from kinema.pipelines.motion_track import MotionTrack

    masks = np.stack([track_masks(MotionTrack(t.numpy()), size, size) for t in tracks])
    return signal_tokens(torch.from_numpy(masks), config.temporal, config.cell)


# --- the run --------------------------------------------------------------------------------


def train_control(
    model: str | None, out: Path, settings: ControlSettings, resume: bool, command: str, say=print
):
    """Train the control branch of MODEL (the built-in one when None) into run folder OUT;
    returns the branch and its config."""
    from kinema.models.control import Steering
    from kinema.pipelines.loading import load
    from kinema.train.branch import Captioned, build_stream, train_branch

    pipe = load(model)
    dit = pipe.dit
    vae_config = pipe.vae.config
    config = ControlConfig(
        depth=settings.depth,
        temporal=vae_config.temporal_factor,
        cell=vae_config.spatial_factor * dit.config.patch[1],
    )
    data = build_stream(pipe, settings, out, lambda i: training_clip(i, settings), False, say)
    branch = ControlBranch.from_dit(dit, config)
    tracks = data["extras"]

    def steer(rows: torch.Tensor) -> dict:
        return {"control": Steering(branch, batch_signal(tracks[rows], settings.size, config), 1.0)}

    record = {"config": dataclasses.asdict(config), "command": command}
    train_branch(
        dit, branch, Captioned.of(data, pipe.text_encoder), steer, settings, out, resume, record, say
    )
    return branch, config


def export_branch(run: Path, model_folder: Path, say=print) -> Path:
    """Write the branch of RUN's last checkpoint beside MODEL_FOLDER's DiT (control/), with its card."""
    from kinema.train.branch import export_run

    return export_run(run, model_folder, "control", say)


def main(argv: list[str] | None = None) -> None:
    from kinema.train.branch import branch_main

    branch_main(argv, "kinema.train.control", __doc__, ControlSettings, train_control, export_branch)


if __name__ == "__main__":
    main()
