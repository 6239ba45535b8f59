"""ClipRequest: every option of every generating mode, typed once, and the parsers of
the text forms doors take (sizes, outpaint sides, adapters)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from kinema.errors import InputError

MODES = ("generate", "extend", "remix", "inpaint", "outpaint")
EDITS = MODES[1:]
MAX_FRAMES_ENV = "KINEMA_MAX_FRAMES"
DEFAULT_STRENGTH = 0.6
_SIZE = re.compile(r"^\s*([0-9]{1,5})(?:\s*x\s*([0-9]{1,5}))?\s*$", re.IGNORECASE)

# The options each mode takes besides prompt, negative, seed, steps, guidance and the
# model's; any other option that is set is refused, never ignored.
TAKES: dict[str, tuple[str, ...]] = {
    "generate": ("frames", "size", "fps", "still", "loop", "image", "last_image", "narration"),
    "extend": ("source", "add_frames", "backward", "narration"),
    "remix": ("source", "strength", "narration"),
    "inpaint": ("source", "mask", "narration"),
    "outpaint": ("source", "outpaint", "narration"),
}
NEEDS: dict[str, tuple[str, ...]] = {
    "extend": ("source", "add_frames"),
    "remix": ("source",),
    "inpaint": ("source", "mask"),
    "outpaint": ("source", "outpaint"),
}


@dataclass(frozen=True)
class Narration:
    """Speech over the clip: the text, the voice (built-in or enrolled) and its use."""

    text: str
    voice: str = "amber"
    scope: str | None = None
    disclose_aloud: bool = False


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter by name (in KINEMA_HOME/loras) or file, mixed in at `scale`."""

    source: str
    scale: float = 1.0


@dataclass(frozen=True)
class ClipRequest:
    """Every option of every mode, typed once. None means "the model's default".

    mode: generate (text, image or keyframes to video, loops, stills), extend, remix,
    inpaint or outpaint. `frames` is a generated clip's length; `add_frames` the frames
    an extension adds. Inputs are file paths: image / last_image (first and last frame),
    source (the clip an edit changes), mask (PNG, white = regenerate). `adapters`,
    `control`, `path` and `reference` steer the model where it has the branches for them.
    """

    prompt: str
    mode: str = "generate"
    negative: str = ""
    seed: int | None = None
    frames: int | None = None
    size: tuple[int, int] | None = None
    fps: float | None = None
    steps: int | None = None
    guidance: float | None = None
    still: bool = False
    loop: bool = False
    image: Path | None = None
    last_image: Path | None = None
    source: Path | None = None
    add_frames: int | None = None
    backward: bool = False
    strength: float | None = None
    mask: Path | None = None
    outpaint: tuple[int, int, int, int] | None = None
    narration: Narration | None = None
    adapters: tuple[Adapter, ...] = ()
    control: Path | None = None
    control_scale: float = 1.0
    path: Path | None = None
    reference: Path | None = None
    fast: bool = False
    literal: bool = False
    hide_prompt: bool = False
    model: str | None = None
    device: str = "cpu"
    int8: bool = False
    savers: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """The pipeline mode the request needs: t2v, i2v, keyframes, loop or the edit."""
        if self.mode != "generate":
            return self.mode
        if self.loop:
            return "loop"
        if self.last_image is not None:
            return "keyframes"
        return "i2v" if self.image is not None else "t2v"

    @property
    def edit(self) -> str | None:
        """The C2PA edit action: the edit mode, None for a generated clip."""
        return None if self.mode == "generate" else self.mode


# ---------------------------------------------------------------------- small parsers


def max_frames() -> int:
    """The largest frame count a request may ask for (KINEMA_MAX_FRAMES, default 1024)."""
    try:
        return max(1, int(os.environ.get(MAX_FRAMES_ENV, "1024")))
    except ValueError:
        raise InputError(f"{MAX_FRAMES_ENV} must be a whole number") from None


def parse_size(text: str) -> tuple[int, int]:
    """'S' or 'WxH' in pixels → (width, height)."""
    match = _SIZE.match(str(text))
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise InputError(f"size takes S or WxH in pixels, got '{str(text)[:40]}'")
    width = int(match.group(1))
    return width, int(match.group(2)) if match.group(2) else width


def parse_sides(text: str) -> tuple[int, int, int, int]:
    """'L,T,R,B' pixels to add on each side → a tuple of four non-negative ints."""
    try:
        values = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise InputError(f"outpaint takes four non-negative pixel counts L,T,R,B, got '{text}'")
    return values  # type: ignore[return-value]


def parse_adapter(text: str) -> Adapter:
    """'NAME_OR_FILE[:SCALE]': the text after the last ':' is the scale only if it parses
    as a number in [-2, 2]; otherwise the whole text names the adapter."""
    name, _, tail = str(text).rpartition(":")
    if name:
        try:
            scale = float(tail)
        except ValueError:
            scale = None
        if scale is not None and -2 <= scale <= 2:
            return Adapter(name, scale)
    return Adapter(str(text), 1.0)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():  # a folder of PNG frames: its frames in order
        for part in sorted(path.glob("frame_*.png")):
            digest.update(part.read_bytes())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------- requests as data


def request_to_dict(request: ClipRequest) -> dict:
    """A JSON-ready form of REQUEST (paths as strings), as a job queue stores it."""
    data = asdict(request)
    for f in fields(ClipRequest):
        value = data[f.name]
        if isinstance(value, Path):
            data[f.name] = str(value)
    return data


def request_from_dict(data: dict) -> ClipRequest:
    """The ClipRequest that request_to_dict wrote; refuses unknown fields."""
    names = {f.name for f in fields(ClipRequest)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"unknown request field '{unknown[0]}'")
    values = dict(data)
    for name in ("image", "last_image", "source", "mask", "control", "path", "reference"):
        if values.get(name) is not None:
            values[name] = Path(values[name])
    for name in ("size", "outpaint", "savers"):
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    if values.get("narration") is not None:
        values["narration"] = Narration(**values["narration"])
    values["adapters"] = tuple(Adapter(**a) for a in values.get("adapters") or ())
    return ClipRequest(**values)
