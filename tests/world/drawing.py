"""Clips drawn shape by shape, for checker tests that need what the renderer never makes."""

import numpy as np

from kinema.world import BACKGROUNDS, COLOURS
from kinema.world.render import coverage


def draw(per_frame, background="black", size=64):
    """Frames from a list (one per frame) of lists of (shape, colour, cx, cy, d), fractions."""
    out = []
    for objects in per_frame:
        canvas = np.empty((size, size, 3), np.float32)
        canvas[:] = BACKGROUNDS[background]
        for shape, colour, cx, cy, d in objects:
            rows, cols, cov = coverage(shape, cx * size, cy * size, d * size, size)
            region = canvas[rows, cols]
            canvas[rows, cols] = region + (np.array(COLOURS[colour], np.float32) - region) * cov[..., None]
        out.append(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    return np.stack(out)
