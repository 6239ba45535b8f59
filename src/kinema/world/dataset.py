"""Training and validation data from the shapes world.

Every training sample is a pure function of (seed, stream, index): the stream is one per
(rank, data-loader worker), so parallel workers never repeat each other, a resumed run
continues exactly where it stopped (start at the index it had reached), and the data
needs no disk. Training never shows the held-out colour–shape pairs. Validation scenes
use layout seeds from a range training never draws from, so the split is fixed and
disjoint by construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from kinema.world.grammar import format_prompt
from kinema.world.render import render_frames
from kinema.world.scene import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT_PAIRS,
    MOTIONS,
    PERIOD,
    SHAPES,
    TWO_OBJECT_MOTIONS,
    Scene,
    WorldObject,
)

TRAIN_SEEDS = 2**62  # training layout seeds lie below this; validation seeds above
_SIZE_WORDS = (None, "small", "big")


@dataclass(frozen=True)
class Sample:
    prompt: str
    frames: np.ndarray  # uint8 (T, S, S, 3)
    layout_seed: int
    offset: int  # first frame's index in the endless ping-pong clip


def _object(rng: np.random.Generator, motions, sizes, exclude_colour=None, held_out=False) -> WorldObject:
    while True:
        colour = str(rng.choice(list(COLOURS)))
        if colour == exclude_colour:
            continue
        obj = WorldObject(
            colour=colour,
            shape=str(rng.choice(SHAPES)),
            motion=str(rng.choice(motions)),
            size=sizes[rng.integers(len(sizes))],
        )
        if obj.held_out == held_out or (held_out is None):
            return obj


def sample_scene(rng: np.random.Generator, two_object_fraction: float = 0.35) -> Scene:
    """A random scene without held-out pairs; two objects with the given probability."""
    background = str(rng.choice(list(BACKGROUNDS)))
    if rng.random() >= two_object_fraction:
        return Scene((_object(rng, MOTIONS, _SIZE_WORDS),), background)
    first = _object(rng, TWO_OBJECT_MOTIONS, (None,))
    second = _object(rng, TWO_OBJECT_MOTIONS, (None,), exclude_colour=first.colour)
    return Scene((first, second), background)


def training_sample(
    seed: int,
    stream: int,
    index: int,
    frames: int = 16,
    size: int = 64,
    random_offset: bool = False,
    two_object_fraction: float = 0.35,
    offset_fraction: float = 1.0,
) -> Sample:
    """Sample `index` of training stream `stream`: a pure function of its arguments.

    With random_offset, the window starts anywhere in the endless ping-pong clip (for a
    fraction `offset_fraction` of samples; the rest start at frame 0, where the prompt's
    motion begins). A text-to-video model needs most windows to start at 0: a window
    that starts mid-cycle may run backwards, which its prompt cannot tell."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, index]))
    scene = sample_scene(rng, two_object_fraction)
    layout_seed = int(rng.integers(TRAIN_SEEDS))
    # the extra draw only when asked for, so full-offset streams stay what they were
    shifted = random_offset and (offset_fraction >= 1.0 or rng.random() < offset_fraction)
    offset = int(rng.integers(PERIOD)) if shifted else 0
    clip = render_frames(scene, seed=layout_seed, frames=frames, size=size, start=offset)
    return Sample(format_prompt(scene), clip, layout_seed, offset)


class WorldClips(IterableDataset):
    """An endless stream of training samples, safe across ranks and loader workers.

    Yields dicts: "prompt" (str), "frames" (uint8 tensor T×S×S×3), "offset" (int).
    `start` is the index each stream starts from (for an exact resume).
    """

    def __init__(
        self,
        seed: int = 0,
        frames: int = 16,
        size: int = 64,
        random_offset: bool = False,
        two_object_fraction: float = 0.35,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ):
        self.seed, self.frames, self.size = seed, frames, size
        self.random_offset, self.two_object_fraction = random_offset, two_object_fraction
        self.rank, self.world_size, self.start = rank, world_size, start

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        stream = self.rank * workers + worker
        index = self.start
        while True:
            s = training_sample(
                self.seed,
                stream,
                index,
                self.frames,
                self.size,
                self.random_offset,
                self.two_object_fraction,
            )
            yield {"prompt": s.prompt, "frames": torch.from_numpy(s.frames), "offset": s.offset}
            index += 1


def validation_split(n: int = 64, held_out: bool = False, seed: int = 0) -> list[tuple[str, int]]:
    """A fixed list of (prompt, layout_seed) for validation.

    With `held_out`, every scene contains at least one held-out colour–shape pair (the
    compositional test); otherwise none does. Layout seeds are ≥ 2**62, never drawn in
    training.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED, int(held_out)]))
    out = []
    for i in range(n):
        if held_out:
            background = str(rng.choice(list(BACKGROUNDS)))
            if i % 3 == 2:  # a third of them two-object scenes, the held-out pair first
                first = _object(rng, TWO_OBJECT_MOTIONS, (None,), held_out=True)
                second = _object(rng, TWO_OBJECT_MOTIONS, (None,), exclude_colour=first.colour, held_out=None)
                scene = Scene((first, second), background)
            else:
                scene = Scene((_object(rng, MOTIONS, _SIZE_WORDS, held_out=True),), background)
        else:
            scene = sample_scene(rng)
        out.append((format_prompt(scene), TRAIN_SEEDS + i))
    return out


MIN_CONTRAST = 80.0  # RGB distance of a free colour from its background: a visible object
HELD_OUT_MARGIN = 60.0  # a free colour this near a held-out pair's palette colour is that pair


def free_colour_sample(seed: int, stream: int, index: int, frames: int = 17, size: int = 64) -> Sample:
    """Sample `index` of a free-colour stream: a training scene's geometry (shapes, sizes,
    paths, any window of the ping-pong clip) painted in colours drawn uniformly from RGB,
    on a background of any colour too. For the VAE's decoder only (a codec of the world's
    geometry in any colour); its prompt is empty, since v1's words cannot say its colours.

    The held-out pairs stay out: an object whose shape belongs to a held-out pair is never
    painted near that pair's palette colour."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, index, 0xC010]))
    scene = sample_scene(rng, 0.35)
    background = rng.uniform(0, 255, 3)
    colours = []
    for obj in scene.objects:
        while True:
            rgb = rng.uniform(0, 255, 3)
            near_held_out = any(
                shape == obj.shape and np.linalg.norm(rgb - np.array(COLOURS[colour])) < HELD_OUT_MARGIN
                for colour, shape in HELD_OUT_PAIRS
            )
            others = [np.array(c) for c in colours]
            if (
                np.linalg.norm(rgb - background) >= MIN_CONTRAST
                and not near_held_out
                and all(np.linalg.norm(rgb - c) >= MIN_CONTRAST for c in others)
            ):
                colours.append(tuple(float(v) for v in rgb))
                break
    layout_seed = int(rng.integers(TRAIN_SEEDS))
    offset = int(rng.integers(PERIOD))
    clip = render_frames(
        scene,
        seed=layout_seed,
        frames=frames,
        size=size,
        start=offset,
        colours=tuple(colours),
        background=tuple(float(v) for v in background),
    )
    return Sample("", clip, layout_seed, offset)
