"""Commands that cut clips together: storyboard (makes its shots) and stitch (joins clips)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import JsonOption, OutputOption, SizeOption, report_written, with_progress
from kinema.cli.shared import Shared, shared_options
from kinema.errors import InputError

app = typer.Typer()


@app.command("stitch")
def stitch_command(
    clips: Annotated[list[Path], typer.Argument(help="Two or more clips, in order.")],
    output: OutputOption,
    transition: Annotated[
        str, typer.Option(help="'cut' or 'crossfade:N' (N frames of overlap at the first clip's frame rate).")
    ] = "cut",
    as_json: JsonOption = False,
) -> None:
    """Join clips into one (frame rate and size of the first clip; audio carried), recorded as a C2PA edit.

    Example: kinema stitch a.mp4 b.mp4 -o ab.mp4 --transition crossfade:4
    """
    from kinema.studio import stitch_files

    if len(clips) < 2:
        raise InputError(f"stitch needs at least two clips, got {len(clips)}")
    report_written(stitch_files(clips, output, transition), as_json)


@app.command("storyboard")
@shared_options
def storyboard(
    board: Annotated[
        Path,
        typer.Argument(
            help="YAML (or JSON) with shots: prompt, frames|seconds, seed, image, transition (below)."
        ),
    ],
    output: OutputOption,
    shared: Shared,
    fps: Annotated[float, typer.Option(help="Frames per second of the finished clip.")] = 8.0,
    size: SizeOption = None,
    candidates: Annotated[
        int | None, typer.Option(help="Takes per shot (seeds seed, seed+1, …); overrides the board.")
    ] = None,
    retakes: Annotated[
        int | None, typer.Option(help="Extra seeds per shot while no take passes QA; overrides the board.")
    ] = None,
    qa_threshold: Annotated[
        float | None, typer.Option(help="QA score (0..1) a kept take needs; overrides the board.")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the run's HTML report here (.html).")] = None,
    contact_sheet: Annotated[
        Path | None, typer.Option(help="Write the run's PNG contact sheet here (.png).")
    ] = None,
) -> None:
    """Make a board's shots (cached by content, so reruns redo only what changed) and cut them together.

    BOARD is YAML (or JSON): a list of shots, made in order and joined.

        shots:
          - prompt: a red circle moving right on a black background
            frames: 16               # or seconds: 2 (at --fps); default 16
            seed: 1                  # default: the shot's number (plus --seed - 1)
            image: start.png         # optional first frame, beside the board
          - prompt: a red circle moving left on a black background
            seconds: 2
            transition: crossfade:4  # cut (default) | crossfade:N | continue

    A shot's transition joins the PREVIOUS shot into this one: cut,
    crossfade:N (N frames of overlap) or continue (this shot starts on the
    previous one's last frame). Shot 1 has no previous shot: a transition
    on it is refused.

    Optional board fields: title, report (.html), contact_sheet (.png), and
    candidates, retakes, qa_threshold (takes per shot; a shot may set its own).
    The shared options (--steps, --guidance, --negative, --model, ...) and --size
    apply to every shot; --seed N makes shot K's default seed N + K - 1.

    Example: kinema storyboard board.yaml -o film.mp4 --report run.html
    """
    from kinema.render import parse_size
    from kinema.studio.produce import produce_board
    from kinema.studio.storyboard import load_board

    if not 0 < fps <= 240:
        raise InputError(f"--fps must be in (0, 240], got {fps}")
    shots = (
        load_board(board, fps, base_seed=shared.seed)
        .with_takes(candidates, retakes, qa_threshold)
        .writing(report, contact_sheet)
    )
    template = shared.request("", size=parse_size(size) if size else None)
    record = with_progress(
        lambda progress: produce_board(shots, template, output, fps, progress),
        "shots",
        shared.as_json,
        "shots",
    )
    report_written(record, shared.as_json)
