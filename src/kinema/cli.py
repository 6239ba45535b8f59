"""The kinema command line: one Typer app; every command parses and calls the library.

Bad input ends with one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
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
keys_app = typer.Typer(help="The local certificate chain that signs C2PA manifests.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
consent_app = typer.Typer(help="Consent records for likeness references.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")
serve_app = typer.Typer(help="The web studio: API, pages and job workers on this machine.")
app.add_typer(serve_app, name="serve")
serve_token_app = typer.Typer(help="API tokens for the web studio.", no_args_is_help=True)
serve_app.add_typer(serve_token_app, name="token")
voice_app = typer.Typer(
    help="Voices for narration: built-in ones and consented profiles.", no_args_is_help=True
)
app.add_typer(voice_app, name="voice")
review_app = typer.Typer(help="The human review gate: nothing is published unreviewed.", no_args_is_help=True)
app.add_typer(review_app, name="review")

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


ModelOption = Annotated[str | None, typer.Option(help="Model name or folder (default: the built-in model).")]
FramesOption = Annotated[int | None, typer.Option(help="Number of frames (model default: 16).")]
SizeOption = Annotated[str | None, typer.Option(help="S or WxH in pixels (model default: 64).")]
FpsOption = Annotated[float | None, typer.Option(help="Frames per second written (model default: 8).")]
StepsOption = Annotated[int | None, typer.Option(help="Sampler steps.")]
GuidanceOption = Annotated[float | None, typer.Option(help="Classifier-free guidance scale (1 = off).")]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object instead of the summary line.")
]
SeedOption = Annotated[int | None, typer.Option(help="Noise seed (random when not given; always printed).")]
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


@app.command("generate")
def generate(
    prompt: Annotated[str, typer.Argument(help="What the clip should show.")],
    output: OutputOption,
    seed: SeedOption = None,
    frames: FramesOption = None,
    size: SizeOption = None,
    fps: FpsOption = None,
    steps: StepsOption = None,
    guidance: GuidanceOption = None,
    negative: Annotated[str, typer.Option(help="Negative prompt: what to steer away from.")] = "",
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
    model: ModelOption = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    cpu_offload: CpuOffloadOption = False,
    vae_tiling: VaeTilingOption = False,
    vae_slicing: VaeSlicingOption = False,
    attention_slicing: AttentionSlicingOption = False,
    int8: Int8Option = False,
    hide_prompt: Annotated[
        bool,
        typer.Option("--hide-prompt", help="Record only the prompt's hash, in the sidecar and manifest."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate a clip from a prompt with the built-in model (or --model)."""
    from kinema.io import check_output_path
    from kinema.pipelines.loading import load
    from kinema.provenance.policy import screen_prompt
    from kinema.publish import Origin, clip_settings, publish

    if not prompt.strip():
        raise InputError("empty prompt: say what the clip should show")
    screen_prompt(prompt)
    if negative:
        screen_prompt(negative)
    _check_clip_options(frames, steps, guidance, fps)
    dims = _parse_size(size) if size else None
    check_output_path(output)
    if narration is not None:
        from kinema.voice.narrate import check_narration_output
        from kinema.voice.tts import check_text

        check_text(narration)
        if check_narration_output(output) == "wav":  # a .gif or frame folder has raised already
            raise InputError("generate writes a clip: narrate into .mp4 or .webm")
    from kinema.studio.bestof import check_counts, generate_best

    check_counts(candidates, retakes, qa_threshold)
    savers = _savers(cpu_offload, vae_tiling, vae_slicing, attention_slicing)
    pipe = load(model, device=device, savers=savers, int8=int8)
    if dims:
        pipe.check_size(*dims)
    width, height = dims or (pipe.defaults["size"], pipe.defaults["size"])
    if loop:
        period = pipe.defaults.get("loop_period", 30)
        frames = period if frames is None else frames
        if frames % period:
            nearest = max(period, round(frames / period) * period)
            raise InputError(
                f"--loop makes whole periods of {period} frames; --frames {frames} is not (nearest: {nearest})"
            )
    first = _condition_image(image, "--image", width, height)
    last = _condition_image(last_image, "--last-image", width, height)
    seed = _seed(seed)
    clip = dict(
        frames=frames,
        size=(width, height),
        steps=steps,
        guidance=guidance,
        negative=negative,
        fps=fps,
        keyframes={0: first} if first is not None else None,
        last_image=last,
        loop=loop,
    )
    takes = {}
    if candidates > 1 or retakes > 0:
        choice = _with_progress(
            lambda progress: generate_best(
                pipe,
                prompt,
                seed=seed,
                candidates=candidates,
                retakes=retakes,
                threshold=qa_threshold,
                progress=progress,
                **clip,
            ),
            "generating",
            as_json,
        )
        video, seed = choice.video, choice.best.seed  # the kept take's seed is the one recorded
        takes = {"takes": choice.record()}
    else:
        video = _with_progress(
            lambda progress: pipe(prompt, seed=seed, progress=progress, **clip), "generating", as_json
        )
    narrated = {}
    if narration is not None:
        from kinema.voice.narrate import narrate_video

        video, narrated = narrate_video(
            video, narration, voice=voice, scope=scope, disclose_aloud=disclose_aloud
        )
    settings = {
        **clip_settings(
            pipe,
            video,
            prompt=prompt,
            seed=seed,
            negative=negative,
            steps=steps,
            guidance=guidance,
            loop=loop,
            int8=int8,
            memory_savers=savers,
        ),
        **narrated,
        **takes,
    }
    sources = [p for p in (image, last_image) if p is not None]
    record = publish(
        video,
        output,
        settings,
        Origin(pipe.name, pipe.model_hash),
        hide_prompt=hide_prompt,
        ingredients=sources,
    )
    _report(record, as_json)


