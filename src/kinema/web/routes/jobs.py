"""/api/jobs: queue a generation or an edit (checked by kinema.web.modes), page through
this token's jobs, cancel, repeat with a new seed, delete, download the working file (a
clip's mp4, a still's png), see a running job's live preview, and publish an approved
take (the review gate decides)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from kinema.errors import InputError
from kinema.jobs.queue import ID_PATTERN, Job, JobError
from kinema.jobs.worker import preview_path
from kinema.web.context import Caller, Context, WebContext
from kinema.web.modes import JobRequest, job_params, recheck
from kinema.web.tokens import Token

__all__ = ["router"]

router = APIRouter()

# a take's file: a clip, or a still (mode t2v or i2v with still)
MEDIA_TYPES = {".mp4": "video/mp4", ".png": "image/png"}
TAKE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the take: a clip (mp4) or a still (png)",
        "content": {m: {} for m in MEDIA_TYPES.values()},
    }
}
# documented in the spec, checked by the handlers (a bad id is a 400 with a message)
JobId = Annotated[
    str, PathParam(description="a job id: 16 hex digits", json_schema_extra={"pattern": ID_PATTERN.pattern})
]


@router.post("/api/jobs", status_code=201)
def submit(ctx: Context, caller: Caller, job: JobRequest) -> dict[str, Any]:
    """Queue a generation job in any mode (t2v, i2v, keyframes, extend, remix, inpaint,
    outpaint; loop or still with t2v and i2v); returns it (status "queued", its seed fixed)."""
    params = job_params(job, caller.id, ctx.queue, ctx.limits, ctx.facts)
    return ctx.queue.submit(caller.id, params).to_dict()


@router.get("/api/jobs")
def list_jobs(
    ctx: Context,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    status: Literal["queued", "running", "done", "failed", "cancelled"] | None = None,
) -> dict[str, Any]:
    """This token's jobs, newest first, a page at a time."""
    items, total = ctx.queue.list(caller.id, status, limit, offset)
    return {"items": _with_review(items), "total": total, "limit": limit, "offset": offset}


@router.get("/api/jobs/{job_id}")
def get_job(ctx: Context, caller: Caller, job_id: JobId) -> dict[str, Any]:
    """One job: status, progress {i, n}, params, error, and its take's review state."""
    return _with_review([_own_job(ctx, caller, job_id)])[0]


@router.post("/api/jobs/{job_id}/cancel")
def cancel_job(ctx: Context, caller: Caller, job_id: JobId) -> dict[str, Any]:
    """Cancel a queued job, or stop a running one at its next step."""
    job = _own_job(ctx, caller, job_id)
    return ctx.queue.cancel(job.id, job.owner).to_dict()


@router.post("/api/jobs/{job_id}/again", status_code=201)
def again(ctx: Context, caller: Caller, job_id: JobId) -> dict[str, Any]:
    """More like this: the same job with a new seed (its uploads and source take must
    still be there)."""
    job = _own_job(ctx, caller, job_id)
    recheck(job.params, job.owner, ctx.queue)
    return ctx.queue.submit(job.owner, {**job.params, "seed": secrets.randbelow(2**31)}).to_dict()


@router.delete("/api/jobs/{job_id}", status_code=204)
def delete_job(ctx: Context, caller: Caller, job_id: JobId) -> Response:
    """Delete a job and its file (a running job stops)."""
    job = _own_job(ctx, caller, job_id)
    ctx.queue.delete(job.id, job.owner)
    return Response(status_code=204)


@router.get("/api/jobs/{job_id}/file", response_class=FileResponse, responses=TAKE)
def download(ctx: Context, caller: Caller, job_id: JobId, download: bool = False) -> FileResponse:
    """The job's take: a clip (mp4) or a still (png). It is a working file: pending review
    until approved."""
    job = _own_job(ctx, caller, job_id)
    path = ctx.queue.output_path(job)
    if path is None:
        raise HTTPException(409, f"job {job.id} is {job.status}; it has no file yet")
    return _take_file(path, f"kinema-{job.id}", "attachment" if download else "inline")


