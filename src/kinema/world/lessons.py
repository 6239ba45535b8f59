"""Colour lessons: the clips that teach an adapter a colour outside v1 (WORLD.md: pink),
and the prompts that judge it on what the clips never combined.

The training clips show only circles and squares, and only three in four of the
(shape, motion, background) combinations; the test prompts are triangles (a shape the
lesson never showed in that colour) and the combinations left out. Test layouts use
seeds ≥ 2**62, as every evaluation set does, so no lesson clip is ever judged.
"""

from __future__ import annotations

import numpy as np

from kinema.world.grammar import format_prompt
from kinema.world.render import render_frames
from kinema.world.scene import BACKGROUNDS, EXTRA_COLOURS, MOTIONS, Scene, WorldObject

LESSON_SHAPES = ("circle", "square")
TEST_SEED_BASE = 2**62


def _left_out(shape: str, motion: str, background: str) -> bool:
    """One in four (shape, motion, background) combinations never appears in a lesson."""
    code = LESSON_SHAPES.index(shape) + MOTIONS.index(motion) + list(BACKGROUNDS).index(background)
    return code % 4 == 0


def _check_colour(colour: str) -> None:
    if colour not in EXTRA_COLOURS:
        raise ValueError(f"lessons teach colours outside v1 ({', '.join(EXTRA_COLOURS)}), not '{colour}'")


def lesson_scenes(colour: str = "pink", n: int = 32, seed: int = 0) -> list[tuple[Scene, int]]:
    """N (scene, layout seed) pairs of one object in COLOUR: circles and squares in turn,
    each at every size word alike, each shape's (motion, background) combinations without
    a repeat until all are shown; the combinations _left_out keeps out of lessons never
    drawn."""
    _check_colour(colour)
    rng = np.random.default_rng([seed, 0x1E55])
    combos = [
        (shape, motion, background)
        for shape in LESSON_SHAPES
        for motion in MOTIONS
        for background in BACKGROUNDS
        if not _left_out(shape, motion, background)
    ]
    # Shapes and size words in turn, and each shape's combinations in a shuffled cycle, so
    # that no word comes to mean another (a lesson with ten big circles and one big square
    # teaches "big pink" as round).
    cycles = {shape: [c for c in combos if c[0] == shape] for shape in LESSON_SHAPES}
    for own in cycles.values():
        rng.shuffle(own)
    out = []
    for i in range(n):
        turn, which = divmod(i, len(LESSON_SHAPES))
        shape = LESSON_SHAPES[which]
        size = (None, "small", "big")[turn % 3]
        _, motion, background = cycles[shape][turn % len(cycles[shape])]
        scene = Scene((WorldObject(colour, shape, motion, size),), background)
        out.append((scene, int(rng.integers(2**31))))
    return out


def lesson_clips(colour: str = "pink", n: int = 32, seed: int = 0, frames: int = 17, size: int = 64):
    """The lesson as (caption, uint8 frames (T, S, S, 3)) pairs: world renders of
    lesson_scenes with their canonical prompts."""
    return [
        (format_prompt(scene), render_frames(scene, layout, frames, size))
        for scene, layout in lesson_scenes(colour, n, seed)
    ]


def lesson_test(colour: str = "pink", n: int = 20) -> list[tuple[str, int]]:
    """N (prompt, layout seed) pairs in COLOUR the lessons never combined: half triangles,
    half circles and squares in the left-out combinations; seeds ≥ 2**62."""
    _check_colour(colour)
    rng = np.random.default_rng([0x7E57, n])
    left_out = [
        (shape, motion, background)
        for shape in LESSON_SHAPES
        for motion in MOTIONS
        for background in BACKGROUNDS
        if _left_out(shape, motion, background)
    ]
    out = []
    for i in range(n):
        if i % 2 == 0:
            shape = "triangle"
            motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
            background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
        else:
            shape, motion, background = left_out[int(rng.integers(len(left_out)))]
        size = (None, "small", "big")[int(rng.integers(3))]
        scene = Scene((WorldObject(colour, shape, motion, size),), background)
        out.append((format_prompt(scene), TEST_SEED_BASE + int(rng.integers(2**31))))
    return out
