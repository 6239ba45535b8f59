"""Trust: verify and detect (what a file is), keys, consent, the review gate and export."""

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
review_app = add_group(
    app, "review", "The human review gate: nothing is published unreviewed.", "kinema review list"
)


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
    """Check a file's C2PA manifest and invisible watermark; JSON on stdout.

    Example: kinema verify clip.mp4
    """
    from kinema.provenance.verify import verify_file

    typer.echo(json.dumps(verify_file(file), indent=2, default=json_default))


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


@review_app.command("list")
def review_list(
    status: Annotated[str | None, typer.Option(help="pending, approved or rejected (default: all).")] = None,
) -> None:
    """List review items, newest first, under a header row.

    Example: kinema review list --status pending
    """
    from kinema.governance import review

    items = sorted(review.list_items(status), key=lambda item: (item.created, item.id), reverse=True)
    typer.echo(f"{'ID':<8}  {'STATUS':<9} {'KIND':<6} {'CREATED':<20}  PATH")
    for item in items:
        typer.echo(f"{item.id:<8}  {item.status:<9} {item.kind:<6} {item.created:<20}  {item.path}")


@review_app.command("show")
def review_show(item_id: Annotated[str, typer.Argument(help="The item's id.")]) -> None:
    """Show one review item as JSON.

    Example: kinema review show 3f9a1c2e
    """
    from kinema.governance import review

    typer.echo(json.dumps(review.get(item_id).to_dict(), indent=2, default=json_default))


def _decide(item_id: str, note: str | None, approve: bool) -> None:
    from kinema.governance import review

    item = (review.approve if approve else review.reject)(item_id, note=note)
    typer.echo(f"{'approved' if approve else 'rejected'} {item.id}")


ItemArgument = Annotated[str, typer.Argument(help="The item's id.")]
NoteOption = Annotated[str | None, typer.Option(help="Why.")]


@review_app.command("approve")
def review_approve(item_id: ItemArgument, note: NoteOption = None) -> None:
    """Approve an item for export.

    Example: kinema review approve 3f9a1c2e --note 'motion reads well'
    """
    _decide(item_id, note, approve=True)


@review_app.command("reject")
def review_reject(item_id: ItemArgument, note: NoteOption = None) -> None:
    """Reject an item; it can no longer be exported.

    Example: kinema review reject 3f9a1c2e --note 'flickers at 1 s'
    """
    _decide(item_id, note, approve=False)


@app.command("export")
def export(
    item_id: Annotated[str, typer.Argument(help="An approved review item.")],
    out_argument: Annotated[
        Path | None, typer.Argument(metavar="OUT", help="Same as -o (the older, positional form).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Where to publish it (same format as the working file)."),
    ] = None,
) -> None:
    """Publish an approved item: a copy whose manifest records the review decision.

    Example: kinema export 3f9a1c2e -o published.mp4
    """
    from kinema.governance import review

    if (out_argument is None) == (output is None):
        raise InputError("export takes one destination: -o OUT (or OUT after the id), not both or neither")
    path = review.export(item_id, output or out_argument)
    typer.echo(f"wrote {path} (id {item_id})")
