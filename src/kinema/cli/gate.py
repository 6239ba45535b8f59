"""The review gate and the audit log: review list|show|approve|reject|withdraw|policy,
export, audit verify|repair. The CLI acts as `local:<uid>`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from kinema.cli.common import JsonOption, add_group, json_default
from kinema.errors import InputError

app = typer.Typer()

STATES_HELP = (
    "States: pending (waiting for a decision; cannot be exported) · approved (can be exported) · "
    "rejected (final: never exported) · withdrawn (was approved; final: exports refused from then on) · "
    "superseded (a later run replaced its file; final). pending → approved | rejected; approved → "
    "withdrawn. You act as local:<uid>; approving your own item is self-review, recorded in the "
    "export, and refused while `kinema review policy --four-eyes on`."
)
review_app = add_group(
    app,
    "review",
    "The human review gate: nothing is published unreviewed.\n\n" + STATES_HELP,
    "kinema review list",
)
audit_app = add_group(
    app,
    "audit",
    "The hash-chained audit log of every decision (KINEMA_HOME/audit.jsonl). A break (an edited, cut "
    "or missing log) blocks every change until `kinema audit repair --accept`.",
    "kinema audit verify",
)

ItemArgument = Annotated[str, typer.Argument(help="The item's id (or a unique prefix of 4+ characters).")]
NoteOption = Annotated[str | None, typer.Option(help="Why.")]


@review_app.command("list")
def review_list(
    status: Annotated[
        str | None,
        typer.Option(help="pending, approved, rejected, withdrawn or superseded (default: all)."),
    ] = None,
) -> None:
    """List review items, newest first, under a header row.

    Example: kinema review list --status pending
    """
    from kinema.governance import review

    items = sorted(review.list_items(status), key=lambda item: (item.created, item.id), reverse=True)
    typer.echo(f"{'ID':<8}  {'STATUS':<10} {'KIND':<6} {'CREATED':<20}  PATH")
    for item in items:
        typer.echo(f"{item.id:<8}  {item.status:<10} {item.kind:<6} {item.created:<20}  {item.path}")


@review_app.command("show")
def review_show(item_id: ItemArgument) -> None:
    """Show one review item as JSON (its state, creator, decision and exports).

    Example: kinema review show 3f9a1c2e
    """
    from kinema.governance import review

    typer.echo(json.dumps(review.get(item_id).to_dict(), indent=2, default=json_default))


def _decide(item_id: str, note: str | None, action: Literal["approve", "reject", "withdraw"]) -> None:
    from kinema.governance import review

    item = getattr(review, action)(item_id, note=note)
    extra = " (self-review)" if action == "approve" and item.self_review else ""
    typer.echo(f"{item.status} {item.id}{extra}")


@review_app.command("approve")
def review_approve(item_id: ItemArgument, note: NoteOption = None) -> None:
    """Approve a pending item: it can then be exported. Refused for any other state.

    Example: kinema review approve 3f9a1c2e --note 'motion reads well'
    """
    _decide(item_id, note, "approve")


@review_app.command("reject")
def review_reject(item_id: ItemArgument, note: NoteOption = None) -> None:
    """Reject a pending item: final, it can never be exported (make a new take instead).

    Example: kinema review reject 3f9a1c2e --note 'flickers at 1 s'
    """
    _decide(item_id, note, "reject")


@review_app.command("withdraw")
def review_withdraw(item_id: ItemArgument, note: NoteOption = None) -> None:
    """Withdraw an approved item: final, exports are refused from then on (copies already
    published stay where they are).

    Example: kinema review withdraw 3f9a1c2e --note 'licence ended'
    """
    _decide(item_id, note, "withdraw")


@review_app.command("policy")
def review_policy(
    four_eyes: Annotated[
        str | None,
        typer.Option(
            "--four-eyes",
            metavar="on|off",
            help="on: no one may approve an item they made (teams); off: self-review allowed and recorded.",
        ),
    ] = None,
) -> None:
    """Show the review policy, or change it (an audited change).

    Example: kinema review policy --four-eyes on
    """
    from kinema.governance import review

    if four_eyes is None:
        state = "on" if review.four_eyes() else "off"
        typer.echo(f"four-eyes review is {state}")
        return
    if four_eyes not in ("on", "off"):
        raise InputError(f"--four-eyes takes on or off, got '{four_eyes[:20]}'")
    changed = review.set_four_eyes(four_eyes == "on")
    typer.echo(f"four-eyes review is {'now' if changed else 'already'} {four_eyes}")


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
    Pending, rejected, withdrawn and superseded items are refused, and nothing is written.

    Example: kinema export 3f9a1c2e -o published.mp4
    """
    from kinema.governance import review

    if (out_argument is None) == (output is None):
        raise InputError("export takes one destination: -o OUT (or OUT after the id), not both or neither")
    path = review.export(item_id, output or out_argument)
    typer.echo(f"wrote {path} (id {item_id})")


@audit_app.command("verify")
def audit_verify(as_json: JsonOption = False) -> None:
    """Verify the whole audit log: every line's hash and chain, the head file, and
    review.db's copy of the head. Exit 0 intact, 1 broken (naming the first bad line).
    Breaks a repair acknowledged are listed and stay visible.

    Example: kinema audit verify
    """
    from kinema.governance import audit

    report = audit.verify()
    if as_json:
        data = {
            "ok": report.ok,
            "problem": report.problem,
            "line": report.line,
            "lines": report.lines,
            "acknowledged": list(report.breaks),
            "open_intents": [r["hash"] for r in report.open_intents],
        }
        typer.echo(json.dumps(data))
    else:
        if report.ok:
            typer.echo(f"audit log intact: {report.lines} lines")
        else:
            typer.echo(f"audit log broken: {report.problem}")
            typer.echo("state changes are refused until `kinema audit repair --accept`", err=True)
        for acknowledged in report.breaks:
            typer.echo(f"acknowledged break: {acknowledged}")
        for opened in report.open_intents:
            typer.echo(f"open change: line {opened['seq'] + 1} ({opened['event']}) has no done entry yet")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("repair")
def audit_repair(
    accept: Annotated[
        bool, typer.Option("--accept", help="Accept the break as it is and start a new segment.")
    ] = False,
) -> None:
    """Acknowledge a break in the audit log so changes can go on: appends an audited
    acknowledgement (who, what was broken, the hash of everything before it) that starts
    a new segment. Nothing is deleted; `kinema audit verify` keeps showing the break.

    Example: kinema audit repair --accept
    """
    from kinema.governance import audit, review

    if not accept:
        raise InputError("audit repair changes nothing without --accept (look first: kinema audit verify)")
    record = audit.repair(by=review.local_identity())
    if record is None:
        typer.echo("audit log intact; nothing to repair")
        return
    fields = record["fields"]
    typer.echo(f"acknowledged: {fields['problem']} (new segment from line {record['seq'] + 1})")
    review.reconcile()
