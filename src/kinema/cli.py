"""The kinema command line: one Typer app; every command parses and calls the library.

Bad input ends with one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

try:  # Typer ≥ 0.25 carries its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer on plain click
    import click.exceptions as click_exceptions

import kinema
from kinema.errors import InputError

app = typer.Typer(
    name="kinema",
    help="Text-to-video diffusion with temporal QA, watermarking and provenance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
world_app = typer.Typer(
    help="The shapes world the built-in model learns from: render references, check clips.",
    no_args_is_help=True,
)
app.add_typer(world_app, name="world")

MAX_FRAMES_ENV = "KINEMA_MAX_FRAMES"


def max_frames() -> int:
    """The largest frame count a command accepts (KINEMA_MAX_FRAMES, default 1024)."""
    try:
        return max(1, int(os.environ.get(MAX_FRAMES_ENV, "1024")))
    except ValueError:
        raise InputError(f"{MAX_FRAMES_ENV} must be a whole number") from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kinema {kinema.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Text-to-video diffusion with temporal QA, watermarking and provenance."""


OutputOption = Annotated[
    Path,
    typer.Option(
        "-o",
        "--output",
        help="Output: .mp4, .webm, .gif, or a folder (ending in / or without extension) of PNG frames.",
    ),
]


@world_app.command("render")
def world_render(
    prompt: Annotated[
        str,
        typer.Argument(help="A shapes-world prompt, e.g. 'a red circle moving right on a black background'."),
    ],
    output: OutputOption,
    seed: Annotated[
        int | None, typer.Option(help="Layout seed (random when not given; always printed).")
    ] = None,
    frames: Annotated[int, typer.Option(help="Number of frames (motion ping-pongs after frame 15).")] = 16,
    size: Annotated[int, typer.Option(help="Canvas side in pixels, 16 to 1024.")] = 64,
    fps: Annotated[float, typer.Option(help="Frames per second written.")] = 8.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the summary line.")
    ] = False,
) -> None:
    """Render a reference clip of a shapes-world prompt (not model output)."""
    from kinema.io import Video, check_output_path
    from kinema.publish import write_sidecar
    from kinema.world import parse, render_frames

    scene = parse(prompt)
    _check_frames(frames)
    if not 16 <= size <= 1024:
        raise InputError(f"--size must be between 16 and 1024 for world render, got {size}")
    if not 0 < fps <= 240:
        raise InputError(f"--fps must be in (0, 240], got {fps}")
    if frames * size * size * 3 > 8 * 1024**3:
        raise InputError(
            f"{frames} frames of {size}x{size} would take over 8 GiB; ask for fewer frames or a smaller size"
        )
    check_output_path(output)
    seed = _seed(seed)
    video = Video(render_frames(scene, seed=seed, frames=frames, size=size), fps)
    video.save(output)
    settings = {
        "prompt": prompt,
        "seed": seed,
        "frames": frames,
        "size": [size, size],
        "fps": fps,
        "source": "kinema world renderer (WORLD.md v1), not model output",
    }
    record = write_sidecar(output, settings)
    _report(output, record, as_json)


@world_app.command("check")
def world_check(
    clip: Annotated[Path, typer.Argument(help="A video file or a folder of PNG frames.")],
    prompt: Annotated[str, typer.Argument(help="The shapes-world prompt the clip should show.")],
) -> None:
    """Judge a clip against a shapes-world prompt; JSON on stdout; exit 0 pass, 1 fail."""
    from kinema.io import read_video
    from kinema.world import check, parse

    scene = parse(prompt)
    video = read_video(clip)
    report = check(video.frames, scene)
    report["prompt"] = prompt
    typer.echo(json.dumps(report, indent=2, default=_json_default))
    raise typer.Exit(0 if report["pass"] else 1)


@app.command("train")
def train(
    preset: Annotated[str, typer.Option(help="Training recipe: vae, dit, … (tiny ones for tests).")],
    out: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (default runs/PRESET); resumes if it exists.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Stop after this many more steps.")] = None,
    minutes: Annotated[float | None, typer.Option(help="Stop after this many minutes.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a stage of the built-in model from scratch, or resume it where it stopped."""
    from kinema.train.presets import get_preset
    from kinema.train.trainer import Trainer

    recipe = get_preset(preset)
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    if minutes is not None and minutes <= 0:
        raise InputError(f"--minutes must be positive, got {minutes}")
    folder = out or Path("runs") / recipe.name
    if not folder.parent.is_dir():
        raise InputError(f"output folder '{folder.parent}' does not exist")
    result = Trainer(recipe, folder).run(max_steps=steps, max_minutes=minutes, progress=progress)
    typer.echo(json.dumps(result))


# ---------------------------------------------------------------- shared helpers


def _check_frames(frames: int) -> None:
    limit = max_frames()
    if not 1 <= frames <= limit:
        raise InputError(f"--frames must be between 1 and {limit}, got {frames}")


def _seed(seed: int | None) -> int:
    if seed is None:
        return secrets.randbelow(2**31)
    if not 0 <= seed < 2**63:
        raise InputError(f"--seed must be between 0 and 2**63 - 1, got {seed}")
    return seed


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _report(output: Path, record: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"path": str(output), **record}, default=_json_default))
    else:
        typer.echo(f"wrote {output} (id {record['id']}, seed {record['seed']})")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: usage and input errors become one stderr line and exit status 2."""
    try:
        code = app(args=argv, prog_name="kinema", standalone_mode=False)
    except typer.Exit as e:
        code = e.exit_code
    except typer.Abort:
        print("kinema: aborted", file=sys.stderr)
        code = 130
    except click_exceptions.NoArgsIsHelpError as e:
        print(e.format_message())
        code = 0
    except click_exceptions.UsageError as e:
        print(f"kinema: error: {_one_line(e.format_message())}", file=sys.stderr)
        code = 2
    except InputError as e:
        print(f"kinema: error: {_one_line(str(e))}", file=sys.stderr)
        code = 2
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(message: str) -> str:
    return " ".join(message.split())


if __name__ == "__main__":
    main()
