"""The shapes-world renderer: Scene + seed → uint8 frames, exactly as WORLD.md says.

The seed draws each object's path (where it starts and ends); frame t places the object
at u = ping_pong(t) along that path. Shapes are anti-aliased by rendering their
bounding box at 4× supersampling and box-averaging down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinema.world.scene import BACKGROUNDS, PALETTE, Scene, WorldObject, ping_pong

SUPERSAMPLE = 4
MIN_SIZE, MAX_SIZE = 16, 1024


@dataclass(frozen=True)
class ObjectPath:
    """An object's state at u = 0 and u = 1; in between it is linear in u."""

    obj: WorldObject
    start: tuple[float, float, float]  # (cx, cy, d) as fractions of the canvas
    end: tuple[float, float, float]

    def at(self, u: float) -> tuple[float, float, float]:
        return tuple(a + (b - a) * u for a, b in zip(self.start, self.end, strict=True))


def _object_path(obj: WorldObject, rng: np.random.Generator, column: float | None) -> ObjectPath:
    d0 = obj.extent
    uniform = rng.uniform
    # a free coordinate: the object's column in a two-object scene, else drawn
    cx = column if column is not None else uniform(0.30, 0.70)
    if obj.motion == "moving left":
        a, cy = uniform(0.70, 0.80), uniform(0.30, 0.70)
        return ObjectPath(obj, (a, cy, d0), (1 - a, cy, d0))
    if obj.motion == "moving right":
        a, cy = uniform(0.20, 0.30), uniform(0.30, 0.70)
        return ObjectPath(obj, (a, cy, d0), (1 - a, cy, d0))
    if obj.motion == "moving up":
        a = uniform(0.70, 0.80)
        return ObjectPath(obj, (cx, a, d0), (cx, 1 - a, d0))
    if obj.motion == "moving down":
        a = uniform(0.20, 0.30)
        return ObjectPath(obj, (cx, a, d0), (cx, 1 - a, d0))
    cy = uniform(0.30, 0.70)
    if obj.motion == "growing":
        return ObjectPath(obj, (cx, cy, 0.6 * d0), (cx, cy, 1.4 * d0))
    if obj.motion == "shrinking":
        return ObjectPath(obj, (cx, cy, 1.4 * d0), (cx, cy, 0.6 * d0))
    return ObjectPath(obj, (cx, cy, d0), (cx, cy, d0))  # staying still


def sample_layout(scene: Scene, seed: int) -> tuple[ObjectPath, ...]:
    """Draw every object's path from `seed` (WORLD.md's ranges; two objects share the rows)."""
    rng = np.random.default_rng(seed)
    if len(scene.objects) == 1:
        return (_object_path(scene.objects[0], rng, None),)
    return tuple(_object_path(o, rng, col) for o, col in zip(scene.objects, (0.25, 0.75), strict=True))


def coverage(
    shape: str, cx: float, cy: float, d: float, height: int, width: int | None = None
) -> tuple[slice, slice, np.ndarray]:
    """Fraction of each pixel a shape covers, over the shape's pixel bounding box.

    Position and extent are in pixels ((0, 0) the top-left corner of the canvas).
    Returns (rows, cols, cov) with cov of shape (rows, cols) in [0, 1].
    """
    width = height if width is None else width
    half = d / 2
    r0, r1 = max(0, int(np.floor(cy - half))), min(height, int(np.ceil(cy + half)))
    c0, c1 = max(0, int(np.floor(cx - half))), min(width, int(np.ceil(cx + half)))
    if r1 <= r0 or c1 <= c0:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), np.float32)
    ys = ((np.arange(r0 * SUPERSAMPLE, r1 * SUPERSAMPLE) + 0.5) / SUPERSAMPLE)[:, None]
    xs = ((np.arange(c0 * SUPERSAMPLE, c1 * SUPERSAMPLE) + 0.5) / SUPERSAMPLE)[None, :]
    if shape == "circle":
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= half**2
    elif shape == "square":
        inside = (np.abs(xs - cx) <= half) & (np.abs(ys - cy) <= half)
    else:  # triangle: apex up at the top of its bounding box, base d along the bottom
        top = cy - half
        inside = (ys >= top) & (ys <= cy + half) & (np.abs(xs - cx) <= (ys - top) / 2)
    h, w = r1 - r0, c1 - c0
    cov = inside.reshape(h, SUPERSAMPLE, w, SUPERSAMPLE).mean(axis=(1, 3), dtype=np.float32)
    return slice(r0, r1), slice(c0, c1), cov


def render_frames(
    scene: Scene,
    seed: int = 0,
    frames: int = 16,
    size: int = 64,
    start: int = 0,
    colours: tuple[tuple[float, float, float], ...] | None = None,
    background: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """Render frames start .. start+frames-1 of the scene's clip: uint8 (T, S, S, 3).

    `start` cuts a window out of the endless ping-pong clip (training on windows at any
    offset shows a model the turns). `colours` (one RGB per object) and `background`
    paint the scene in colours outside the palette: the VAE's decoder learns the world's
    geometry in any colour (so an adapter can teach a new one); v1 prompts never use them.
    """
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE}, got {size}")
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    layout = sample_layout(scene, seed)
    if colours is not None and len(colours) != len(scene.objects):
        raise ValueError(f"colours gives {len(colours)} colours for {len(scene.objects)} objects")
    paint = colours or tuple(PALETTE[o.colour] for o in scene.objects)
    backdrop = np.array(background if background is not None else BACKGROUNDS[scene.background], np.float32)
    out = np.empty((frames, size, size, 3), np.uint8)
    canvas = np.empty((size, size, 3), np.float32)
    for i in range(frames):
        canvas[:] = backdrop
        u = ping_pong(start + i)
        for path, rgb in zip(layout, paint, strict=True):
            cx, cy, d = path.at(u)
            rows, cols, cov = coverage(path.obj.shape, cx * size, cy * size, d * size, size)
            colour = np.array(rgb, np.float32)
            region = canvas[rows, cols]
            canvas[rows, cols] = region + (colour - region) * cov[..., None]
        out[i] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return out


def render_track(
    shape: str,
    colour: tuple[float, float, float],
    background: tuple[float, float, float],
    states: np.ndarray,
    size: int = 64,
) -> np.ndarray:
    """One object drawn along any track: uint8 (T, S, S, 3), frame t with the shape's
    bounding box centred on states[t] = (cx, cy, d), fractions of the canvas. The world's
    motions are straight lines; a control's training clips and test references follow
    curves, zig-zags and stops, drawn exactly as WORLD.md draws a shape."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE}, got {size}")
    out = np.empty((len(states), size, size, 3), np.uint8)
    canvas = np.empty((size, size, 3), np.float32)
    paint, backdrop = np.array(colour, np.float32), np.array(background, np.float32)
    for i, (cx, cy, d) in enumerate(states):
        canvas[:] = backdrop
        rows, cols, cov = coverage(shape, cx * size, cy * size, d * size, size)
        region = canvas[rows, cols]
        canvas[rows, cols] = region + (paint - region) * cov[..., None]
        out[i] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return out
