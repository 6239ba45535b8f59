"""Turning user images into the conditions a pipeline takes."""

from __future__ import annotations

import cv2
import numpy as np

from kinema.errors import InputError


def fit_image(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, str]:
    """Centre-crop an RGB image to the clip's aspect ratio, then resize it to the clip's size.

    Returns the fitted image and a sentence saying what was done (the CLI prints it).
    """
    h, w = image.shape[:2]
    target = width / height
    if abs(w / h - target) < 1e-6:
        crop, note = image, ""
    elif w / h > target:
        new_w = max(1, round(h * target))
        x = (w - new_w) // 2
        crop, note = image[:, x : x + new_w], f"cropped {w - new_w} px of width, "
    else:
        new_h = max(1, round(w / target))
        y = (h - new_h) // 2
        crop, note = image[y : y + new_h], f"cropped {h - new_h} px of height, "
    if crop.shape[:2] == (height, width):
        return np.ascontiguousarray(crop), f"{w}x{h} used as is" if not note else note.rstrip(", ")
    shrink = crop.shape[0] > height
    resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return resized, f"{note}resized {crop.shape[1]}x{crop.shape[0]} to {width}x{height}"


def frame_map(requested: int, generated: int) -> list[int]:
    """Which generated frames make a clip of `requested` frames when the last frame is a
    keyframe: evenly spread, first and last kept (the VAE makes only 1+4k frames)."""
    if requested == 1:
        return [0]
    return [round(i * (generated - 1) / (requested - 1)) for i in range(requested)]


def mask_region(pixels: np.ndarray, width: int, height: int, name: str = "the mask") -> np.ndarray:
    """A mask image (H, W, 3) → bool (H, W), True = regenerate. Refuses (InputError) a mask
    of another size than the clip's, one with any pixel neither pure black nor pure white,
    and an all-black one (nothing to regenerate); NAME says which mask in the message."""
    if pixels.shape[:2] != (height, width):
        raise InputError(f"{name} is {pixels.shape[1]}x{pixels.shape[0]}; the clip is {width}x{height}")
    white, black = (pixels == 255).all(-1), (pixels == 0).all(-1)
    if not (white | black).all():
        raise InputError(f"{name} must be pure black (keep) and white (regenerate), nothing else")
    if not white.any():
        raise InputError(f"{name} is all black: nothing to regenerate")
    return np.asarray(white)
