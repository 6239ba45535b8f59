"""Commands that make clips from prompts: generate and batch. They build a ClipRequest
and hand it to the library (kinema.studio.produce, kinema.jobs.batch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import (
    DiscloseOption,
    FpsOption,
    FramesOption,
    SizeOption,
    VoiceOption,
    VoiceScopeOption,
    json_default,
    with_progress,
)
from kinema.cli.shared import Shared, make_file, shared_options
from kinema.errors import InputError

app = typer.Typer()


@app.command("generate")
@shared_options
def generate(
    prompt: Annotated[str, typer.Argument(help="What the clip should show.")],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Output: .mp4, .webm, .gif, a folder (ending in / or without extension) of PNG frames, "
            "or a still image: .png, .jpg, .webp (one frame).",
        ),
    ],
    shared: Shared,
    frames: FramesOption = None,
    size: SizeOption = None,
    fps: FpsOption = None,
    loop: Annotated[bool, typer.Option("--loop", help="Make the last frame flow into the first.")] = False,
    narration: Annotated[
        str | None, typer.Option(help="Narrate the clip with this text (mp4/webm only).")
    ] = None,
    voice: VoiceOption = "amber",
    scope: VoiceScopeOption = None,
    disclose_aloud: DiscloseOption = False,
    image: Annotated[Path | None, typer.Option(help="First frame: the clip starts on this image.")] = None,
    last_image: Annotated[Path | None, typer.Option(help="Last frame: the clip ends on this image.")] = None,
    candidates: Annotated[
        int, typer.Option(help="Make N takes (seeds seed, seed+1, …) and keep the best by QA.")
    ] = 1,
    retakes: Annotated[int, typer.Option(help="While no take passes QA, try up to R more seeds.")] = 0,
    qa_threshold: Annotated[float, typer.Option(help="QA score (0..1) a kept take needs.")] = 0.7,
) -> None:
    """Generate a clip (or, into .png/.jpg/.webp, a still) from a prompt with the built-in model (or --model).

    Example: kinema generate 'a red circle moving right on a black background' -o clip.mp4 --seed 3
    """
    from kinema.render import Narration, parse_size
    from kinema.studio.produce import Takes

    request = shared.request(
        prompt,
        frames=frames,
        size=parse_size(size) if size else None,
        fps=fps,
        loop=loop,
        image=image,
        last_image=last_image,
        narration=None if narration is None else Narration(narration, voice, scope, disclose_aloud),
    )
    make_file(request, output, shared, "generating", Takes(candidates, retakes, qa_threshold))


@app.command("batch")
@shared_options
def batch(
    prompts: Annotated[
        Path, typer.Argument(help="A text file: one prompt a line; blank lines and # comments skipped.")
    ],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="The folder for the clips and summary.csv (made if missing)."),
    ],
    shared: Shared,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray", help="Address of a running Ray cluster (default: start a local one)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Workers, one model each (default: every CPU, or the cluster's); 1 without --ray runs "
            "in this process without Ray."
        ),
    ] = None,
    frames: FramesOption = None,
    size: SizeOption = None,
    fps: FpsOption = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Clip format: mp4, webm, gif, or png (a folder of frames).")
    ] = "mp4",
) -> None:
    """Generate a clip for every prompt of a file, on a Ray cluster; resumable; DIR/summary.csv holds QA.

    Every line is rendered as `kinema generate` renders it with the same options; --seed is
    the base seed (default 0): line N's clip uses seed + N - 1.

    Example: kinema batch prompts.txt -o clips/ --workers 2
    """
    from kinema.jobs.batch import SUMMARY, RayExecutor, Sequential, plan, run_all, write_summary
    from kinema.render import parse_size

    seed = 0 if shared.seed is None else shared.seed
    if not 0 <= seed < 2**62:
        raise InputError(f"--seed must be between 0 and 2**62 - 1, got {seed}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if not prompts.is_file():
        raise InputError(f"prompts file '{prompts}' does not exist")
    if output.exists() and not output.is_dir():
        raise InputError(f"-o '{output}' is a file; batch writes into a folder")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"output folder's parent '{parent}' does not exist")
    jobs = plan(prompts, output, seed=seed, fmt=fmt)
    template = shared.request("", frames=frames, size=parse_size(size) if size else None, fps=fps)
    if workers == 1 and ray_address is None:
        executor = Sequential(template)  # one worker gains nothing from Ray but its start-up time
    else:
        executor = RayExecutor(template, address=ray_address, workers=workers)
    output.mkdir(exist_ok=True)

    def report(row: dict) -> None:
        if row["status"] == "skipped":
            typer.echo(f"skipped {row['path']} (already finished)", err=True)
        elif not shared.as_json:
            typer.echo(f"wrote {row['path']} (id {row['id']}, seed {row['seed']})")

    rows = with_progress(
        lambda progress: run_all(jobs, executor, template, progress=progress, on_row=report),
        "batch",
        shared.as_json,
        "clips",
    )
    summary = write_summary(rows, output / SUMMARY)
    generated = sum(row["status"] == "generated" for row in rows)
    if shared.as_json:
        typer.echo(json.dumps({"path": str(summary), "clips": rows}, default=json_default))
    else:
        typer.echo(
            f"wrote {summary} ({len(rows)} prompts: {generated} generated, {len(rows) - generated} already finished)"
        )
