"""The shapes world: world render (reference clips) and world check (the checker's verdict)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import (
    JsonOption,
    OutputOption,
    add_group,
    check_frames,
    json_default,
    report_written,
    resolve_seed,
)
from kinema.errors import InputError

app = typer.Typer()
world_app = add_group(
    app,
    "world",
    "The shapes world the built-in model learns from: render references, check clips.",
    "kinema world check clip.mp4 'a red circle moving right on a black background'",
)


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
    as_json: JsonOption = False,
) -> None:
    """Render a reference clip of a shapes-world prompt (not model output).

    Example: kinema world render 'a red circle moving right on a black background' -o reference.mp4 --seed 3
    """
    from kinema.io import Video, check_output_path
    from kinema.publish import WORLD_RENDERER, publish
    from kinema.world import parse, render_frames

    scene = parse(prompt)
    check_frames(frames)
    if not 16 <= size <= 1024:
        raise InputError(f"--size must be between 16 and 1024 for world render, got {size}")
    if not 0 < fps <= 240:
        raise InputError(f"--fps must be in (0, 240], got {fps}")
    if frames * size * size * 3 > 8 * 1024**3:
        raise InputError(
            f"{frames} frames of {size}x{size} would take over 8 GiB; ask for fewer frames or a smaller size"
        )
    check_output_path(output)
    seed = resolve_seed(seed)
    video = Video(render_frames(scene, seed=seed, frames=frames, size=size), fps)
    settings = {"prompt": prompt, "seed": seed, "frames": frames, "size": [size, size], "fps": fps}
    report_written(publish(video, output, settings, WORLD_RENDERER), as_json)


@world_app.command("check")
def world_check(
    clip: Annotated[Path, typer.Argument(help="A video file or a folder of PNG frames.")],
    prompt: Annotated[str, typer.Argument(help="The shapes-world prompt the clip should show.")],
) -> None:
    """Judge a clip against a shapes-world prompt; JSON on stdout; exit 0 pass, 1 fail.

    Example: kinema world check clip.mp4 'a red circle moving right on a black background'
    """
    from kinema.io import read_video
    from kinema.world import check, parse

    scene = parse(prompt)
    video = read_video(clip)
    report = check(video.frames, scene)
    report["prompt"] = prompt
    typer.echo(json.dumps(report, indent=2, default=json_default))
    raise typer.Exit(0 if report["pass"] else 1)