@app.command("batch")
def batch(
    prompts: Annotated[
        Path, typer.Argument(help="A text file: one prompt a line; blank lines and # comments skipped.")
    ],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="The folder for the clips and summary.csv (made if missing)."),
    ],
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
    seed: Annotated[int, typer.Option(help="Base seed: line N's clip uses seed + N - 1.")] = 0,
    frames: FramesOption = None,
    size: SizeOption = None,
    fps: FpsOption = None,
    steps: StepsOption = None,
    guidance: GuidanceOption = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Clip format: mp4, webm, gif, or png (a folder of frames).")
    ] = "mp4",
    model: ModelOption = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    cpu_offload: CpuOffloadOption = False,
    vae_tiling: VaeTilingOption = False,
    vae_slicing: VaeSlicingOption = False,
    attention_slicing: AttentionSlicingOption = False,
    int8: Int8Option = False,
    as_json: JsonOption = False,
) -> None:
    """Generate a clip for every prompt of a file, on a Ray cluster; resumable; DIR/summary.csv holds QA."""
    from kinema.jobs.batch import SUMMARY, RayExecutor, Sequential, Settings, plan, run_all, write_summary

    _check_clip_options(frames, steps, guidance, fps)
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
    settings = Settings(
        model=model,
        device=device,
        frames=frames,
        size=_parse_size(size) if size else None,
        steps=steps,
        guidance=guidance,
        fps=fps,
        savers=tuple(_savers(cpu_offload, vae_tiling, vae_slicing, attention_slicing)),
        int8=int8,
    )
    if workers == 1 and ray_address is None:
        executor = Sequential(settings)  # one worker gains nothing from Ray but its start-up time
    else:
        executor = RayExecutor(settings, address=ray_address, workers=workers)
    output.mkdir(exist_ok=True)

    def report(row: dict) -> None:
        if row["status"] == "skipped":
            typer.echo(f"skipped {row['path']} (already finished)", err=True)
        elif not as_json:
            typer.echo(f"wrote {row['path']} (id {row['id']}, seed {row['seed']})")

    rows = _with_progress(
        lambda progress: run_all(jobs, executor, progress=progress, on_row=report), "batch", as_json, "clips"
    )
    summary = write_summary(rows, output / SUMMARY)
    generated = sum(row["status"] == "generated" for row in rows)
    if as_json:
        typer.echo(json.dumps({"path": str(summary), "clips": rows}, default=_json_default))
    else:
        typer.echo(
            f"wrote {summary} ({len(rows)} prompts: {generated} generated, {len(rows) - generated} already finished)"
        )


