"""LoRA adapters: lora train and lora list."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import JsonOption, ModelOption, add_group

app = typer.Typer()
lora_app = add_group(
    app,
    "lora",
    "LoRA adapters: teach the model a subject from captioned clips, list what is on disk.",
    "kinema lora train clips/ --name pink",
)


@lora_app.command("train")
def train(
    folder: Annotated[
        Path, typer.Argument(help="Clips (mp4, webm, gif, PNG-frame folders), each with NAME.txt.")
    ],
    name: Annotated[str, typer.Option("--name", help="The adapter's name (KINEMA_HOME/loras/NAME).")],
    rank: Annotated[int, typer.Option(help="Rank of every LoRA pair.")] = 8,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 600,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (AdamW).")] = 1e-3,
    batch: Annotated[int, typer.Option(help="Clips a step.")] = 8,
    decoder_rank: Annotated[
        int,
        typer.Option(
            help="Rank of the pairs on the VAE decoder, which let a colour the codec never learned "
            "come out as it is; 0: the adapter leaves the decoder as it is."
        ),
    ] = 8,
    prior: Annotated[
        float,
        typer.Option(
            help="Share of every batch drawn from the model's own world, so it keeps what it knew; "
            "0: only your clips."
        ),
    ] = 0.5,
    model: ModelOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue NAME's stopped training.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing adapter NAME.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train adapter NAME on FOLDER's captioned clips (peft LoRA on the DiT's attention,
    MLP and text projections, and on the VAE decoder's convolutions); writes
    NAME.safetensors, its card NAME.json and a loss plot.

    Example: kinema lora train clips/ --name pink --steps 300
    """
    from kinema.train.lora import LoRASettings, train_lora

    settings = LoRASettings(
        rank=rank, steps=steps, lr=lr, batch=batch, decoder_rank=decoder_rank, prior_fraction=prior
    )
    command = shlex.join(["kinema", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("kinema") else ""
    path = train_lora(
        folder,
        name,
        settings,
        model=model,
        resume=resume,
        force=force,
        command=command or shlex.join(["kinema", "lora", "train", str(folder), "--name", name]),
        say=lambda line: typer.echo(line, err=True),
        show_progress=not quiet,
    )
    typer.echo(f"wrote {path} (adapter {name}, rank {rank})")


@lora_app.command("list")
def list_adapters(as_json: JsonOption = False) -> None:
    """The adapters in KINEMA_HOME/loras: name, base model, rank, size and card.

    Example: kinema lora list
    """
    from kinema.pipelines.adapters import adapter_list

    adapters = adapter_list()
    if as_json:
        typer.echo(json.dumps(adapters, indent=2))
        return
    if not adapters:
        typer.echo("no adapters yet (kinema lora train DIR --name NAME makes one)")
        return
    for a in adapters:
        card = a.get("card") or {}
        trained = f"{card.get('steps')} steps on {card.get('clips')} clips" if card else "no card"
        decoder = f" (decoder {card['decoder_rank']})" if card.get("decoder_rank") else ""
        typer.echo(
            f"{a['name']}  base {a.get('base_model') or '?'}  rank {a.get('rank') or '?'}{decoder}  "
            f"{a['bytes'] / 1e6:.2f} MB  {trained}"
        )
