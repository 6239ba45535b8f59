"""Storyboards: a YAML (or JSON) list of shots made one by one and cut together.

    shots:
      - prompt: a red circle moving right on a black background
        frames: 16          # or seconds: 2
        seed: 1
        image: start.png    # optional first frame, a path inside the board's folder
        transition: continue   # to the next shot: cut | crossfade:N | continue

`continue` starts the next shot on this shot's last frame (image-to-video) and joins the
two without repeating it. The whole board is validated before anything is generated,
and every error names the shot and the field. Finished shots are cached by a hash of
everything that decides their pixels, so a rerun after a crash or an edit makes only
the shots that changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from kinema.errors import InputError
from kinema.io import Video, read_image
from kinema.io.atomic import replacing
from kinema.studio.stitch import parse_transition, stitch

CACHE_DIR = ".kinema-cache"
_FIELDS = {"prompt", "frames", "seconds", "seed", "image", "transition"}


@dataclass(frozen=True)
class Shot:
    index: int  # 1-based, as errors name it
    prompt: str
    frames: int
    seed: int
    image: Path | None
    transition: str  # to the next shot


def _fail(index: int, field: str, problem: str) -> InputError:
    return InputError(f"shot {index}, field '{field}': {problem}")


def load_board(path: str | os.PathLike, fps: float = 8.0) -> list[Shot]:
    """Parse and validate a board; refuses (InputError) anything wrong before any work."""
    board = Path(os.fspath(path))
    try:
        data = yaml.safe_load(board.read_text())
    except FileNotFoundError:
        raise InputError(f"storyboard '{board}' does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"storyboard '{board}' is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("shots"), list) or not data["shots"]:
        raise InputError(f"storyboard '{board}' needs a non-empty list under 'shots:'")
    root = board.parent.resolve()
    shots = []
    for i, raw in enumerate(data["shots"], start=1):
        if not isinstance(raw, dict):
            raise _fail(i, "shot", "each shot is a mapping of fields (prompt, frames, …)")
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise _fail(i, unknown[0], f"unknown field; shots take {', '.join(sorted(_FIELDS))}")
        prompt = raw.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _fail(i, "prompt", "missing or empty")
        shots.append(
            Shot(i, prompt, _frames(i, raw, fps), _seed(i, raw), _image(i, raw, root), _transition(i, raw))
        )
    for shot in shots:
        if shot.transition.startswith("crossfade") and parse_transition(shot.transition) >= shot.frames:
            raise _fail(
                shot.index, "transition", f"a crossfade must be shorter than the shot ({shot.frames} frames)"
            )
    return shots


def _frames(i: int, raw: dict, fps: float) -> int:
    if "frames" in raw and "seconds" in raw:
        raise _fail(i, "frames", "give frames or seconds, not both")
    if "seconds" in raw:
        seconds = raw["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise _fail(i, "seconds", f"must be a positive number, got {seconds!r}")
        return max(1, math.ceil(seconds * fps))
    frames = raw.get("frames", 16)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise _fail(i, "frames", f"must be a positive whole number, got {frames!r}")
    return frames


def _seed(i: int, raw: dict) -> int:
    seed = raw.get("seed", i)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _fail(i, "seed", f"must be a whole number ≥ 0, got {seed!r}")
    return seed


def _image(i: int, raw: dict, root: Path) -> Path | None:
    if raw.get("image") is None:
        return None
    if not isinstance(raw["image"], str):
        raise _fail(i, "image", "must be a path")
    path = (root / raw["image"]).resolve()
    if root not in path.parents:
        raise _fail(i, "image", f"'{raw['image']}' is outside the storyboard's folder")
    if not path.is_file():
        raise _fail(i, "image", f"'{raw['image']}' does not exist")
    return path


def _transition(i: int, raw: dict) -> str:
    value = str(raw.get("transition", "cut")).strip().lower()
    if value == "continue":
        return value
    try:
        parse_transition(value)
    except InputError as e:
        raise _fail(i, "transition", f"{e} (or 'continue')") from None
    return value


# ---------------------------------------------------------------- making the shots


def shot_key(shot: Shot, model_hash: str | None, first_frame: np.ndarray | None, settings: dict) -> str:
    """A hash of everything that decides a shot's pixels."""
    digest = hashlib.sha256(
        json.dumps(
            {
                "prompt": shot.prompt,
                "frames": shot.frames,
                "seed": shot.seed,
                "model": model_hash,
                **settings,
            },
            sort_keys=True,
        ).encode()
    )
    if first_frame is not None:
        digest.update(np.ascontiguousarray(first_frame).tobytes())
    return digest.hexdigest()[:24]


def _cached(folder: Path, key: str) -> np.ndarray | None:
    path = folder / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError):
        return None  # a damaged entry is simply made again


def _store(folder: Path, key: str, frames: np.ndarray) -> None:
    folder.mkdir(exist_ok=True)
    with replacing(folder / f"{key}.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, frames, allow_pickle=False)


def render_board(
    pipe,
    shots: list[Shot],
    board_dir: Path,
    fps: float,
    steps: int | None = None,
    progress=None,
    check_image=None,
) -> tuple[Video, list[dict]]:
    """Make every shot (cached ones are read back) and join them; returns the clip and a
    per-shot log (prompt, frames, seed, cached or made)."""
    from kinema.pipelines.conditioning import fit_image

    width = height = pipe.defaults["size"]
    cache = board_dir / CACHE_DIR
    clips, log, carry = [], [], None
    for n, shot in enumerate(shots):
        first = carry
        if shot.image is not None:
            pixels = read_image(shot.image)
            if check_image:
                check_image(pixels, str(shot.image))
            first, _ = fit_image(pixels, width, height)
        key = shot_key(shot, pipe.model_hash, first, {"steps": steps, "size": [width, height]})
        frames = _cached(cache, key)
        made = frames is None
        if made:
            keyframes = {0: first} if first is not None else None
            frames = pipe(
                shot.prompt, seed=shot.seed, frames=shot.frames, steps=steps, fps=fps, keyframes=keyframes
            ).frames
            _store(cache, key, frames)
        log.append(
            {
                "shot": shot.index,
                "prompt": shot.prompt,
                "frames": shot.frames,
                "seed": shot.seed,
                "cached": not made,
            }
        )
        clips.append(Video(frames, fps))
        carry = frames[-1] if shot.transition == "continue" else None
        if progress:
            progress(n + 1, len(shots))
    return _join(clips, shots), log


def _join(clips: list[Video], shots: list[Shot]) -> Video:
    result = clips[0]
    for clip, previous in zip(clips[1:], shots[:-1], strict=True):
        if previous.transition == "continue":  # the next shot opens on the frame this one ended on
            tail = clip.frames[1:] if clip.num_frames > 1 else clip.frames
            result = Video(np.concatenate([result.frames, tail]), result.fps)
        else:
            result = stitch([result, clip], previous.transition)
    return result
