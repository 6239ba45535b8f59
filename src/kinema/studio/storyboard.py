"""Storyboards: a YAML (or JSON) list of shots made one by one and cut together.

    title: the chase                # optional, heads the report
    candidates: 4                   # optional board defaults, each shot may override them:
    retakes: 2                      #   seeds tried per shot, extra seeds while none passes QA,
    qa_threshold: 0.7               #   and the QA score a kept take needs (studio/bestof.py)
    report: run.html                # optional: an HTML report of the run, and a PNG contact
    contact_sheet: sheet.png        #   sheet, written inside the board's folder
    shots:
      - prompt: a red circle moving right on a black background
        frames: 16          # or seconds: 2
        seed: 1             # candidates use seed, seed+1, …; retakes the seeds after
        image: start.png    # optional first frame, a path inside the board's folder
        lora: pink:0.8      # optional adapters (NAME_OR_FILE[:SCALE] or a list), after --lora
      - prompt: a red circle on a black background   # no motion phrase: the path moves it
        path: zigzag.json   # optional: a motion path, or control: clip.mp4 (a control clip),
        control_scale: 1.0  #   files inside the board's folder; how strongly they steer (0-2)
        reference: hero.png # optional: the object's colour and shape from an image; shots
                            #   sharing one show the same object ("an object moving …")
      - prompt: a red circle moving left on a black background
        transition: continue   # how the shot before joins into this one:
                               #   cut (default) | crossfade:N | continue

A shot's `transition` joins the shot before it into this one (so shot 1 has none, and
one given there is refused). `continue` starts this shot on the previous shot's kept
last frame (image-to-video) and joins the two without repeating it; a shot that starts
from an image (its own or the one before's last frame) shows it exactly at frame 0
(settle_first_frame). Every shot is a ClipRequest rendered by kinema.render, like a
`kinema generate` of the same settings. The whole board is validated before anything is
generated, and every error names the shot (or the board) and the field. Every take is cached by a hash of everything that decides its pixels, so a rerun after a crash or an
edit makes only the takes that changed; QA is recomputed from the cached pixels, so the
same takes are kept again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from kinema.errors import InputError
from kinema.io import Video, write_png
from kinema.io.atomic import replacing
from kinema.metrics.temporal import SEAM_RATIO, frame_differences, seam_ratio
from kinema.pipelines.facts import ModelFacts
from kinema.render import Adapter, ClipRequest, check, parse_adapter, render
from kinema.render.request import file_sha256
from kinema.studio.bestof import DEFAULT_THRESHOLD, MAX_TAKES, Choice, best_of, check_counts
from kinema.studio.stitch import parse_transition, stitch

CACHE_DIR = ".kinema-cache"
SETTLE_FRAMES = 4  # frames over which a continued shot's first-frame error fades (one latent step)
_TAKE_FIELDS = {"candidates", "retakes", "qa_threshold"}
_STEERING_FIELDS = {"path", "control", "control_scale", "reference"}
_FIELDS = {
    "prompt",
    "frames",
    "seconds",
    "seed",
    "image",
    "transition",
    "lora",
    *_STEERING_FIELDS,
    *_TAKE_FIELDS,
}
_BOARD_FIELDS = {"shots", "title", "report", "contact_sheet", *_TAKE_FIELDS}


@dataclass(frozen=True)
class Shot:
    index: int  # 1-based, as errors name it
    prompt: str
    frames: int
    seed: int
    image: Path | None
    transition: str  # how the shot before joins into this one ("cut" for shot 1)
    candidates: int = 1
    retakes: int = 0
    qa_threshold: float = DEFAULT_THRESHOLD
    adapters: tuple[Adapter, ...] = ()  # the shot's own `lora:`, after the board's --lora
    path: Path | None = None  # a motion path the shot's object follows
    control: Path | None = None  # a control clip whose object's motion it follows
    control_scale: float = 1.0
    reference: Path | None = None  # an image whose object the shot shows


@dataclass(frozen=True)
class Board(Sequence[Shot]):
    """A validated board: its shots (indexable like a list) and the board-wide fields."""

    shots: tuple[Shot, ...]
    path: Path
    title: str | None = None
    report: Path | None = None  # HTML report to write after a run
    contact_sheet: Path | None = None  # PNG contact sheet to write after a run

    def __getitem__(self, i):
        return self.shots[i]

    def __len__(self) -> int:
        return len(self.shots)

    def __iter__(self) -> Iterator[Shot]:
        return iter(self.shots)

    def with_takes(
        self, candidates: int | None = None, retakes: int | None = None, qa_threshold: float | None = None
    ) -> Board:
        """The board with every shot's takes set (None keeps what the board says), as
        command-line options do; refuses (InputError) values out of range."""
        changes = {
            k: v
            for k, v in (("candidates", candidates), ("retakes", retakes), ("qa_threshold", qa_threshold))
            if v is not None
        }
        if not changes:
            return self
        check_counts(
            changes.get("candidates", 1),
            changes.get("retakes", 0),
            changes.get("qa_threshold", DEFAULT_THRESHOLD),
        )
        return replace(self, shots=tuple(replace(shot, **changes) for shot in self.shots))

    def writing(
        self, report: str | os.PathLike | None = None, contact_sheet: str | os.PathLike | None = None
    ) -> Board:
        """The board set to write its report and contact sheet at these paths (anywhere,
        unlike the board's own fields); refuses (InputError) a wrong suffix or a missing folder."""
        changes = {}
        for name, value, suffixes in (
            ("report", report, (".html", ".htm")),
            ("contact_sheet", contact_sheet, (".png",)),
        ):
            if value is not None:
                path = Path(os.fspath(value))
                problem = _unwritable(path, suffixes)
                if problem:
                    raise InputError(f"--{name.replace('_', '-')} '{value}' {problem}")
                changes[name] = path
        return replace(self, **changes) if changes else self


def _fail(index: int | None, field: str, problem: str) -> InputError:
    where = "storyboard" if index is None else f"shot {index}"
    return InputError(f"{where}, field '{field}': {problem}")


def load_board(path: str | os.PathLike, fps: float = 8.0, base_seed: int | None = None) -> Board:
    """Parse and validate a board; refuses (InputError) anything wrong before any work.
    A shot without a seed gets its number (1, 2, …), or BASE_SEED + number - 1."""
    board = Path(os.fspath(path))
    try:
        data = yaml.safe_load(board.read_text())
    except FileNotFoundError:
        raise InputError(f"storyboard '{board}' does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"storyboard '{board}' is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("shots"), list) or not data["shots"]:
        raise InputError(f"storyboard '{board}' needs a non-empty list under 'shots:'")
    unknown = sorted(str(k) for k in set(data) - _BOARD_FIELDS)
    if unknown:
        raise _fail(None, unknown[0], f"unknown field; a board takes {', '.join(sorted(_BOARD_FIELDS))}")
    root = board.parent.resolve()
    defaults = _takes(None, data, {"candidates": 1, "retakes": 0, "qa_threshold": DEFAULT_THRESHOLD})
    title = data.get("title")
    if title is not None and not isinstance(title, str):
        raise _fail(None, "title", "must be text")
    shots = []
    for i, raw in enumerate(data["shots"], start=1):
        if not isinstance(raw, dict):
            raise _fail(i, "shot", "each shot is a mapping of fields (prompt, frames, …)")
        unknown = sorted(str(k) for k in set(raw) - _FIELDS)
        if unknown:
            raise _fail(i, unknown[0], f"unknown field; shots take {', '.join(sorted(_FIELDS))}")
        prompt = raw.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _fail(i, "prompt", "missing or empty")
        shots.append(
            Shot(
                i,
                prompt,
                _frames(i, raw, fps),
                _seed(i, raw, base_seed),
                _image(i, raw, root),
                _transition(i, raw),
                **_takes(i, raw, defaults),
                adapters=_adapters(i, raw, root),
                **_steering(i, raw, root),
            )
        )
    for before, shot in zip(shots, shots[1:], strict=False):
        shortest = min(before.frames, shot.frames)
        if shot.transition.startswith("crossfade") and parse_transition(shot.transition) >= shortest:
            raise _fail(
                shot.index,
                "transition",
                f"a crossfade must be shorter than the shots it joins ({shortest} frames)",
            )
    return Board(
        tuple(shots),
        board,
        title,
        _written(data, "report", (".html", ".htm"), root),
        _written(data, "contact_sheet", (".png",), root),
    )


def _takes(i: int | None, raw: dict, defaults: dict) -> dict:
    """candidates, retakes and qa_threshold of a shot (or the board's defaults)."""
    out = dict(defaults)
    for name, low in (("candidates", 1), ("retakes", 0)):
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_TAKES:
                raise _fail(i, name, f"must be a whole number from {low} to {MAX_TAKES}, got {value!r}")
            out[name] = value
    if "qa_threshold" in raw:
        value = raw["qa_threshold"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise _fail(i, "qa_threshold", f"must be a number from 0 to 1, got {value!r}")
        out["qa_threshold"] = float(value)
    return out


def _steering(i: int, raw: dict, root: Path) -> dict:
    """A shot's `path:`, `control:`, `reference:` (files inside the board's folder) and
    `control_scale:`;
    what they may steer is the request layer's check, as for generate."""
    out: dict = {}
    for name in ("path", "control", "reference"):
        if raw.get(name) is not None:
            path = _inside(i, name, raw[name], root)
            if not path.is_file():
                raise _fail(i, name, f"'{raw[name]}' does not exist")
            out[name] = path
    if "control_scale" in raw:
        value = raw["control_scale"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
            raise _fail(i, "control_scale", f"must be a number from 0 to 2, got {value!r}")
        out["control_scale"] = float(value)
    return out


def _adapters(i: int, raw: dict, root: Path) -> tuple[Adapter, ...]:
    """A shot's `lora:`: one NAME_OR_FILE[:SCALE] or a list of them; a file is a path
    inside the storyboard's folder (a .safetensors, or anything with a '/'), else a name
    in KINEMA_HOME/loras. Scale 0 leaves an adapter out, as on the command line."""
    value = raw.get("lora")
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _fail(i, "lora", "must be NAME_OR_FILE[:SCALE] or a list of them")
        adapter = parse_adapter(item)
        if "/" in adapter.source or adapter.source.endswith(".safetensors"):
            adapter = Adapter(str(_inside(i, "lora", adapter.source, root)), adapter.scale)
        if adapter.scale != 0:
            out.append(adapter)
    return tuple(out)


def _inside(i: int | None, name: str, value: object, root: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _fail(i, name, "must be a path")
    path = (root / value).resolve()
    if root not in path.parents:
        raise _fail(i, name, f"'{value}' is outside the storyboard's folder")
    return path


def _written(data: dict, name: str, suffixes: tuple[str, ...], root: Path) -> Path | None:
    if data.get(name) is None:
        return None
    path = _inside(None, name, data[name], root)
    problem = _unwritable(path, suffixes)
    if problem:
        raise _fail(None, name, f"'{data[name]}' {problem}")
    return path


def _unwritable(path: Path, suffixes: tuple[str, ...]) -> str | None:
    """Why a run's report (or sheet) could not be written at `path`, or None."""
    if path.suffix.lower() not in suffixes:
        return f"must end in {' or '.join(suffixes)}"
    if not path.parent.is_dir():
        return "is in a folder that does not exist"
    if path.is_dir():
        return "is a folder"
    return None


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


def _seed(i: int, raw: dict, base_seed: int | None = None) -> int:
    seed = raw.get("seed", i if base_seed is None else base_seed + i - 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**62:
        raise _fail(i, "seed", f"must be a whole number from 0 to 2**62, got {seed!r}")
    return seed


def _image(i: int, raw: dict, root: Path) -> Path | None:
    if raw.get("image") is None:
        return None
    path = _inside(i, "image", raw["image"], root)
    if not path.is_file():
        raise _fail(i, "image", f"'{raw['image']}' does not exist")
    return path


def _transition(i: int, raw: dict) -> str:
    if i == 1 and "transition" in raw:
        raise _fail(i, "transition", "joins the shot before into this one, and shot 1 has none before it")
    value = str(raw.get("transition", "cut")).strip().lower()
    if value == "continue":
        return value
    try:
        parse_transition(value)
    except InputError as e:
        raise _fail(i, "transition", f"{e} (or 'continue')") from None
    return value


# ---------------------------------------------------------------- making the shots


def shot_key(
    shot: Shot,
    model_hash: str | None,
    first_frame: np.ndarray | None,
    settings: dict,
    seed: int | None = None,
) -> str:
    """A hash of everything that decides a take's pixels (the shot's seed unless `seed`)."""
    digest = hashlib.sha256(
        json.dumps(
            {
                "prompt": shot.prompt,
                "frames": shot.frames,
                "seed": shot.seed if seed is None else seed,
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


@dataclass
class ShotResult:
    shot: Shot
    choice: Choice  # every take, and the kept one's clip
    start: int = 0  # the finished clip's index of the shot's frame 0


@dataclass
class BoardRun:
    """What a board run made: the finished clip, each shot's takes, and the seams."""

    video: Video
    shots: list[ShotResult]
    seams: list[dict]  # one per boundary, see seam_check
    log: list[dict]  # JSON-ready, one entry per shot (the sidecar's "shots")
    settings: dict = field(default_factory=dict)  # model, steps, fps, board


def settle_first_frame(first: np.ndarray, frames: np.ndarray, fade: int = SETTLE_FRAMES) -> np.ndarray:
    """A take that starts from `first` (uint8 H×W×3), made to show it exactly at frame 0.

    The model shows its VAE's reconstruction of the image there, a level or two off on
    average and more at edges; joined to the shot it continues, that error is a jump at
    the seam. The error (first − frames[0]) is added to frames 0..fade-1 with weight
    1 − k/fade, so it fades out before the take's own motion has moved far.
    """
    out = frames.astype(np.float32)
    error = first.astype(np.float32) - out[0]
    for k in range(min(fade, len(out))):
        out[k] += error * (1 - k / fade)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def run_board(
    pipe,
    shots: Sequence[Shot],
    board_dir: Path,
    fps: float,
    template: ClipRequest | None = None,
    facts: ModelFacts | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BoardRun:
    """Make every shot best-of its candidates with its retakes (cached takes are read
    back), join them, and measure the seams; returns the BoardRun. TEMPLATE holds the
    options every shot shares (steps, guidance, negative, model); FACTS are the model's
    (None: nothing is known ahead of the pipeline)."""
    template = template or ClipRequest("")
    facts = facts or ModelFacts()
    width, height = template.size or (pipe.defaults["size"],) * 2
    cache = Path(board_dir) / CACHE_DIR
    settings = {"steps": template.steps, "size": [width, height]}
    results, carry = [], None
    for n, shot in enumerate(shots):
        first = carry if shot.transition == "continue" and shot.image is None else None
        checked = check(shot_request(shot, template, fps), facts, first=first)
        first = checked.inputs.first

        def make(seed: int, shot=shot, first=first, checked=checked) -> tuple[Video, bool]:
            # a take depends on the adapters mixed in (their bytes) and the sampler's words too
            request = checked.request
            shared = {
                **settings,
                "adapters": [a.record() for a in checked.inputs.adapters],
                "negative": checked.request.negative,
                "guidance": checked.request.guidance,
            }
            # a control or a path decides the pixels by its bytes and its scale
            steering = [
                [name, file_sha256(getattr(request, name)), request.control_scale]
                for name in ("path", "control", "reference")
                if getattr(request, name) is not None
            ]
            if steering:
                shared["steering"] = steering
            key = shot_key(shot, pipe.model_hash, first, shared, seed=seed)
            frames = _cached(cache, key)
            made = frames is None
            if made:
                frames = render(pipe, checked.with_seed(seed)).video.frames
                _store(cache, key, frames)
            if first is not None:
                frames = settle_first_frame(first, frames)
            return Video(frames, fps), not made

        choice = best_of(
            make,
            shot.prompt,
            shot.seed,
            shot.candidates,
            shot.retakes,
            shot.qa_threshold,
            before=first if shot.image is None else None,
        )
        results.append(ShotResult(shot, choice))
        carry = choice.video.frames[-1]
        if progress:
            progress(n + 1, len(shots))
    video, boundaries = _join([r.choice.video for r in results], list(shots))
    for r, b in zip(results[1:], boundaries, strict=True):
        # a continued shot's frame 0 is the previous shot's last frame, shown once
        r.start = b["steps"][0] + (0 if b["transition"] == "continue" else 1)
    seams = seam_check(video.frames, boundaries)
    log = []
    for r in results:
        entry = {
            "shot": r.shot.index,
            "prompt": r.shot.prompt,
            "frames": r.shot.frames,
            "transition": r.shot.transition,
            **r.choice.record(),
            "cached": all(t.cached for t in r.choice.takes),
        }
        seam = next((s for s in seams if s["into_shot"] == r.shot.index), None)
        if seam is not None:
            entry["seam"] = seam
        log.append(entry)
    run_settings = {
        "model": getattr(pipe, "name", None),
        "model_hash": pipe.model_hash,
        "steps": template.steps,
        "fps": fps,
        "size": [width, height],
    }
    return BoardRun(video, results, seams, log, run_settings)


def shot_request(shot: Shot, template: ClipRequest, fps: float) -> ClipRequest:
    """The ClipRequest of a shot: the board's shared options with the shot's own."""
    return replace(
        template,
        prompt=shot.prompt,
        seed=shot.seed,
        frames=shot.frames,
        fps=fps,
        image=shot.image,
        adapters=(*template.adapters, *shot.adapters),
        path=shot.path,
        control=shot.control,
        control_scale=shot.control_scale,
        reference=shot.reference,
    )


def check_board(shots: Sequence[Shot], template: ClipRequest, facts: ModelFacts, fps: float) -> None:
    """Check every shot's request (prompt screen, lengths, images and their likeness)
    before anything is generated; errors name the shot. A shot that continues the one
    before is checked as the image-to-video take it will be (a model without i2v refuses
    it now, not after the shots before it were made)."""
    width, height = template.size or (facts.default("size", 64),) * 2
    stand_in = np.full((height, width, 3), 128, np.uint8)  # the previous shot's last frame
    for shot in shots:
        first = stand_in if shot.transition == "continue" and shot.image is None else None
        try:
            check(shot_request(shot, template, fps), facts, first=first)
        except InputError as e:
            raise InputError(f"shot {shot.index}: {e}") from None


def render_board(pipe, shots: Sequence[Shot], *args, **options) -> tuple[Video, list[dict]]:
    """Run the board (run_board, with its arguments) and, when it is a Board that asks for
    them, write its HTML report and contact sheet; returns the finished clip and the
    per-shot log."""
    from kinema.studio.report import contact_sheet, write_report

    run = run_board(pipe, shots, *args, **options)
    if isinstance(shots, Board):
        run.settings["board"] = str(shots.path)
        if shots.contact_sheet is not None:
            write_png(contact_sheet(run), shots.contact_sheet)
        if shots.report is not None:
            write_report(run, shots.report, title=shots.title or shots.path.stem)
    return run.video, run.log


def _join(clips: list[Video], shots: list[Shot]) -> tuple[Video, list[dict]]:
    """The shots joined by their transitions (each shot's joins the one before into it),
    and each boundary: the shots it joins, the transition and the steps t → t+1 of the
    joined clip that cross it."""
    result, boundaries = clips[0], []
    for clip, previous, shot in zip(clips[1:], shots[:-1], shots[1:], strict=True):
        end = result.num_frames
        if shot.transition == "continue":  # this shot opens on the frame the one before ended on
            tail = clip.frames[1:] if clip.num_frames > 1 else clip.frames
            result = Video(np.concatenate([result.frames, tail]), result.fps)
            crossing = [end - 1]
        else:
            overlap = parse_transition(shot.transition)
            result = stitch([result, clip], shot.transition)
            # a crossfade's blended frames sit at end-overlap .. end-1
            crossing = list(range(end - overlap - 1, end))
        boundaries.append(
            {
                "after_shot": previous.index,
                "into_shot": shot.index,
                "transition": shot.transition,
                "steps": crossing,
            }
        )
    return result, boundaries


def seam_check(frames: np.ndarray, boundaries: list[dict]) -> list[dict]:
    """The extension seam rule at every boundary of a joined clip.

    A boundary's difference is the largest mean absolute frame difference of the steps
    that cross it; the clip's inner step is the median over every other step (at least
    SEAM_FLOOR). The rule (difference ≤ SEAM_RATIO × inner) is judged for `continue`,
    whose seam should be invisible; cuts and crossfades are reported with "ok": None.
    """
    diffs = frame_differences(frames)
    crossing = {s for b in boundaries for s in b["steps"]}
    inner = [d for i, d in enumerate(diffs) if i not in crossing]
    out = []
    for b in boundaries:
        difference = float(max((diffs[s] for s in b["steps"] if 0 <= s < len(diffs)), default=0.0))
        judged = b["transition"] == "continue"
        ratio, median = seam_ratio(difference, inner)
        out.append(
            {
                "after_shot": b["after_shot"],
                "into_shot": b["into_shot"],
                "transition": b["transition"],
                "frame": b["steps"][0] + 1,  # where the next shot starts to show
                "difference": round(difference, 3),
                "median_inner": round(median, 3),
                "ratio": round(ratio, 3),
                "limit": SEAM_RATIO if judged else None,
                "ok": bool(ratio <= SEAM_RATIO) if judged else None,
            }
        )
    return out
