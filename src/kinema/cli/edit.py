"""Commands that edit a clip: extend, remix and inpaint (outpaint)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import (
    GuidanceOption,
    JsonOption,
    ModelOption,
    OutputOption,
    SeedOption,
    StepsOption,
    check_frames,
    model_default,
    report_written,
    resolve_seed,
    with_progress,
)
from kinema.errors import InputError

app = typer.Typer()


@app.command("extend")
def extend(
    clip: Annotated[Path, typer.Argument(help="The clip to continue.")],
    prompt: Annotated[str, typer.Argument(help="What the new frames should show.")],
    output: OutputOption,
    frames: Annotated[int, typer.Option(help="How many new frames.")],
    backward: Annotated[bool, typer.Option(help="Add the frames before the clip instead of after.")] = False,
    seed: SeedOption = None,
    steps: StepsOption = None,
    guidance: GuidanceOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Continue a clip forward (or backward) in time; its own frames are kept as they are.

    Example: kinema extend clip.mp4 'a red circle moving right on a black background' -o long.mp4 --frames 16
    """
    from kinema.io import check_output_path, read_video
    from kinema.pipelines.loading import load
    from kinema.provenance.policy import check_likeness, screen_prompt
    from kinema.publish import Origin, publish

    if not prompt.strip():
        raise InputError("empty prompt: say what the new frames should show")
    screen_prompt(prompt)
    check_frames(frames)
    check_output_path(output)
    video = read_video(clip)
    check_frames(video.num_frames + frames)
    check_likeness(video.frames, source=str(clip))
    pipe = load(model)
    seed = resolve_seed(seed)
    result = with_progress(
        lambda progress: pipe.extend(
            video,
            prompt,
            frames,
            backward=backward,
            seed=seed,
            steps=steps,
            guidance=guidance,
            progress=progress,
        ),
        "extending",
        as_json,
    )
    settings = {
        "prompt": prompt,
        "seed": seed,
        "source": str(clip),
        "added_frames": frames,
        "backward": backward,
        "frames": result.num_frames,
        "fps": result.fps,
    }
    record = publish(
        result, output, settings, Origin(pipe.name, pipe.model_hash), edit="extend", ingredients=[clip]
    )
    report_written(record, as_json)


def _edit_inputs(clip: Path, prompt: str, output: Path):
    """What every editing command checks first: prompt, output path, input clip, likeness."""
    from kinema.io import check_output_path, read_video
    from kinema.provenance.policy import check_likeness, screen_prompt

    if not prompt.strip():
        raise InputError("empty prompt: describe the whole scene after the edit")
    screen_prompt(prompt)
    check_output_path(output)
    video = read_video(clip)
    check_frames(video.num_frames)
    check_likeness(video.frames, source=str(clip))
    return video


def _publish_edit(result, output: Path, clip: Path, pipe, edit: str, settings: dict, as_json: bool) -> None:
    from kinema.publish import Origin, publish

    settings = {
        **settings,
        "source": str(clip),
        "frames": result.num_frames,
        "fps": result.fps,
        "size": [result.width, result.height],
    }
    record = publish(
        result, output, settings, Origin(pipe.name, pipe.model_hash), edit=edit, ingredients=[clip]
    )
    report_written(record, as_json)


@app.command("remix")
def remix(
    clip: Annotated[Path, typer.Argument(help="The clip to change.")],
    prompt: Annotated[str, typer.Argument(help="The whole scene after the change.")],
    output: OutputOption,
    strength: Annotated[float, typer.Option(help="0 keeps the clip, 1 ignores it.")] = 0.6,
    seed: SeedOption = None,
    steps: Annotated[
        int | None, typer.Option(help=f"Sampler steps for the full schedule ({model_default('steps')}).")
    ] = None,
    guidance: GuidanceOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Video-to-video: keep the clip's layout and motion, change what the prompt changes.

    Example: kinema remix clip.mp4 'a blue square moving right on a black background' -o b.mp4 --strength 0.6
    """
    from kinema.pipelines.loading import load

    if not 0 <= strength <= 1:
        raise InputError(f"--strength must be between 0 and 1, got {strength}")
    video = _edit_inputs(clip, prompt, output)
    pipe = load(model)
    seed = resolve_seed(seed)
    result = with_progress(
        lambda progress: pipe.remix(
            video, prompt, strength=strength, seed=seed, steps=steps, guidance=guidance, progress=progress
        ),
        "remixing",
        as_json,
    )
    _publish_edit(
        result, output, clip, pipe, "remix", {"prompt": prompt, "seed": seed, "strength": strength}, as_json
    )


@app.command("inpaint")
def inpaint(
    clip: Annotated[Path, typer.Argument(help="The clip to edit.")],
    prompt: Annotated[str, typer.Argument(help="The whole scene after the edit.")],
    output: OutputOption,
    mask: Annotated[
        Path | None, typer.Option(help="PNG of the clip's size: white = regenerate, black = keep.")
    ] = None,
    outpaint: Annotated[
        str | None, typer.Option(help="L,T,R,B: grow the canvas by these pixels and fill it.")
    ] = None,
    seed: SeedOption = None,
    steps: StepsOption = None,
    guidance: GuidanceOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Regenerate a masked region over time (pixels outside it kept exactly), or outpaint.

    Example: kinema inpaint clip.mp4 'a red circle moving right on a white background' --mask m.png -o w.mp4
    """
    from kinema.pipelines.loading import load

    if (mask is None) == (outpaint is None):
        raise InputError("give either --mask MASK.png or --outpaint L,T,R,B")
    sides = _parse_sides(outpaint) if outpaint else None
    video = _edit_inputs(clip, prompt, output)
    region = _read_mask(mask, video.width, video.height) if mask else None
    pipe = load(model)
    if sides:
        pipe.check_size(video.width + sides[0] + sides[2], video.height + sides[1] + sides[3])
    seed = resolve_seed(seed)
    kw = {"seed": seed, "steps": steps, "guidance": guidance}
    if sides:
        work = lambda progress: pipe.outpaint(video, prompt, *sides, progress=progress, **kw)  # noqa: E731
    else:
        work = lambda progress: pipe.inpaint(video, prompt, region, progress=progress, **kw)  # noqa: E731
    result = with_progress(work, "inpainting", as_json)
    settings = {
        "prompt": prompt,
        "seed": seed,
        **({"outpaint": list(sides)} if sides else {"mask": str(mask)}),
    }
    _publish_edit(result, output, clip, pipe, "outpaint" if sides else "inpaint", settings, as_json)


def _parse_sides(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise InputError(f"--outpaint takes four non-negative pixel counts L,T,R,B, got '{text}'")
    return values


def _read_mask(path: Path, width: int, height: int):
    """A binary mask PNG → bool (H, W), True = regenerate; refuses anything else."""
    from kinema.io import read_image
    from kinema.pipelines.conditioning import mask_region

    return mask_region(read_image(path), width, height, name=f"mask {path}")
