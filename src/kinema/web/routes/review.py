"""/api/review: the review items of this token's takes, and the approve or reject
decision on one (a rejected take's published copy is withdrawn)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from kinema.errors import InputError
from kinema.jobs.queue import Job, JobQueue
from kinema.web.context import Caller, Context

__all__ = ["Note", "router"]

router = APIRouter()

REVIEW_ID = re.compile(r"^[0-9a-f]{4,64}$")
# documented in the spec, checked by the handler (a bad id is a 400 with a message)
ItemId = Annotated[
    str, PathParam(description="a review item id", json_schema_extra={"pattern": REVIEW_ID.pattern})
]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=1000)


@router.get("/api/review")
def review_list(
    ctx: Context, caller: Caller, status: Literal["pending", "approved", "rejected"] | None = None
) -> dict[str, Any]:
    """Review items of this token's clips (all, or those with STATUS)."""
    from kinema.governance import review

    owned = _owned_reviews(ctx.queue, caller.id)
    items = [i for i in review.list_items(status) if i.id in owned]
    return {"items": [_review_dict(i, owned[i.id], ctx.queue) for i in items]}


@router.post("/api/review/{item_id}/{decision}")
def review_decide(
    ctx: Context,
    caller: Caller,
    item_id: ItemId,
    decision: Literal["approve", "reject"],
    body: Annotated[Note | None, Body()] = None,
) -> dict[str, Any]:
    """Approve or reject one of this token's clips, with an optional note."""
    from kinema.governance import review

    if not REVIEW_ID.match(item_id):
        raise InputError(f"bad review id '{item_id[:40]}'")
    owned = _owned_reviews(ctx.queue, caller.id)
    if item_id not in owned:
        raise HTTPException(404, f"no review item '{item_id}'")
    act = review.approve if decision == "approve" else review.reject
    note = body.note if body else ""
    item = act(item_id, note=note or None, reviewer=f"web:{caller.name}")
    if decision == "reject":
        ctx.queue.published_path(owned[item_id]).unlink(missing_ok=True)  # withdrawn
    return _review_dict(item, owned[item_id], ctx.queue)


def _owned_reviews(queue: JobQueue, owner: str) -> dict[str, Job]:
    """review item id → its job, over this owner's done jobs."""
    owned: dict[str, Job] = {}
    offset = 0
    while True:
        page, total = queue.list(owner, "done", 200, offset)
        owned.update({j.record["id"]: j for j in page if j.record and j.record.get("id")})
        offset += len(page)
        if not page or offset >= total:
            return owned


def _review_dict(item, job: Job, queue: JobQueue) -> dict[str, Any]:
    settings = item.settings
    return {
        "id": item.id,
        "job": job.id,
        "kind": item.kind,  # clip or image: what the page shows it in
        "status": item.status,
        "created": item.created,
        "reviewer": item.reviewer,
        "note": item.note,
        "decided": item.decided,
        "prompt": settings.get("prompt"),
        "seed": settings.get("seed"),
        "edit": (item.spec or {}).get("edit"),  # extend, remix, inpaint, outpaint; None: generated
        "published": item.status == "approved" and queue.published_path(job).is_file(),
    }
