"""The options every generating command shares (DESIGN.md's 2026-12 decisions), declared
once: `@shared_options` adds them to a command, which receives them as one `shared:
Shared` and builds its ClipRequest from it.

    --model --device --seed --steps --guidance --negative --lora --control --control-scale
    --path --reference --fast --literal --hide-prompt --json, --preview --preview-every (the
    commands that write one clip: generate, extend, remix, inpaint), and the memory savers
    --int8 (kinema models) --cpu-offload --vae-tiling --vae-slicing --attention-slicing
    (diffusers models)

`make_file` is how a command that writes one file ends: check everything (output path,
request, inputs) before the model loads, say how the prompt was read (`understood as:`
and warnings, on stderr), render with a progress display, publish.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from kinema.cli.common import (
    AttentionSlicingOption,
    CpuOffloadOption,
    GuidanceOption,
    Int8Option,
    JsonOption,
    ModelOption,
    SeedOption,
    StepsOption,
    VaeSlicingOption,
    VaeTilingOption,
    report_written,
    with_progress,
)

SAVERS = ("cpu_offload", "vae_tiling", "vae_slicing", "attention_slicing")
# the commands that show a live preview: those that write one clip through make_file
PREVIEWING = ("generate", "extend", "remix", "inpaint")


@dataclass(frozen=True)
class Shared:
    """The shared options as a command received them."""

    model: str | None = None
    device: str = "cpu"
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    negative: str = ""
    lora: tuple[str, ...] = ()
    control: Path | None = None
    control_scale: float = 1.0
    path: Path | None = None
    reference: Path | None = None
    fast: bool = False
    literal: bool = False
    hide_prompt: bool = False
    as_json: bool = False
    preview: Path | None = None
    preview_every: int = 4
    int8: bool = False
    cpu_offload: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    attention_slicing: bool = False

    def request(self, prompt: str, **options: Any):
        """The ClipRequest of PROMPT with these options and the command's own OPTIONS."""
        from kinema.render import ClipRequest, parse_adapter

        return ClipRequest(
            prompt=prompt,
            model=self.model,
            device=self.device,
            seed=self.seed,
            steps=self.steps,
            guidance=self.guidance,
            negative=self.negative,
            # an adapter at scale 0 is dropped: the output is the base model's, file for file
            adapters=tuple(a for a in map(parse_adapter, self.lora) if a.scale != 0),
            control=self.control,
            control_scale=self.control_scale,
            path=self.path,
            reference=self.reference,
            fast=self.fast,
            literal=self.literal,
            hide_prompt=self.hide_prompt,
            int8=self.int8,
            savers=tuple(name for name in SAVERS if getattr(self, name)),
            **options,
        )


_OPTIONS: dict[str, Any] = {
    "model": ModelOption,
    "device": Annotated[str, typer.Option(help="cpu or cuda.")],
    "seed": SeedOption,
    "steps": StepsOption,
    "guidance": GuidanceOption,
    "negative": Annotated[str, typer.Option(help="Negative prompt: what to steer away from.")],
    "lora": Annotated[
        list[str] | None,
        typer.Option(help="LoRA adapter NAME_OR_FILE[:SCALE] (scale in [-2, 2], default 1); repeatable."),
    ],
    "control": Annotated[
        Path | None, typer.Option(help="Control clip: the new clip follows its layout and motion.")
    ],
    "control_scale": Annotated[float, typer.Option(help="How strongly the control steers (0 to 2).")],
    "path": Annotated[
        Path | None,
        typer.Option(help='Motion path JSON {"points": [[frame, x, y], ...]} the object follows.'),
    ],
    "reference": Annotated[
        Path | None, typer.Option(help="Reference image: colour and shape come from its single object.")
    ],
    "fast": Annotated[
        bool, typer.Option("--fast", help="Few-step generation with the model's fast adapter.")
    ],
    "literal": Annotated[
        bool,
        typer.Option(
            "--literal",
            help="Send the prompt to the model as typed (the built-in model otherwise reads it into "
            "its own words first and says how: `understood as: …`).",
        ),
    ],
    "hide_prompt": Annotated[
        bool,
        typer.Option("--hide-prompt", help="Record only the prompt's hash, in the sidecar and manifest."),
    ],
    "as_json": JsonOption,
    "preview": Annotated[
        Path | None,
        typer.Option(
            help="Write a contact sheet (PNG) of the clip being made here, updated every few steps; "
            "removed when the run ends."
        ),
    ],
    "preview_every": Annotated[
        int, typer.Option(min=1, help="Update the --preview sheet every K sampler steps (and at the last).")
    ],
    "int8": Int8Option,
    "cpu_offload": CpuOffloadOption,
    "vae_tiling": VaeTilingOption,
    "vae_slicing": VaeSlicingOption,
    "attention_slicing": AttentionSlicingOption,
}


def shared_options(command):
    """Add the shared options to COMMAND (a function with a `shared: Shared` parameter)."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "shared"]
    defaults = {f.name: f.default for f in fields(Shared)}
    added = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None if name == "lora" else defaults[name],
            annotation=annotation,
        )
        for name, annotation in _OPTIONS.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _OPTIONS}
        values["lora"] = tuple(values["lora"] or ())
        if values["preview"] is not None and command.__name__ not in PREVIEWING:
            from kinema.errors import InputError

            raise InputError(f"--preview works with {', '.join(PREVIEWING)}; {command.__name__} shows none")
        return command(shared=Shared(**values), **kwargs)

    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    wrapper.__signature__ = signature.replace(parameters=[*own, *added])
    wrapper.__annotations__ = {
        **{k: v for k, v in command.__annotations__.items() if k != "shared"},
        **_OPTIONS,
    }
    return wrapper


def make_file(request, output: Path, shared: Shared, label: str, takes=None) -> None:
    """Check REQUEST and OUTPUT (before the model loads), and the --preview path, render
    it (best of TAKES when given) under a progress display and the preview sheet, publish
    it and print the closing line."""
    from kinema.studio.produce import Takes, prepare, produce

    takes = takes or Takes()
    checked = prepare(request, output)
    sheet = None
    if shared.preview is not None:
        from kinema.render.preview import PreviewFile, check_preview_path

        sheet = PreviewFile(check_preview_path(shared.preview, output), checked.request, shared.preview_every)
    for note in checked.inputs.notes:
        typer.echo(note, err=True)
    say_reading(checked)

    def work(progress):
        if sheet is None:
            return produce(checked, output, takes=takes, progress=progress)
        with sheet.removed():  # a preview is a progress display: gone when the run ends
            return produce(checked, output, takes=takes, progress=progress, preview=sheet.preview)

    record = with_progress(work, label, shared.as_json)
    report_written(record, shared.as_json)


def say_reading(checked) -> None:
    """How a Checked request's prompt was read, on stderr: one `understood as:` line, then
    one `kinema: warning:` line for each warning (nothing when the prompt was not read)."""
    if checked.understood_prompt is not None:
        typer.echo(f"understood as: {checked.understood_prompt}", err=True)
    for line in checked.warnings:
        typer.echo(f"kinema: warning: {line}", err=True)
