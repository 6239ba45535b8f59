"""GET /api/health: are the workers alive, and how deep is the queue.

It needs a token like every API request (DESIGN.md: only the login page and static files
go without); it names no job and no owner, only counts, so any token may read it.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kinema.web.context import Context

__all__ = ["Health", "router"]

router = APIRouter()


class WorkerSlot(BaseModel):
    """One worker place and its latest process."""

    index: int
    pid: int | None = Field(description="the running process's id; null while there is none")
    state: Literal["starting", "ready", "down", "backing off", "stopped"] = Field(
        description="starting: loading its model; down: dead, about to be replaced; backing off: "
        "dead again soon after a start, replaced after next_start_in seconds"
    )
    starts: int = Field(description="processes started in this place, the first included")
    up_seconds: float | None
    last_exit: str | None = Field(description="how the previous process ended, e.g. 'killed by SIGKILL ...'")
    last_error: str | None = Field(description="why it could not start (the worker's one line)")
    next_start_in: float | None = Field(description="seconds until a replacement starts")


class Workers(BaseModel):
    """The server's worker processes."""

    expected: int = Field(description="worker processes this server runs (kinema serve --workers)")
    alive: int = Field(description="processes running (starting or ready)")
    ready: int = Field(description="processes with their model loaded, taking jobs")
    restarts: int = Field(description="replacements started since the server started")
    slots: list[WorkerSlot]


class QueueDepth(BaseModel):
    """The job queue, all owners together (counts only)."""

    queued: int
    running: int
    oldest_queued_age: float | None = Field(description="seconds the oldest queued job has waited")
    lease_seconds: float = Field(description="how long a dead worker's job may wait to be taken back")


class Health(BaseModel):
    """ok: every expected worker is alive; degraded: one is down or backing off."""

    status: Literal["ok", "degraded"]
    workers: Workers
    queue: QueueDepth


@router.get("/api/health")
def health(ctx: Context) -> Health:
    """Workers alive (and expected), restarted or backing off, and the queue's depth:
    queued and running jobs and the oldest queued job's age."""
    pool = ctx.pool
    workers = (
        pool.health()
        if pool is not None
        else {"expected": 0, "alive": 0, "ready": 0, "restarts": 0, "slots": []}
    )
    return Health(
        status="ok" if workers["alive"] >= workers["expected"] else "degraded",
        workers=Workers(**workers),
        queue=QueueDepth(**ctx.queue.depth(), lease_seconds=ctx.limits.lease_seconds),
    )