PREVIEW: dict[int | str, dict[str, Any]] = {
    200: {"description": "a contact sheet of the clip as sampled so far", "content": {"image/png": {}}},
    404: {"description": "no such job, or it has no preview (not running, or no step shown yet)"},
}


@router.get("/api/jobs/{job_id}/preview", response_class=Response, responses=PREVIEW)
def preview(ctx: Context, caller: Caller, job_id: JobId) -> Response:
    """The running job's live preview: a PNG contact sheet of the clip as sampled so far
    (the model's current estimate, every other frame), replaced every few steps and
    removed when the job ends; poll it beside the step counter. 404 before the first
    preview, after the job ends, and for a model that shows none (diffusers models)."""
    job = _own_job(ctx, caller, job_id)
    try:
        data = preview_path(ctx.queue, job.id).read_bytes() if job.status == "running" else None
    except FileNotFoundError:  # not written yet, or removed as the render ended
        data = None
    if data is None:
        state = "has no preview yet" if job.status in ("queued", "running") else f"is {job.status}"
        raise HTTPException(404, f"job {job.id} {state}; a preview exists only while it renders")
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/api/jobs/{job_id}/publish", status_code=201)
def publish_take(ctx: Context, caller: Caller, job_id: JobId) -> dict[str, Any]:
    """Publish an approved take (as `kinema export` does): a copy whose C2PA manifest
    records the review decision. 409 unless the take is approved (pending, rejected,
    withdrawn, superseded), or while the audit log is broken."""
    from kinema.governance import audit, review

    job = _own_job(ctx, caller, job_id)
    item = _approved_item(ctx, job)
    try:
        review.export(item.id, ctx.queue.published_path(job), by=caller.identity)
    except (review.StateError, audit.AuditBroken) as exc:
        raise HTTPException(409, str(exc)) from None
    return {"job": job.id, "review_id": item.id, "url": f"/api/jobs/{job.id}/published"}


@router.get("/api/jobs/{job_id}/published", response_class=FileResponse, responses=TAKE)
def download_published(ctx: Context, caller: Caller, job_id: JobId) -> FileResponse:
    """The published copy of an approved take (POST .../publish makes it)."""
    job = _own_job(ctx, caller, job_id)
    _approved_item(ctx, job)  # a take rejected after publishing is no longer handed out
    path = ctx.queue.published_path(job)
    if not path.is_file():
        raise HTTPException(409, f"take {job.id} is approved but not published yet (POST .../publish)")
    return _take_file(path, f"kinema-{job.id}-published", "attachment")


def _with_review(jobs: list[Job]) -> list[dict[str, Any]]:
    """The jobs' dicts, each with its take's review state ("review_status": pending,
    approved, rejected, withdrawn, superseded; None while it has no take)."""
    from kinema.governance import review

    found = review.statuses(j.record["id"] for j in jobs if (j.record or {}).get("id"))
    return [{**j.to_dict(), "review_status": found.get((j.record or {}).get("id"))} for j in jobs]


def _take_file(path: Path, stem: str, disposition: Literal["inline", "attachment"]) -> FileResponse:
    """PATH (a take's clip or still) sent as STEM plus its own suffix, with its media type."""
    suffix = path.suffix.lower()
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
        filename=stem + suffix,
        content_disposition_type=disposition,
    )


def _own_job(ctx: WebContext, caller: Token, job_id: str) -> Job:
    """The job JOB_ID of CALLER's token: a bad id is a 400, another token's job a 404."""
    if not ID_PATTERN.match(job_id):
        raise InputError(f"bad job id '{job_id[:40]}': ids are 16 hex digits")
    try:
        return ctx.queue.get(job_id, caller.id)
    except JobError:
        raise HTTPException(404, f"no job with id '{job_id}'") from None


def _approved_item(ctx: WebContext, job: Job):
    """The review item of a done take, refused (409) unless it is approved."""
    from kinema.governance import review

    if ctx.queue.output_path(job) is None or not (job.record or {}).get("id"):
        raise HTTPException(409, f"job {job.id} is {job.status}; it has no take to publish")
    item = review.get(job.record["id"])
    if item.status != "approved":
        raise HTTPException(
            409, f"take {job.id} is {item.status}; only approved takes can be published (see the Review page)"
        )
    return item
