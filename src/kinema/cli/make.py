"""Commands that make clips from prompts: generate and batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import (
    AttentionSlicingOption,
    CpuOffloadOption,
    DiscloseOption,
    FpsOption,
    FramesOption,
    GuidanceOption,
    Int8Option,
    JsonOption,
    ModelOption,
    OutputOption,
    SeedOption,
    SizeOption,
    StepsOption,
    VaeSlicingOption,
    VaeTilingOption,
    VoiceOption,
    VoiceScopeOption,
    check_frames,
    json_default,
    parse_size,
    report_written,
    resolve_seed,
    with_progress,
)
from kinema.errors import InputError

app = typer.Typer()


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
    """Generate a clip from a prompt with the built-in model (or --model).

    Example: kinema generate 'a red circle moving right on a black background' -o clip.mp4 --seed 3
    """
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
    dims = parse_size(size) if size else None
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
    seed = resolve_seed(seed)
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
        choice = with_progress(
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
        video = with_progress(
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
    report_written(record, as_json)


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
    """Generate a clip for every prompt of a file, on a Ray cluster; resumable; DIR/summary.csv holds QA.

    Example: kinema batch prompts.txt -o clips/ --workers 2
    """
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
        size=parse_size(size) if size else None,
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

    rows = with_progress(
        lambda progress: run_all(jobs, executor, progress=progress, on_row=report), "batch", as_json, "clips"
    )
    summary = write_summary(rows, output / SUMMARY)
    generated = sum(row["status"] == "generated" for row in rows)
    if as_json:
        typer.echo(json.dumps({"path": str(summary), "clips": rows}, default=json_default))
    else:
        typer.echo(
            f"wrote {summary} ({len(rows)} prompts: {generated} generated, {len(rows) - generated} already finished)"
        )


def _check_clip_options(
    frames: int | None, steps: int | None, guidance: float | None, fps: float | None
) -> None:
    """The ranges every generating command checks before it loads a model."""
    if frames is not None:
        check_frames(frames)
    if steps is not None and not 1 <= steps <= 1000:
        raise InputError(f"--steps must be between 1 and 1000, got {steps}")
    if guidance is not None and not 0 <= guidance <= 50:
        raise InputError(f"--guidance must be between 0 and 50, got {guidance}")
    if fps is not None and not 0 < fps <= 240:
        raise InputError(f"--fps must be in (0, 240], got {fps}")


def _savers(cpu_offload: bool, vae_tiling: bool, vae_slicing: bool, attention_slicing: bool) -> list[str]:
    """The memory savers asked for, by the names kinema.pipelines.loading.load takes."""
    flags = {
        "cpu_offload": cpu_offload,
        "vae_tiling": vae_tiling,
        "vae_slicing": vae_slicing,
        "attention_slicing": attention_slicing,
    }
    return [name for name, on in flags.items() if on]


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
