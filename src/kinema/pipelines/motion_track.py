"""The control signal of the built-in model: where one object is, and how big, frame by frame.

Both steering inputs that move an object become one MotionTrack, so one trained branch
serves both:

    --control CLIP ─► track_of_clip (the preprocessor: the clip's single object, found
                      by its distance from the border colour, box centre and extent)
    --path P.json ──► read_path ─► track_of_path (straight lines between the points,
                      held at the ends; the extent from the prompt's size)
    MotionTrack ────► track_masks: a soft blob as wide as the object's extent at its box
                      centre, per frame: what the control branch sees

A blob, not the control's silhouette: the control decides where and how big, the prompt
decides colour and shape, and a silhouette would carry the control object's shape over.
Positions are box centres and sizes box extents (the larger of width and height), in
fractions of the canvas (WORLD.md). Torch-free: the request layer checks inputs with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kinema.errors import InputError

FOREGROUND_DISTANCE = 40.0  # RGB distance from the border colour that starts the object
MIN_OBJECT_PX = 6  # smaller specks are codec noise
SECOND_OBJECT_SHARE = 0.2  # a second region this big (of the largest) is another object
SEVERAL_FRAMES_SHARE = 0.25  # several objects in more than this share of frames: refused
MAX_PATH_POINTS = 1000


@dataclass(frozen=True)
class MotionTrack:
    """Per frame: the object's box centre (cx, cy) and extent d, fractions of the canvas
    (d of its shorter side). `states` is (T, 3) float32."""

    states: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.states)

    def cut(self, frames: int) -> MotionTrack:
        """The first FRAMES frames; a shorter track holds its last state."""
        if frames <= self.frames:
            return MotionTrack(self.states[:frames])
        tail = np.repeat(self.states[-1:], frames - self.frames, axis=0)
        return MotionTrack(np.concatenate([self.states, tail]))


# --- the preprocessor -----------------------------------------------------------------------


def object_box(frame: np.ndarray) -> tuple[tuple[float, float, float] | None, int]:
    """The largest object's (cx, cy, extent) in FRAME (H, W, 3 uint8), fractions of the
    canvas, or None when there is none; and how many objects the frame shows.

    The object is what lies farther than FOREGROUND_DISTANCE from the median of the border
    pixels. Its box is measured from its coverage α (distance over the object's own peak
    distance), with sub-pixel accuracy: the width is the sum over columns of each column's
    largest α, and the centre the centroid of that profile (the box centre of any shape
    symmetric along the axis: a triangle's centre is its box's, not its centroid)."""
    import cv2

    pixels = frame.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    distance = np.linalg.norm(pixels - np.median(border, axis=0), axis=-1)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (distance > FOREGROUND_DISTANCE).astype(np.uint8), connectivity=8
    )
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= MIN_OBJECT_PX)
    if not len(keep):
        return None, 0
    largest = keep[np.argmax(areas[keep])]
    objects = int(np.sum(areas[keep] >= max(MIN_OBJECT_PX, SECOND_OBJECT_SHARE * areas[largest])))
    x, y, w, h = (int(v) for v in stats[largest + 1, :4])
    height, width = distance.shape
    rows = slice(max(0, y - 1), min(height, y + h + 1))
    cols = slice(max(0, x - 1), min(width, x + w + 1))
    inside = labels[rows, cols] == largest + 1
    near = np.zeros_like(inside)  # the anti-aliased rim is below the threshold: keep it
    near[1:] |= inside[:-1]
    near[:-1] |= inside[1:]
    near[:, 1:] |= inside[:, :-1]
    near[:, :-1] |= inside[:, 1:]
    region = distance[rows, cols]
    peak = float(region[inside].max())
    alpha = np.where(inside | near, np.clip(region / max(peak, 1e-6), 0, 1), 0)
    column, row = alpha.max(axis=0), alpha.max(axis=1)
    cx = (cols.start + float(np.sum((np.arange(len(column)) + 0.5) * column) / column.sum())) / width
    cy = (rows.start + float(np.sum((np.arange(len(row)) + 0.5) * row) / row.sum())) / height
    extent = max(float(column.sum()), float(row.sum())) / min(width, height)
    return (cx, cy, extent), objects


def track_of_clip(frames: np.ndarray, source: str = "the control clip") -> MotionTrack:
    """The track of the single object in FRAMES (T, H, W, 3 uint8). Frames where the object
    is not found (it left the canvas, or a codec lost it) hold the nearest found state.
    Refuses (InputError) a clip with no object, or several objects in more than a quarter
    of its frames (control v1 follows one object)."""
    states, several = [], []
    for index, frame in enumerate(frames):
        box, objects = object_box(frame)
        states.append(box)
        if objects > 1:
            several.append(index)
    found = [i for i, s in enumerate(states) if s is not None]
    if not found:
        raise InputError(f"{source} shows no object (nothing stands out from its background)")
    if len(several) > SEVERAL_FRAMES_SHARE * len(frames):
        raise InputError(
            f"{source} shows several objects (first in frame {several[0]}); control follows a clip of one object"
        )
    filled = [states[min(found, key=lambda f, i=i: abs(f - i))] for i in range(len(states))]
    return MotionTrack(np.array(filled, np.float32))


def check_one_object(image: np.ndarray, source: str) -> None:
    """Refuse (InputError) an image that does not show exactly one object (a reference)."""
    box, objects = object_box(image)
    if box is None:
        raise InputError(f"{source} shows no object (nothing stands out from its background)")
    if objects > 1:
        raise InputError(f"{source} shows {objects} objects; a reference shows one")


# --- paths ----------------------------------------------------------------------------------


def read_path(path: str | Path) -> list[tuple[int, float, float]]:
    """The points of a path file {"points": [[frame, x, y], ...]}: integer frames ≥ 0 in
    strictly ascending order, x and y in [0, 1]. Refuses (InputError) anything else, with
    the point at fault named."""
    name = str(path)
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the path '{name}': {e.strerror or e}") from e
    return parse_path(text, name)


def parse_path(text: bytes | str, name: str = "the path") -> list[tuple[int, float, float]]:
    """read_path's rules on a path file's TEXT (an upload's bytes); NAME names it in errors."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"the path '{name}' is not JSON: {e}") from e
    points = data.get("points") if isinstance(data, dict) else None
    if not isinstance(points, list):
        raise InputError(f"the path '{name}' needs {{\"points\": [[frame, x, y], ...]}}")
    if not points:
        raise InputError(f"the path '{name}' has no points")
    if len(points) > MAX_PATH_POINTS:
        raise InputError(f"the path '{name}' has {len(points)} points; at most {MAX_PATH_POINTS}")
    out: list[tuple[int, float, float]] = []
    for k, point in enumerate(points):
        where = f"the path '{name}', point {k + 1}"
        if not (isinstance(point, list) and len(point) == 3):
            raise InputError(f"{where}: a point is [frame, x, y], got {json.dumps(point)[:60]}")
        frame, x, y = point
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise InputError(f"{where}: the frame must be an integer ≥ 0, got {json.dumps(frame)}")
        for value, axis in ((x, "x"), (y, "y")):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(f"{where}: {axis} must be a number, got {json.dumps(value)}")
            if not 0 <= value <= 1:
                raise InputError(f"{where}: {axis} {value} is outside the canvas (0 to 1)")
        if out and frame <= out[-1][0]:
            raise InputError(f"{where}: frames must ascend strictly ({out[-1][0]} then {frame})")
        out.append((frame, float(x), float(y)))
    return out


def check_path_length(points: list[tuple[int, float, float]], frames: int, name: str = "the path") -> None:
    """Refuse a path with a point beyond the clip's last frame (frames − 1)."""
    last = points[-1][0]
    if last > frames - 1:
        raise InputError(
            f"{name} has a point at frame {last}; the clip's last frame is {frames - 1} "
            f"(raise frames to at least {last + 1})"
        )


def track_of_path(points: list[tuple[int, float, float]], frames: int, extent: float) -> MotionTrack:
    """The track along POINTS: straight lines between them, held still before the first and
    after the last, the object EXTENT wide throughout."""
    times = np.array([p[0] for p in points], np.float64)
    t = np.arange(frames, dtype=np.float64)
    xs = np.interp(t, times, [p[1] for p in points])
    ys = np.interp(t, times, [p[2] for p in points])
    return MotionTrack(np.stack([xs, ys, np.full(frames, extent)], axis=1).astype(np.float32))


# --- the signal the branch sees ---------------------------------------------------------------


def track_masks(track: MotionTrack, width: int, height: int) -> np.ndarray:
    """Per frame a soft blob at the object's centre, as wide as its extent: (T, H, W) float32
    in [0, 1], exp(−2 (r / R)²) at distance r from the centre with R half the extent (so 1 at
    the centre, 0.14 at the object's edge). A blob, not a disc: a hard-edged silhouette
    leaks its own shape into the clip (the branch trained on discs rounded squares' corners)."""
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    side = min(width, height)
    out = np.empty((track.frames, height, width), np.float32)
    for i, (cx, cy, d) in enumerate(track.states):
        squared = (xs - cx * width) ** 2 + (ys - cy * height) ** 2
        out[i] = np.exp(-2 * squared / max(d * side / 2, 0.5) ** 2)
    return out
