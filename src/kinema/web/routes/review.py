"""/api/review: the review items of the studio's takes, and a decision on one.

A token's roles decide what it sees and may do (kinema.web.tokens): a reviewer sees every
take's item and may approve, reject or withdraw it; a creator sees only the items of its
own takes and may reject or withdraw them (steps that only take things out of
publication), never approve. The decision is the review gate's (kinema.governance.review)
with the token's identity, `token:<id>`: an item in another state is a 409 naming it, and
approving one's own take while four-eyes review is on is a 403. Withdrawing an approved
take removes its published copy.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from kinema.errors import InputError
from kinema.jobs.queue import Job, JobQueue
from kinema.web.context import Caller, Context
from kinema.web.tokens import Token

__all__ = ["Note", "router", "takes"]

router = APIRouter()

REVIEW_ID = re.compile(r"^[0-9a-f]{4,64}$")
# documented in the spec, checked by the handler (a bad id is a 400 with a message)
ItemId = Annotated[
    str, PathParam(description="a review item id", json_schema_extra={"pattern": REVIEW_ID.pattern})
]
Status = Literal["pending", "approved", "rejected", "withdrawn", "superseded"]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=1000)


class Refusal(BaseModel):
    """A refusal: what was wrong, in one line."""

    detail: str


FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "the token's role or the four-eyes policy forbids it", "model": Refusal}
}


@router.get("/api/review")
def review_list(ctx: Context, caller: Caller, status: Status | None = None) -> dict[str, Any]:
    """The review items this token may see (a reviewer: every take's; a creator: its own
    takes'), all or those with STATUS, with what this token may do to each."""
    from kinema.governance import review

    visible = takes(ctx.queue, None if caller.can("reviewer") else caller.id)
    items = [i for i in review.list_items(status) if i.id in visible]
    four_eyes = review.four_eyes()
    return {
        "caller": {"id": caller.id, "identity": caller.identity, "roles": list(caller.roles)},
        "four_eyes": four_eyes,
        "items": [_review_dict(i, visible[i.id], ctx.queue, caller, four_eyes) for i in items],
    }


@router.post("/api/review/{item_id}/{decision}", responses=FORBIDDEN)
def review_decide(
    ctx: Context,
    caller: Caller,
    item_id: ItemId,
    decision: Literal["approve", "reject", "withdraw"],
    body: Annotated[Note | None, Body()] = None,
) -> dict[str, Any]:
    """Approve, reject or withdraw one item this token may see, with an optional note:
    approve needs the reviewer role; reject and withdraw the reviewer role or the take's
    creator. A state that does not allow it is a 409 naming the state."""
    from kinema.governance import audit, review

    if not REVIEW_ID.match(item_id):
        raise InputError(f"bad review id '{item_id[:40]}'")
    visible = takes(ctx.queue, None if caller.can("reviewer") else caller.id)
    if item_id not in visible:
        raise HTTPException(404, f"no review item '{item_id}'")
    job = visible[item_id]
    if decision == "approve" and not caller.can("reviewer"):
        raise HTTPException(403, f"token {caller.id} is a creator token; approving needs the reviewer role")
    if not caller.can("reviewer") and job.owner != caller.id:
        raise HTTPException(403, f"only a reviewer or the take's creator may {decision} it")
    act = getattr(review, decision)
    note = body.note if body else ""
    try:
        item = act(item_id, note=note or None, reviewer=caller.identity, creator=f"token:{job.owner}")
    except review.StateError as exc:
        raise HTTPException(409, str(exc)) from None
    except review.FourEyesError as exc:
        raise HTTPException(403, str(exc)) from None
    except audit.AuditBroken as exc:
        raise HTTPException(409, str(exc)) from None
    if decision == "withdraw":
        ctx.queue.published_path(job).unlink(missing_ok=True)  # no longer handed out
    return _review_dict(item, job, ctx.queue, caller, review.four_eyes())


def takes(queue: JobQueue, owner: str | None) -> dict[str, Job]:
    """review item id → its take (a done job), over OWNER's jobs (None: everyone's)."""
    found: dict[str, Job] = {}
    offset = 0
    while True:
        page, total = queue.list(owner, "done", 200, offset)
        found.update({j.record["id"]: j for j in page if j.record and j.record.get("id")})
        offset += len(page)
        if not page or offset >= total:
            return found


def _review_dict(item, job: Job, queue: JobQueue, caller: Token, four_eyes: bool) -> dict[str, Any]:
    settings = item.settings
    mine = job.owner == caller.id
    reviewer = caller.can("reviewer")
    own = mine or item.creator == caller.identity
    allowed = {
        "approve": item.status == "pending" and reviewer and not (four_eyes and own),
        "reject": item.status == "pending" and (reviewer or mine),
        "withdraw": item.status == "approved" and (reviewer or mine),
        "publish": item.status == "approved" and mine,
    }
    return {
        "id": item.id,
        "job": job.id,
        "kind": item.kind,  # clip or image: what the page shows it in
        "status": item.status,
        "created": item.created,
        "creator": f"token:{job.owner}",
        "mine": mine,
        "reviewer": item.reviewer,
        "self_review": item.self_review,
        "note": item.note,
        "decided": item.decided,
        "prompt": settings.get("prompt"),
        "seed": settings.get("seed"),
        "edit": (item.spec or {}).get("edit"),  # extend, remix, inpaint, outpaint; None: generated
        "published": item.status == "approved" and mine and queue.published_path(job).is_file(),
        "can": [action for action, ok in allowed.items() if ok],
    }
