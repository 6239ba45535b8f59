"""Commands that edit a clip: extend, remix and inpaint (outpaint). Each builds a
ClipRequest of its mode and hands it to the library like generate does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import OutputOption
from kinema.cli.shared import Shared, make_file, shared_options
from kinema.errors import InputError

app = typer.Typer()

ClipArgument = Annotated[Path, typer.Argument(help="The clip to edit (a video file or a frame folder).")]
ScenePrompt = Annotated[str, typer.Argument(help="The whole scene after the edit.")]


@app.command("extend")
@shared_options
def extend(
    clip: ClipArgument,
    prompt: Annotated[str, typer.Argument(help="What the new frames should show.")],
    output: OutputOption,
    shared: Shared,
    add_frames: Annotated[
        int | None, typer.Option("--add-frames", help="How many new frames to add.")
    ] = None,
    frames: Annotated[
        int | None, typer.Option("--frames", hidden=True, help="Deprecated: --add-frames (frames to add).")
    ] = None,
    backward: Annotated[bool, typer.Option(help="Add the frames before the clip instead of after.")] = False,
) -> None:
    """Continue a clip forward (or backward) in time by --add-frames new frames; its own
    frames are kept as they are.

    Example: kinema extend clip.mp4 'a red circle moving right on a black background' -o long.mp4 --add-frames 16
    """
    if frames is not None:
        if add_frames is not None:
            raise InputError("give --add-frames (frames to add) alone; --frames is its deprecated name")
        typer.echo("kinema: extend --frames is deprecated; it means --add-frames (frames to add)", err=True)
        add_frames = frames
    if add_frames is None:
        raise InputError("extend needs --add-frames N: how many new frames to add")
    request = shared.request(prompt, mode="extend", source=clip, add_frames=add_frames, backward=backward)
    make_file(request, output, shared, "extending")


@app.command("remix")
@shared_options
def remix(
    clip: ClipArgument,
    prompt: ScenePrompt,
    output: OutputOption,
    shared: Shared,
    strength: Annotated[float, typer.Option(help="0 keeps the clip, 1 ignores it.")] = 0.6,
) -> None:
    """Video-to-video: keep the clip's layout and motion, change what the prompt changes.

    Example: kinema remix clip.mp4 'a blue square moving right on a black background' -o remixed.mp4
    """
    make_file(
        shared.request(prompt, mode="remix", source=clip, strength=strength), output, shared, "remixing"
    )


@app.command("inpaint")
@shared_options
def inpaint(
    clip: ClipArgument,
    prompt: ScenePrompt,
    output: OutputOption,
    shared: Shared,
    mask: Annotated[
        Path | None, typer.Option(help="PNG of the clip's size: white = regenerate, black = keep.")
    ] = None,
    outpaint: Annotated[
        str | None, typer.Option(help="L,T,R,B: grow the canvas by these pixels and fill it.")
    ] = None,
) -> None:
    """Regenerate a masked region over time (pixels outside it kept exactly), or outpaint.

    Example: kinema inpaint clip.mp4 'a green circle staying still on a black background' --mask mask.png -o fixed.mp4
    """
    from kinema.render import parse_sides

    if (mask is None) == (outpaint is None):
        raise InputError("give either --mask MASK.png or --outpaint L,T,R,B")
    if mask is not None:
        request = shared.request(prompt, mode="inpaint", source=clip, mask=mask)
    else:
        request = shared.request(prompt, mode="outpaint", source=clip, outpaint=parse_sides(outpaint))
    make_file(request, output, shared, "inpainting")
