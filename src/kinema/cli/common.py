"""What every command group shares: option types, small input checks, the progress
display and the closing line of a command that writes.

Nothing here imports torch or a model: `kinema --help` and the refusals of bad input
stay fast, and each command imports what it needs when it runs.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kinema.errors import InputError

MAX_FRAMES_ENV = "KINEMA_MAX_FRAMES"

# The built-in model's defaults, as the help texts state them. Read from
# weights/builtin/model.json at import they would cost every start a file read;
# tests/test_cli.py compares them with that file so they cannot drift.
BUILTIN_DEFAULTS = {"frames": 16, "size": 64, "fps": 8, "steps": 24, "guidance": 4}


def model_default(name: str) -> str:
    """'default: the model's, N for the built-in model' for an option a model decides."""
    return f"default: the model's, {BUILTIN_DEFAULTS[name]:g} for the built-in model"


ModelOption = Annotated[str | None, typer.Option(help="Model name or folder (default: the built-in model).")]
FramesOption = Annotated[int | None, typer.Option(help=f"Number of frames ({model_default('frames')}).")]
SizeOption = Annotated[str | None, typer.Option(help=f"S or WxH in pixels ({model_default('size')}).")]
FpsOption = Annotated[float | None, typer.Option(help=f"Frames per second written ({model_default('fps')}).")]
StepsOption = Annotated[int | None, typer.Option(help=f"Sampler steps ({model_default('steps')}).")]
GuidanceOption = Annotated[
    float | None,
    typer.Option(help=f"Classifier-free guidance scale, 1 = off ({model_default('guidance')})."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object instead of the summary line.")
]
SeedOption = Annotated[int | None, typer.Option(help="Noise seed (random when not given; always printed).")]
ExpiresOption = Annotated[str, typer.Option(help="Last day the consent holds, YYYY-MM-DD.")]
VoiceOption = Annotated[
    str, typer.Option(help="Voice: a built-in name (see `kinema voice list`) or an enrolled one.")
]
VoiceScopeOption = Annotated[
    str | None,
    typer.Option("--scope", help="The use, for an enrolled voice: must be within its consent's scope."),
]
RateOption = Annotated[float | None, typer.Option("--rate", help="Speaking rate in words a minute (80–400).")]
PitchOption = Annotated[float, typer.Option("--pitch", help="Pitch offset in semitones (±7.5).")]
DiscloseOption = Annotated[
    bool, typer.Option("--disclose-aloud", help="End the narration with a spoken 'this voice is synthetic'.")
]
CpuOffloadOption = Annotated[
    bool,
    typer.Option("--cpu-offload", help="Diffusers models: keep each component on the CPU until it runs."),
]
VaeTilingOption = Annotated[
    bool, typer.Option("--vae-tiling", help="Diffusers models: decode latents tile by tile.")
]
VaeSlicingOption = Annotated[
    bool, typer.Option("--vae-slicing", help="Diffusers models: decode one clip of a batch at a time.")
]
AttentionSlicingOption = Annotated[
    bool, typer.Option("--attention-slicing", help="Diffusers models: compute attention in slices.")
]
Int8Option = Annotated[
    bool, typer.Option("--int8", help="kinema models: run the DiT's Linear layers in dynamic int8 (CPU).")
]
OutputOption = Annotated[
    Path,
    typer.Option(
        "-o",
        "--output",
        help="Output: .mp4, .webm, .gif, or a folder (ending in / or without extension) of PNG frames.",
    ),
]


def add_group(parent: typer.Typer, name: str, help_text: str, example: str, bare_shows_help: bool = True):
    """A command group `kinema … NAME` under PARENT, with its help and an example line;
    run bare it shows its help (unless bare_shows_help is False: `kinema serve` serves)."""
    group = typer.Typer(help=help_text, epilog=f"Example: {example}", no_args_is_help=bare_shows_help)
    parent.add_typer(group, name=name)
    return group


def max_frames() -> int:
    """The largest frame count a command accepts (KINEMA_MAX_FRAMES, default 1024)."""
    try:
        return max(1, int(os.environ.get(MAX_FRAMES_ENV, "1024")))
    except ValueError:
        raise InputError(f"{MAX_FRAMES_ENV} must be a whole number") from None


def check_frames(frames: int) -> None:
    """Refuse (InputError) a frame count outside 1..max_frames()."""
    limit = max_frames()
    if not 1 <= frames <= limit:
        raise InputError(f"--frames must be between 1 and {limit}, got {frames}")


def resolve_seed(seed: int | None) -> int:
    """The seed given (refused outside 0..2**63 - 1), or a random one when None."""
    if seed is None:
        return secrets.randbelow(2**31)
    if not 0 <= seed < 2**63:
        raise InputError(f"--seed must be between 0 and 2**63 - 1, got {seed}")
    return seed


def parse_size(text: str) -> tuple[int, int]:
    """'S' or 'WxH' → (width, height); refuses anything else."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"--size takes S or WxH in pixels, got '{text}'") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise InputError(f"--size takes S or WxH in pixels, got '{text}'")
    return values[0], values[1]


PLAIN_PROGRESS_SECONDS = 5.0
Result = TypeVar("Result")
ProgressCallback = Callable[[int, int | None], None]


def with_progress(
    work: Callable[[ProgressCallback | None], Result],
    label: str,
    quiet: bool,
    unit: str = "steps",
    *,
    interval: float = PLAIN_PROGRESS_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """Run work(progress) and return what it returns; work calls progress(done, total),
    total None while unknown. On a terminal a rich bar shows it on stderr; elsewhere (a
    pipe, a log) one plain line every INTERVAL seconds, e.g. "generating: 12/24 steps,
    3.1 s", so long work is never silent; nothing when quiet (--json)."""
    if quiet:
        return work(None)
    if not sys.stderr.isatty():
        return work(_plain_progress(label, unit, interval, clock))
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class CountColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{_count(int(task.completed), task.total)} {unit}")

    columns = [TextColumn(label), BarColumn(), CountColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        return work(lambda done, total: bar.update(task, completed=done, total=total))


def _plain_progress(label: str, unit: str, interval: float, clock: Callable[[], float]) -> ProgressCallback:
    start = last = clock()

    def show(done: int, total: int | None) -> None:
        nonlocal last
        now = clock()
        if now - last >= interval:
            last = now
            typer.echo(f"{label}: {_count(done, total)} {unit}, {now - start:.1f} s", err=True)

    return show


def _count(done: int, total: float | None) -> str:
    """'done/total', or 'done' alone while the total is unknown (never '/None')."""
    return f"{done}/{int(total)}" if total is not None else f"{done}"


def json_default(value: Any) -> Any:
    """json.dumps' default for numpy scalars (anything with .item())."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def report_written(record: dict, as_json: bool) -> None:
    """The last line of every command that writes: "wrote OUT (id ID, seed N)", or the
    record as one JSON object with --json (and a note on stderr when keys were made)."""
    if "keys_created" in record:
        typer.echo(f"kinema: created a local signing certificate chain in {record['keys_created']}", err=True)
    if as_json:
        typer.echo(json.dumps(record, default=json_default))
    else:
        typer.echo(f"wrote {record['path']} (id {record['id']}, seed {record['seed']})")
