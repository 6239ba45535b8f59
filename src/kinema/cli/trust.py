"""Trust: verify and detect (what a file is), keys and consent (the review gate, export and
the audit log are kinema.cli.gate's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import ExpiresOption, ModelOption, add_group, json_default, with_progress
from kinema.errors import InputError

app = typer.Typer()
keys_app = add_group(
    app, "keys", "The local certificate chain that signs C2PA manifests.", "kinema keys init"
)
consent_app = add_group(app, "consent", "Consent records for likeness references.", "kinema consent list")


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

    Example: kinema detect clip.mp4
    """
    if not retrain:
        if file is None:
            raise InputError("detect needs a FILE (or --retrain)")
        if out is not None or cache is not None or model is not None:
            raise InputError("--out, --cache and --model apply to detect --retrain")
        from kinema.provenance.triage import detect_file

        typer.echo(json.dumps(detect_file(file), indent=2, default=json_default))
        return
    if file is not None:
        raise InputError("detect --retrain takes no FILE")
    if out is None:
        raise InputError("detect --retrain needs --out PATH.json")
    from kinema.train.triage_corpus import retrain_triage

    report = with_progress(
        lambda progress: retrain_triage(
            out, prompts=clips, seed=seed, cache=cache, model=model, progress=progress
        ),
        "training triage",
        False,
        "prompts",
    )
    typer.echo(json.dumps(report, default=json_default))


@keys_app.command("init")
def keys_init(force: Annotated[bool, typer.Option(help="Replace an existing chain.")] = False) -> None:
    """Create the local signing chain (root → intermediate → signing key) in KINEMA_HOME.

    Example: kinema keys init
    """
    from kinema.provenance.keys import init_keys
    from kinema.state import kinema_home

    paths = init_keys(kinema_home(), force=force)
    typer.echo(f"created signing keys in {paths.folder} (trust anchor: {paths.root_cert})")


@app.command("verify")
def verify(file: Annotated[Path, typer.Argument(help="A video, image or frame folder.")]) -> None:
    """Check a file's C2PA manifest, watermark, triage score and review decision, with a
    one-line verdict that weighs them (manifest first, detector last); JSON on stdout.

    Example: kinema verify clip.mp4
    """
    from kinema.authenticity import report

    typer.echo(json.dumps(report(file), indent=2, default=json_default))


@consent_app.command("add")
def consent_add(
    image: Annotated[Path, typer.Argument(help="The reference image showing the person.")],
    owner: Annotated[str, typer.Option(help="Who consented (the person shown).")],
    scope: Annotated[str, typer.Option(help="What the consent covers, e.g. 'storyboard-2026'.")],
    expires: ExpiresOption,
) -> None:
    """Register consent for an image, so it may be used as a likeness reference.

    Example: kinema consent add face.png --owner 'Ada L.' --scope storyboard-2026 --expires 2026-12-31
    """
    from kinema.governance.policy import add_consent

    record = add_consent(image, owner=owner, scope=scope, expires=expires)
    typer.echo(f"consent {record.id} for {image} ({owner}, scope {scope}, until {expires})")


@consent_app.command("list")
def consent_list() -> None:
    """List consent records as JSON lines.

    Example: kinema consent list
    """
    from kinema.governance.policy import list_consents

    for record in list_consents():
        typer.echo(json.dumps(record.to_dict(), default=json_default))


@consent_app.command("revoke")
def consent_revoke(consent_id: Annotated[str, typer.Argument(help="The record's id.")]) -> None:
    """Revoke a consent record; images relying on it are refused from now on.

    Example: kinema consent revoke c1a2b3c4d5
    """
    from kinema.governance.policy import revoke_consent

    record = revoke_consent(consent_id)
    typer.echo(f"revoked consent {record.id}")
