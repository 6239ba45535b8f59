"""Commands that measure: qa (one clip), eval (the model), bench (this machine), and
train (which measures as it goes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import ModelOption, StepsOption, json_default, with_progress
from kinema.errors import InputError

app = typer.Typer()


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
    """Temporal QA of a clip (flicker, warping, identity drift, smoothness, cuts, order): JSON on stdout.

    Example: kinema qa clip.mp4 --prompt 'a red circle moving right on a black background' --report qa.png
    """
    from kinema.io import read_video
    from kinema.metrics import draw_report
    from kinema.qa import clip_qa
    from kinema.render.reading import read_prompt

    if report is not None:
        if report.suffix.lower() != ".png":
            raise InputError(f"--report must name a .png file, got '{report}'")
        parent = report.parent if str(report.parent) else Path(".")
        if not parent.is_dir():
            raise InputError(f"report folder '{parent}' does not exist")
        if report.is_dir():
            raise InputError(f"'{report}' is a directory; give a file name ending in .png")
    video = read_video(clip)
    result = clip_qa(video, prompt, reading=None if prompt is None else read_prompt(prompt))
    for line in result.get("warnings", ()):
        typer.echo(f"kinema: warning: {line}", err=True)
    result["clip"] = str(clip)
    if report is not None:
        result["report"] = str(draw_report(video, result, report))
    typer.echo(json.dumps(result, indent=2, default=json_default))


@app.command("eval")
def evaluate(
    model: ModelOption = None,
    prompts: Annotated[
        int | None, typer.Option(help="Prompts per set (default 20; 30 with --control).")
    ] = None,
    steps: StepsOption = None,
    modes: Annotated[
        bool,
        typer.Option(
            "--modes",
            help="The conditioning modes instead (image-to-video, keyframes, extension, loop, remix, inpaint).",
        ),
    ] = False,
    files: Annotated[
        bool,
        typer.Option(
            "--files",
            help="Also judge the files users get: each clip written as `kinema generate` writes an .mp4, then read back.",
        ),
    ] = False,
    lora: Annotated[
        list[str] | None,
        typer.Option(
            "--lora",
            help="Evaluate with adapter NAME_OR_FILE[:SCALE] mixed in (repeatable); adds its taught colours' set.",
        ),
    ] = None,
    control: Annotated[
        bool,
        typer.Option(
            "--control",
            help="The control branch instead: held-out motion paths and control clips (default 30 each).",
        ),
    ] = False,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast", help="With the model's few-step adapter, at its steps (unless --steps) and no guidance."
        ),
    ] = False,
) -> None:
    """World-checker pass rates on fixed prompt sets (seen pairs, held-out pairs, two objects).

    The checker is the strict one of `kinema world check` (shape, colour and size in every
    frame, nothing else in any frame). Each set also reports its VAE ceiling and how crisp
    its squares are (mean spread of their fill ratio over a clip).

    With --control: how closely clips follow held-out paths (curves, zig-zags, stops,
    diagonals, loops) and control clips of another colour, shape and background (box
    centre within 0.05 on average, extent within 25 %, the checker passing the rest).

    Example: kinema eval --prompts 50 --files
    """
    from kinema.pipelines.loading import load
    from kinema.train.evaluate import evaluate as run_eval
    from kinema.train.evaluate_modes import evaluate_modes

    if prompts is None:
        prompts = 30 if control else 20
    if prompts < 1:
        raise InputError(f"--prompts must be at least 1, got {prompts}")
    if files and modes:
        raise InputError("--files judges the text-to-video sets; it does not go with --modes")
    if control and (modes or files or lora or fast):
        raise InputError(
            "--control evaluates the control branch on its own; drop --modes, --files, --lora and --fast"
        )
    if fast and modes:
        raise InputError("--fast evaluates the text-to-video sets; it does not go with --modes")
    from kinema.pipelines.facts import ModelFacts
    from kinema.render import check_adapters, fast_adapter, fast_steps, parse_adapter

    adapters = check_adapters([parse_adapter(text) for text in lora or ()], ModelFacts.read(model))
    guidance = None
    if fast:
        few = fast_adapter(ModelFacts.read(model))
        adapters, guidance = (*adapters, few), 1.0
        steps = fast_steps(few) if steps is None else steps
    if adapters and modes:
        raise InputError("--lora evaluates the text-to-video sets; it does not go with --modes")
    if control and "path" not in ModelFacts.read(model).controls:
        raise InputError(f"the model {ModelFacts.read(model).name} has no control branch to evaluate")
    pipe = load(model)
    if control:
        from kinema.train.evaluate_control import evaluate_control

        results = with_progress(
            lambda progress: evaluate_control(pipe, prompts, steps, progress=progress), "evaluating", False
        )
        rows = results["sets"]
    elif modes:
        results = with_progress(
            lambda progress: evaluate_modes(pipe, prompts, steps, progress=progress), "evaluating", False
        )
        rows = results["modes"]
    else:
        results = with_progress(
            lambda progress: run_eval(
                pipe, prompts, steps, progress, files=files, adapters=adapters, guidance=guidance
            ),
            "evaluating",
            False,
        )
        rows = results["sets"]
    for name, r in rows.items():
        typer.echo(
            f"{name:<14} {r['passed']:>3}/{r['total']:<3} {100 * r['pass_rate']:5.1f} %{_extras(r)}", err=True
        )
    typer.echo(json.dumps(results, default=json_default))


def _extras(row: dict) -> str:
    """The rest of an eval line: VAE ceiling, files' pass rate, squares' fill spread."""
    parts = []
    if "vae_ceiling" in row:
        parts.append(f"VAE ceiling {100 * row['vae_ceiling']:5.1f} %")
    if "files" in row:
        parts.append(f"as mp4 files {100 * row['files']['pass_rate']:5.1f} %")
    if "mean_centre_error" in row:
        parts.append(f"mean box-centre error {row['mean_centre_error']:.3f}")
    spread = row.get("sharpness", {}).get("square", {}).get("fill_spread_mean")
    if spread is not None:
        parts.append(f"square fill spread {spread:.3f}")
    return f"   ({'; '.join(parts)})" if parts else ""


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
            help="Watermark visibility, robustness (every attack, on model clips of 64 and 128 px) and false positives, not speed.",
        ),
    ] = False,
    cold: Annotated[
        bool,
        typer.Option(
            "--cold",
            help="Cold start of `kinema generate` from the shell, phase by phase, each run a fresh process.",
        ),
    ] = False,
    curve: Annotated[
        Path | None,
        typer.Option(
            help="Draw the world checker's pass rate against steps (1-24) with seconds per clip to this PNG; JSON too."
        ),
    ] = None,
    prompts: Annotated[int | None, typer.Option(help="--curve: prompts per set (default 20).")] = None,
    clips: Annotated[
        int | None,
        typer.Option(
            help="--watermark: built-in model clips per background and size, default 50 (cached under KINEMA_HOME/cache; false-positive trials: 200 a clip)."
        ),
    ] = None,
) -> None:
    """Speed and memory of the default clip on this machine, as JSON.

    Example: kinema bench --memory --device cuda   (or: kinema bench --cold, kinema bench --curve curve.png)
    """
    from kinema import bench as benchmarks

    def run(progress) -> dict:
        return benchmarks.run(
            model,
            peak_memory=memory,
            device=device,
            long_clips=lengths,
            web=web,
            watermark=watermark,
            clips=clips,
            cold=cold,
            curve=curve,
            prompts=prompts,
            progress=progress,
        )

    # the watermark bench and the curve report progress clip by clip; the others run in subprocesses
    if watermark or curve is not None:
        result = with_progress(run, "watermark bench" if watermark else "quality curve", False, "clips")
    else:
        result = run(None)
    typer.echo(json.dumps(result, default=json_default))


@app.command("train")
def train(
    preset: Annotated[str, typer.Option(help="Training recipe: vae, dit, … (tiny ones for tests).")],
    out: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (default runs/PRESET); resumes if it exists.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Steps to run (default: to the preset's end).")] = None,
    minutes: Annotated[float | None, typer.Option(help="Minutes to run (default: no limit).")] = None,
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
    """Train a stage of the built-in model from scratch, or resume it where it stopped.

    Example: kinema train --preset dit --minutes 30 --set steps=8000
    """
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