@app.command("extend")
def extend(
    clip: Annotated[Path, typer.Argument(help="The clip to continue.")],
    prompt: Annotated[str, typer.Argument(help="What the new frames should show.")],
    output: OutputOption,
    frames: Annotated[int, typer.Option(help="How many new frames.")],
    backward: Annotated[bool, typer.Option(help="Add the frames before the clip instead of after.")] = False,
    seed: SeedOption = None,
    steps: StepsOption = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale.")] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Continue a clip forward (or backward) in time; its own frames are kept as they are."""
    from kinema.io import check_output_path, read_video
    from kinema.pipelines.loading import load
    from kinema.provenance.policy import check_likeness, screen_prompt
    from kinema.publish import Origin, publish

    if not prompt.strip():
        raise InputError("empty prompt: say what the new frames should show")
    screen_prompt(prompt)
    _check_frames(frames)
    check_output_path(output)
    video = read_video(clip)
    _check_frames(video.num_frames + frames)
    check_likeness(video.frames, source=str(clip))
    pipe = load(model)
    seed = _seed(seed)
    result = _with_progress(
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
    _report(record, as_json)


def _edit_inputs(clip: Path, prompt: str, output: Path):
    """What every editing command checks first: prompt, output path, input clip, likeness."""
    from kinema.io import check_output_path, read_video
    from kinema.provenance.policy import check_likeness, screen_prompt

    if not prompt.strip():
        raise InputError("empty prompt: describe the whole scene after the edit")
    screen_prompt(prompt)
    check_output_path(output)
    video = read_video(clip)
    _check_frames(video.num_frames)
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
    _report(record, as_json)


@app.command("remix")
def remix(
    clip: Annotated[Path, typer.Argument(help="The clip to change.")],
    prompt: Annotated[str, typer.Argument(help="The whole scene after the change.")],
    output: OutputOption,
    strength: Annotated[float, typer.Option(help="0 keeps the clip, 1 ignores it.")] = 0.6,
    seed: SeedOption = None,
    steps: Annotated[int | None, typer.Option(help="Sampler steps (for the full schedule).")] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale.")] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Video-to-video: keep the clip's layout and motion, change what the prompt changes."""
    from kinema.pipelines.loading import load

    if not 0 <= strength <= 1:
        raise InputError(f"--strength must be between 0 and 1, got {strength}")
    video = _edit_inputs(clip, prompt, output)
    pipe = load(model)
    seed = _seed(seed)
    result = _with_progress(
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
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale.")] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Regenerate a masked region over time (pixels outside it kept exactly), or outpaint."""
    from kinema.pipelines.loading import load

    if (mask is None) == (outpaint is None):
        raise InputError("give either --mask MASK.png or --outpaint L,T,R,B")
    sides = _parse_sides(outpaint) if outpaint else None
    video = _edit_inputs(clip, prompt, output)
    region = _read_mask(mask, video.width, video.height) if mask else None
    pipe = load(model)
    if sides:
        pipe.check_size(video.width + sides[0] + sides[2], video.height + sides[1] + sides[3])
    seed = _seed(seed)
    kw = {"seed": seed, "steps": steps, "guidance": guidance}
    if sides:
        work = lambda progress: pipe.outpaint(video, prompt, *sides, progress=progress, **kw)  # noqa: E731
    else:
        work = lambda progress: pipe.inpaint(video, prompt, region, progress=progress, **kw)  # noqa: E731
    result = _with_progress(work, "inpainting", as_json)
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


@app.command("qa")
def qa_command(
    clip: Annotated[Path, typer.Argument(help="A video file or a folder of PNG frames, from any generator.")],
    prompt: Annotated[
        str | None,
        typer.Option(
            help="What the clip should show; a shapes-world prompt adds the world checker's verdict."
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also draw a PNG report (contact sheet and metric curves) here.")
    ] = None,
) -> None:
    """Temporal QA of a clip (flicker, warping, identity drift, smoothness, cuts, order): JSON on stdout."""
    from kinema.io import read_video
    from kinema.metrics import draw_report, qa

    if report is not None:
        if report.suffix.lower() != ".png":
            raise InputError(f"--report must name a .png file, got '{report}'")
        parent = report.parent if str(report.parent) else Path(".")
        if not parent.is_dir():
            raise InputError(f"report folder '{parent}' does not exist")
        if report.is_dir():
            raise InputError(f"'{report}' is a directory; give a file name ending in .png")
    video = read_video(clip)
    result = qa(video, prompt)
    result["clip"] = str(clip)
    if report is not None:
        result["report"] = str(draw_report(video, result, report))
    typer.echo(json.dumps(result, indent=2, default=_json_default))


@app.command("stitch")
def stitch_command(
    clips: Annotated[list[Path], typer.Argument(help="Two or more clips, in order.")],
    output: OutputOption,
    transition: Annotated[
        str, typer.Option(help="'cut' or 'crossfade:N' (N frames of overlap at the first clip's frame rate).")
    ] = "cut",
    as_json: JsonOption = False,
) -> None:
    """Join clips into one (frame rate and size of the first clip; audio carried), recorded as a C2PA edit."""
    from kinema.studio import stitch_files

    if len(clips) < 2:
        raise InputError(f"stitch needs at least two clips, got {len(clips)}")
    _report(stitch_files(clips, output, transition), as_json)


@app.command("storyboard")
def storyboard(
    board: Annotated[
        Path,
        typer.Argument(help="YAML (or JSON) with shots: prompt, frames|seconds, seed, image, transition."),
    ],
    output: OutputOption,
    steps: Annotated[int | None, typer.Option(help="Sampler steps for every shot.")] = None,
    fps: Annotated[float, typer.Option(help="Frames per second of the finished clip.")] = 8.0,
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
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a board's shots (cached by content, so reruns redo only what changed) and cut them together."""
    from kinema.io import check_output_path
    from kinema.pipelines.loading import load
    from kinema.provenance.policy import check_likeness, screen_prompt
    from kinema.publish import Origin, publish
    from kinema.studio.storyboard import load_board, render_board

    if not 0 < fps <= 240:
        raise InputError(f"--fps must be in (0, 240], got {fps}")
    shots = (
        load_board(board, fps).with_takes(candidates, retakes, qa_threshold).writing(report, contact_sheet)
    )
    for shot in shots:
        screen_prompt(shot.prompt)
        _check_frames(shot.frames)
    check_output_path(output)
    pipe = load(model)
    video, log = _with_progress(
        lambda progress: render_board(
            pipe,
            shots,
            board.parent,
            fps,
            steps,
            progress,
            check_image=lambda pixels, name: check_likeness(pixels, source=name),
        ),
        "shots",
        as_json,
    )
    settings = {
        "storyboard": str(board),
        "seed": shots[0].seed,
        "shots": log,
        "frames": video.num_frames,
        "fps": video.fps,
        "steps": steps,
    }
    images = [shot.image for shot in shots if shot.image is not None]
    record = publish(video, output, settings, Origin(pipe.name, pipe.model_hash), ingredients=images)
    _report(record, as_json)


@app.command("narrate")
def narrate(
    text: Annotated[str, typer.Argument(help="What to say.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.wav, or OUT.mp4/.webm with --video.")],
    voice: VoiceOption = "amber",
    rate: RateOption = None,
    pitch: PitchOption = 0.0,
    video: Annotated[
        Path | None, typer.Option("--video", help="Narrate over this clip (fitted to its length).")
    ] = None,
    scope: VoiceScopeOption = None,
    disclose_aloud: DiscloseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Speak TEXT offline (eSpeak NG) into a signed, watermarked .wav, or over a clip."""
    from kinema.io import check_output_path, read_video
    from kinema.publish import Origin, publish
    from kinema.voice.narrate import SYNTHESIZER, check_narration_output, narrate_video, write_narration
    from kinema.voice.tts import check_text

    check_text(text)
    kind = check_narration_output(output)
    if kind != "wav":
        if video is None:
            raise InputError(f"narrating into .{kind} needs --video IN (or write OUT.wav)")
        check_output_path(output)
    clip = read_video(video) if video is not None else None  # refuses a file with no video stream
    common = dict(
        voice=voice, scope=scope, rate_wpm=rate, pitch_semitones=pitch, disclose_aloud=disclose_aloud
    )
    if kind == "wav":
        seconds = clip.seconds if clip is not None else None
        record = write_narration(
            text, output, seconds=seconds, ingredients=(video,) if video else (), **common
        )
    else:
        narrated, settings = narrate_video(clip, text, **common)
        settings = {"seed": 0, "frames": narrated.num_frames, "fps": narrated.fps, **settings}
        record = publish(
            narrated,
            output,
            settings,
            Origin(SYNTHESIZER, trained=False),
            edit="narrate",
            ingredients=[video],
        )
    _report(record, as_json)


@voice_app.command("list")
def voice_list(as_json: JsonOption = False) -> None:
    """Name the built-in voices, then enrolled ones (with owner, scope, expiry, status)."""
    from kinema.voice.profiles import list_voices

    for entry in list_voices():
        if as_json:
            typer.echo(json.dumps(entry))
        elif entry["kind"] == "built-in":
            typer.echo(f"{entry['name']:<12} built-in  {entry['description']}")
        else:
            typer.echo(
                f"{entry['name']:<12} enrolled  {entry['owner']}, scope {entry['scope']}, "
                f"until {entry['expires']} ({entry['status']})"
            )


@voice_app.command("phrase")
def voice_phrase(name: Annotated[str, typer.Argument(help="The name the new voice will have.")]) -> None:
    """Print the consent phrase the voice's owner must read aloud for enrolling NAME."""
    from kinema.voice.profiles import consent_phrase

    typer.echo(consent_phrase(name))


@voice_app.command("enroll")
def voice_enroll(
    name: Annotated[str, typer.Argument(help="The new voice's name.")],
    reference: Annotated[Path, typer.Option(help="At least 3 s of the person's speech (any audio file).")],
    consent: Annotated[Path, typer.Option(help="The same person reading `kinema voice phrase NAME`.")],
    owner: Annotated[str, typer.Option(help="Whose voice it is (who consented).")],
    scope: Annotated[str, typer.Option(help="What the consent covers, e.g. 'demo-reel-2026'.")],
    expires: Annotated[str, typer.Option(help="Last day the consent holds, YYYY-MM-DD.")],
) -> None:
    """Enrol a voice profile from a reference recording, only with its owner's recorded consent."""
    from kinema.voice.profiles import enroll

    record = enroll(name, reference, consent, owner=owner, scope=scope, expires=expires)
    typer.echo(
        f"voice {record.name} enrolled (consent {record.id}, {owner}, scope {scope}, until {expires}, "
        f"similarity {record.similarity:.2f})"
    )


@serve_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Generation worker processes (0: queue only).")] = 1,
    model: ModelOption = None,
) -> None:
    """Serve the web studio and its job workers; the first start prints a login URL."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from kinema.state import kinema_home
    from kinema.web import create_app
    from kinema.web.tokens import TokenStore

    if not 1 <= port <= 65535:
        raise InputError(f"--port must be between 1 and 65535, got {port}")
    if not 0 <= workers <= 64:
        raise InputError(f"--workers must be between 0 and 64, got {workers}")
    home = kinema_home()
    first = TokenStore(home).ensure_first()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(home, model=model, workers=workers),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )
    )

    def announce() -> None:
        # only once the socket listens: a URL printed earlier may be opened too soon
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        if first:
            typer.echo(f"kinema studio: open {url}/login?token={first}", err=True)
            typer.echo("  (this first token is shown once; `kinema serve token create` makes more)", err=True)
        else:
            typer.echo(
                f"kinema studio: {url}  (sign in with a token; `kinema serve token create` makes one)",
                err=True,
            )

    threading.Thread(target=announce, daemon=True).start()
    server.run()


@serve_token_app.command("create")
def serve_token_create(
    name: Annotated[str, typer.Option(help="A label to tell tokens apart.")] = "token",
) -> None:
    """Make a token; prints it once (only its hash is stored)."""
    from kinema.state import kinema_home
    from kinema.web.tokens import TokenStore

    token, secret = TokenStore(kinema_home()).create(name)
    typer.echo(secret)
    typer.echo(
        f"token {token.id} ({token.name}) created; shown once. Sign in at /login?token=<it> "
        "or send 'Authorization: Bearer <it>'",
        err=True,
    )


@serve_token_app.command("list")
def serve_token_list(as_json: JsonOption = False) -> None:
    """The tokens: id, name, when made, whether revoked (never the secrets)."""
    from dataclasses import asdict

    from kinema.state import kinema_home
    from kinema.web.tokens import TokenStore

    tokens = TokenStore(kinema_home()).list()
    if as_json:
        typer.echo(json.dumps([asdict(t) for t in tokens]))
        return
    for t in tokens:
        typer.echo(f"{t.id}  {t.name:<20} {t.created}  {'revoked ' + t.revoked if t.revoked else 'live'}")


@serve_token_app.command("revoke")
def serve_token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from `list`).")],
) -> None:
    """Revoke a token: its requests are refused from now on (its jobs stay)."""
    from kinema.state import kinema_home
    from kinema.web.tokens import TokenStore

    token = TokenStore(kinema_home()).revoke(token_id)
    typer.echo(f"revoked token {token.id} ({token.name})")


@app.command("eval")
def evaluate(
    model: ModelOption = None,
    prompts: Annotated[int, typer.Option(help="Prompts per set.")] = 20,
    steps: Annotated[int | None, typer.Option(help="Sampler steps (default: the model's).")] = None,
    modes: Annotated[
        bool,
        typer.Option(
            "--modes",
            help="The conditioning modes instead (image-to-video, keyframes, extension, loop, remix, inpaint).",
        ),
    ] = False,
) -> None:
    """World-checker pass rates on fixed prompt sets (seen pairs, held-out pairs, two objects)."""
    from kinema.pipelines.loading import load
    from kinema.train.evaluate import evaluate as run_eval
    from kinema.train.evaluate_modes import evaluate_modes

    if prompts < 1:
        raise InputError(f"--prompts must be at least 1, got {prompts}")
    pipe = load(model)
    if modes:
        results = _with_progress(
            lambda progress: evaluate_modes(pipe, prompts, steps, progress=progress), "evaluating", False
        )
        rows = results["modes"]
    else:
        results = _with_progress(
            lambda progress: run_eval(pipe, prompts, steps, progress), "evaluating", False
        )
        rows = results["sets"]
    for name, r in rows.items():
        ceiling = f"   (VAE ceiling {100 * r['vae_ceiling']:5.1f} %)" if "vae_ceiling" in r else ""
        typer.echo(
            f"{name:<14} {r['passed']:>3}/{r['total']:<3} {100 * r['pass_rate']:5.1f} %{ceiling}", err=True
        )
    typer.echo(json.dumps(results, default=_json_default))


@app.command("bench")
def bench(
    model: ModelOption = None,
    memory: Annotated[
        bool,
        typer.Option(
            "--memory", help="Peak memory per configuration (int8, memory savers), each in a fresh process."
        ),
    ] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda (--memory).")] = "cpu",
    lengths: Annotated[
        bool,
        typer.Option(
            "--lengths",
            help="Seconds per frame, peak memory and identity of 32- to 256-frame clips, each in a fresh process.",
        ),
    ] = False,
    web: Annotated[
        bool,
        typer.Option(
            "--web", help="API latency of a real server: 50 concurrent status polls while 20 jobs run."
        ),
    ] = False,
    watermark: Annotated[
        bool,
        typer.Option(
            "--watermark",
            help="Watermark robustness (every attack, 64 and 256 px) and false positives, not speed.",
        ),
    ] = False,
    clips: Annotated[
        int,
        typer.Option(help="--watermark: shapes-world clips per size (false-positive trials: 200 a clip)."),
    ] = 50,
) -> None:
    """Speed and memory of the default clip on this machine, as JSON."""
    from kinema import bench as benchmarks

    if watermark:
        if memory or lengths or web or model is not None or device != "cpu":
            raise InputError("bench --watermark takes only --clips (no model, --memory or --device)")
        if clips < 1:
            raise InputError(f"--clips must be at least 1, got {clips}")
        from kinema.provenance import watermark_bench

        result = _with_progress(
            lambda progress: watermark_bench.run(_world_clip, clips, progress=progress),
            "watermark bench",
            False,
            "clips",
        )
        typer.echo(json.dumps(result, default=_json_default))
        return
    if clips != 50:
        raise InputError("--clips applies to bench --watermark")
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device must be cpu or cuda, got {device}")
    if device != "cpu" and not memory:
        raise InputError("--device applies to bench --memory; the speed bench runs on the CPU")
    if web:
        if memory or lengths or device != "cpu":
            raise InputError("bench --web takes only --model (no --memory, --lengths or --device)")
        from kinema.web.loadbench import run_loadbench

        typer.echo(json.dumps(run_loadbench(model=model), default=_json_default))
        return
    if lengths and (memory or device != "cpu"):
        raise InputError("bench --lengths runs on the CPU alone (no --memory or --device)")
    if lengths:
        result = benchmarks.lengths(model)
    elif memory:
        result = benchmarks.memory(model, device)
    else:
        result = benchmarks.bench(model)
    typer.echo(json.dumps(result, default=_json_default))


def _world_clip(index: int, size: int):
    """Shapes-world clip number INDEX for the watermark bench: a scene and layout drawn from
    the index, 16 frames (2 s at 8 fps) of SIZE×SIZE."""
    import numpy as np

    from kinema.io import Video
    from kinema.world import render_frames
    from kinema.world.dataset import sample_scene

    scene = sample_scene(np.random.default_rng([0x3A7E, index]))
    return Video(render_frames(scene, seed=index, frames=16, size=size), 8.0)


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
    """Render a reference clip of a shapes-world prompt (not model output)."""
    from kinema.io import Video, check_output_path
    from kinema.publish import WORLD_RENDERER, publish
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
    settings = {"prompt": prompt, "seed": seed, "frames": frames, "size": [size, size], "fps": fps}
    _report(publish(video, output, settings, WORLD_RENDERER), as_json)


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
    vae: Annotated[Path | None, typer.Option(help="The trained VAE checkpoint a DiT stage uses.")] = None,
    init_from: Annotated[
        Path | None, typer.Option(help="Start a new run from these weights (e.g. committed ones).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change a preset setting, KEY=VALUE (e.g. steps=8000); repeatable."),
    ] = None,
    device: Annotated[str, typer.Option(help="Where to train: cpu, cuda, cuda:1, …")] = "cpu",
    compile_: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model's step (faster on a GPU).")
    ] = False,
) -> None:
    """Train a stage of the built-in model from scratch, or resume it where it stopped."""
    import dataclasses

    import torch

    from kinema.train.presets import get_preset, override
    from kinema.train.trainer import Trainer

    recipe = override(get_preset(preset), set_ or [])
    if vae is not None:
        recipe = dataclasses.replace(recipe, vae=str(vae))
    try:
        where = torch.device(device)
    except RuntimeError as e:
        raise InputError(f"--device: '{device}' is not a device (cpu, cuda, cuda:N)") from e
    if where.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available here")
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    if minutes is not None and minutes <= 0:
        raise InputError(f"--minutes must be positive, got {minutes}")
    folder = out or Path("runs") / recipe.name
    if not folder.parent.is_dir():
        raise InputError(f"output folder '{folder.parent}' does not exist")
    result = Trainer(recipe, folder, init_from=init_from, device=where, compile=compile_).run(
        max_steps=steps, max_minutes=minutes, progress=progress
    )
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one line for the whole run
        typer.echo(json.dumps(result))


# ---------------------------------------------------------------- trust


@app.command("detect")
def detect(
    file: Annotated[Path | None, typer.Argument(help="A video, image or frame folder to score.")] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain", help="Train the classifier anew: generates clips with the model (minutes)."
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="--retrain: where to write the weights (JSON).")] = None,
    clips: Annotated[
        int, typer.Option(help="--retrain: prompts, each a generated and a rendered clip.")
    ] = 150,
    seed: Annotated[int, typer.Option(help="--retrain: seed of the prompts, variants and split.")] = 0,
    cache: Annotated[
        Path | None, typer.Option(help="--retrain: keep generated clips here and reuse them.")
    ] = None,
    model: ModelOption = None,
) -> None:
    """Triage score: was FILE made by kinema's built-in model? JSON on stdout.

    Triage only: never the sole basis for a decision (`kinema verify` reads the evidence).
    """
    from kinema.provenance import triage

    if not retrain:
        if file is None:
            raise InputError("detect needs a FILE (or --retrain)")
        if out is not None or cache is not None or model is not None:
            raise InputError("--out, --cache and --model apply to detect --retrain")
        typer.echo(json.dumps(triage.detect_file(file), indent=2, default=_json_default))
        return
    if file is not None:
        raise InputError("detect --retrain takes no FILE")
    if out is None or out.suffix.lower() != ".json":
        raise InputError("detect --retrain needs --out PATH.json")
    if not out.parent.is_dir():
        raise InputError(f"output folder '{out.parent}' does not exist")
    if clips < 5:
        raise InputError(f"--clips must be at least 5, got {clips}")
    import numpy as np

    from kinema.io import Video
    from kinema.pipelines.loading import load
    from kinema.world import format_prompt, parse, render_frames
    from kinema.world.dataset import sample_scene

    pipe = load(model)
    frames, size, fps = pipe.defaults["frames"], pipe.defaults["size"], pipe.defaults["fps"]
    prompts = [format_prompt(sample_scene(np.random.default_rng([0x7219, seed, i]))) for i in range(clips)]

    def generate(prompt: str, index: int) -> Video:
        return pipe(prompt, seed=seed * 1_000_000 + index)

    def render(prompt: str, index: int) -> Video:
        return Video(render_frames(parse(prompt), seed=index, frames=frames, size=size), fps)

    if cache is not None:
        generate = triage.cached(generate, cache, f"{(pipe.model_hash or pipe.name)[:16]}-s{seed}")
    command = f"kinema detect --retrain --out {out} --clips {clips} --seed {seed}"
    command += f" --model {model}" if model is not None else ""
    trained_on = {
        "generated": f"{pipe.name} (model hash {pipe.model_hash}), default settings, seeds "
        f"{seed * 1_000_000}+i",
        "rendered": "shapes-world renderer, same prompts, layout seed i",
        "texture": "procedural multi-octave noise, panning (stand-in for real footage)",
    }
    report = _with_progress(
        lambda progress: triage.retrain(
            generate,
            render,
            prompts,
            out,
            command=command,
            trained_on=trained_on,
            seed=seed,
            progress=progress,
        ),
        "training triage",
        False,
        "prompts",
    )
    typer.echo(json.dumps(report, default=_json_default))


@keys_app.command("init")
def keys_init(force: Annotated[bool, typer.Option(help="Replace an existing chain.")] = False) -> None:
    """Create the local signing chain (root → intermediate → signing key) in KINEMA_HOME."""
    from kinema.provenance.keys import init_keys
    from kinema.state import kinema_home

    paths = init_keys(kinema_home(), force=force)
    typer.echo(f"created signing keys in {paths.folder} (trust anchor: {paths.root_cert})")


@app.command("verify")
def verify(file: Annotated[Path, typer.Argument(help="A video, image or frame folder.")]) -> None:
    """Check a file's C2PA manifest and invisible watermark; JSON on stdout."""
    from kinema.provenance.verify import verify_file

    typer.echo(json.dumps(verify_file(file), indent=2, default=_json_default))


@consent_app.command("add")
def consent_add(
    image: Annotated[Path, typer.Argument(help="The reference image showing the person.")],
    owner: Annotated[str, typer.Option(help="Who consented (the person shown).")],
    scope: Annotated[str, typer.Option(help="What the consent covers, e.g. 'storyboard-2026'.")],
    expires: Annotated[str, typer.Option(help="Last day the consent holds, YYYY-MM-DD.")],
) -> None:
    """Register consent for an image, so it may be used as a likeness reference."""
    from kinema.provenance.policy import add_consent

    record = add_consent(image, owner=owner, scope=scope, expires=expires)
    typer.echo(f"consent {record.id} for {image} ({owner}, scope {scope}, until {expires})")


@consent_app.command("list")
def consent_list() -> None:
    """List consent records as JSON lines."""
    from kinema.provenance.policy import list_consents

    for record in list_consents():
        typer.echo(json.dumps(record.to_dict(), default=_json_default))


@consent_app.command("revoke")
def consent_revoke(consent_id: Annotated[str, typer.Argument(help="The record's id.")]) -> None:
    """Revoke a consent record; images relying on it are refused from now on."""
    from kinema.provenance.policy import revoke_consent

    record = revoke_consent(consent_id)
    typer.echo(f"revoked consent {record.id}")


@review_app.command("list")
def review_list(
    status: Annotated[str | None, typer.Option(help="pending, approved or rejected.")] = None,
) -> None:
    """List review items, newest first."""
    from kinema.provenance import review

    for item in review.list_items(status):
        typer.echo(f"{item.id}  {item.status:<9} {item.kind:<6} {item.created}  {item.path}")


@review_app.command("show")
def review_show(item_id: Annotated[str, typer.Argument(help="The item's id.")]) -> None:
    """Show one review item as JSON."""
    from kinema.provenance import review

    typer.echo(json.dumps(review.get(item_id).to_dict(), indent=2, default=_json_default))


def _decide(item_id: str, note: str | None, approve: bool) -> None:
    from kinema.provenance import review

    item = (review.approve if approve else review.reject)(item_id, note=note)
    typer.echo(f"{'approved' if approve else 'rejected'} {item.id}")


ItemArgument = Annotated[str, typer.Argument(help="The item's id.")]
NoteOption = Annotated[str | None, typer.Option(help="Why.")]


@review_app.command("approve")
def review_approve(item_id: ItemArgument, note: NoteOption = None) -> None:
    """Approve an item for export."""
    _decide(item_id, note, approve=True)


@review_app.command("reject")
def review_reject(item_id: ItemArgument, note: NoteOption = None) -> None:
    """Reject an item; it can no longer be exported."""
    _decide(item_id, note, approve=False)


@app.command("export")
def export(
    item_id: Annotated[str, typer.Argument(help="An approved review item.")],
    out: Annotated[Path, typer.Argument(help="Where to publish it (same format as the working file).")],
) -> None:
    """Publish an approved item: a copy whose manifest records the review decision."""
    from kinema.provenance import review

    path = review.export(item_id, out)
    typer.echo(f"wrote {path} (id {item_id})")


# ---------------------------------------------------------------- shared helpers


def _check_clip_options(
    frames: int | None, steps: int | None, guidance: float | None, fps: float | None
) -> None:
    """The ranges every generating command checks before it loads a model."""
    if frames is not None:
        _check_frames(frames)
    if steps is not None and not 1 <= steps <= 1000:
        raise InputError(f"--steps must be between 1 and 1000, got {steps}")
    if guidance is not None and not 0 <= guidance <= 50:
        raise InputError(f"--guidance must be between 0 and 50, got {guidance}")
    if fps is not None and not 0 < fps <= 240:
        raise InputError(f"--fps must be in (0, 240], got {fps}")


def _check_frames(frames: int) -> None:
    limit = max_frames()
    if not 1 <= frames <= limit:
        raise InputError(f"--frames must be between 1 and {limit}, got {frames}")


def _savers(cpu_offload: bool, vae_tiling: bool, vae_slicing: bool, attention_slicing: bool) -> list[str]:
    """The memory savers asked for, by the names kinema.pipelines.loading.load takes."""
    flags = {
        "cpu_offload": cpu_offload,
        "vae_tiling": vae_tiling,
        "vae_slicing": vae_slicing,
        "attention_slicing": attention_slicing,
    }
    return [name for name, on in flags.items() if on]


def _seed(seed: int | None) -> int:
    if seed is None:
        return secrets.randbelow(2**31)
    if not 0 <= seed < 2**63:
        raise InputError(f"--seed must be between 0 and 2**63 - 1, got {seed}")
    return seed


def _condition_image(path: Path | None, option: str, width: int, height: int):
    """Read, policy-check (faces need consent) and fit an input image; None when not given."""
    if path is None:
        return None
    from kinema.io import read_image
    from kinema.pipelines.conditioning import fit_image
    from kinema.provenance.policy import check_likeness

    pixels = read_image(path)
    check_likeness(pixels, source=str(path))
    fitted, note = fit_image(pixels, width, height)
    typer.echo(f"{option} {path}: {note}", err=True)
    return fitted


def _parse_size(text: str) -> tuple[int, int]:
    """'S' or 'WxH' → (width, height)."""
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


def _with_progress(work, label: str, quiet: bool, unit: str = "steps"):
    """Run work(progress) under a rich progress bar on stderr (none with --json)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet:
        return work(None)
    columns = [
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} " + unit),
        TimeElapsedColumn(),
    ]
    # a bar only on a terminal: in pipes and logs it would be noise around the one result line
    with Progress(
        *columns, console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()
    ) as bar:
        task = bar.add_task(label, total=None)
        return work(lambda done, total: bar.update(task, completed=done, total=total))


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _report(record: dict, as_json: bool) -> None:
    """The last line of every command that writes (or one JSON object with --json)."""
    if "keys_created" in record:
        typer.echo(f"kinema: created a local signing certificate chain in {record['keys_created']}", err=True)
    if as_json:
        typer.echo(json.dumps(record, default=_json_default))
    else:
        typer.echo(f"wrote {record['path']} (id {record['id']}, seed {record['seed']})")


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
