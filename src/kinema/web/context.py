"""What every request of the studio shares: one `WebContext` on `app.state.context`,
reached by the routers through FastAPI dependencies (`Context`, `Caller`), never through
closures, so each router module stands alone and a test can build one from any app.

    create_app ─► WebContext(home, queue, tokens, limits, facts, limiter, model, workers)
    lifespan   ─► ctx.pool: the supervised worker processes (kinema.jobs.supervisor)
    route(ctx: Context, caller: Caller) ─► ctx.queue, ctx.limits, ... ; caller.id owns jobs
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from kinema.jobs.queue import LEASE_SECONDS, JobQueue
from kinema.jobs.supervisor import WorkerPool
from kinema.web.modes import MAX_FRAMES, MAX_SIDE, MAX_STEPS, PROMPT_CHARS, ModelFacts
from kinema.web.tokens import Token, TokenStore

__all__ = [
    "SCHEMA_CEILINGS",
    "Caller",
    "Context",
    "Limits",
    "RateLimiter",
    "WebContext",
    "caller",
    "web_context",
]


# Limits whose ceiling is a bound of the request schema (kinema.web.modes.JobRequest),
# which validation enforces before any limit is read: a looser limit could never apply.
SCHEMA_CEILINGS = {"prompt_chars": PROMPT_CHARS, "frames": MAX_FRAMES, "steps": MAX_STEPS}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how often; how long a job's lease lasts. The
    request limits default to kinema.web.modes' constants, the bounds JobRequest's schema
    states; they may be tightened (the app's OpenAPI then states the tighter numbers), not
    loosened: ValueError, as for a limit that is not positive."""

    prompt_chars: int = PROMPT_CHARS
    frames: int = MAX_FRAMES
    side: int = MAX_SIDE
    steps: int = MAX_STEPS
    image_bytes: int = 8 << 20
    upload_bytes: int = 64 << 20
    reads_per_second: float = 100.0  # 50 tabs polling every half second stay below this
    read_burst: int = 1000
    writes_per_second: float = 1.0
    write_burst: int = 30
    output_bytes: int = 2 << 30
    output_age: float = 7 * 24 * 3600.0
    lease_seconds: float = LEASE_SECONDS  # a dead worker's job waits this long at most

    def __post_init__(self) -> None:
        for limit in fields(self):
            if not getattr(self, limit.name) > 0:
                raise ValueError(f"Limits.{limit.name} must be positive, got {getattr(self, limit.name)}")
        for name, ceiling in SCHEMA_CEILINGS.items():
            if getattr(self, name) > ceiling:
                raise ValueError(
                    f"Limits.{name} = {getattr(self, name)} is looser than the request schema's "
                    f"{ceiling} (kinema.web.modes), which every request is validated against first"
                )
        if self.side < 16:
            raise ValueError(f"Limits.side must be at least 16 pixels (the smallest size), got {self.side}")


class RateLimiter:
    """Two token buckets per API token: reads (generous) and writes."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.buckets: dict[tuple[str, bool], tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, token_id: str, write: bool) -> float:
        """0 when the request may go; else the seconds until it may."""
        rate = self.limits.writes_per_second if write else self.limits.reads_per_second
        burst = self.limits.write_burst if write else self.limits.read_burst
        now = time.monotonic()
        with self.lock:
            level, then = self.buckets.get((token_id, write), (float(burst), now))
            level = min(float(burst), level + (now - then) * rate)
            if level < 1:
                self.buckets[(token_id, write)] = (level, now)
                return (1 - level) / rate
            self.buckets[(token_id, write)] = (level - 1, now)
            return 0.0


@dataclass
class WebContext:
    """The app's shared state: the state folder, the job queue, the token store, the
    limits and their rate limiter, the model's facts (read without weights), the model
    and worker count the lifespan starts workers with, and, while the app runs with
    workers, their pool (None without)."""

    home: Path
    queue: JobQueue
    tokens: TokenStore
    limits: Limits
    facts: ModelFacts
    model: str | None = None
    workers: int = 1
    pool: WorkerPool | None = None
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.limits)

    @classmethod
    def open(cls, home: Path, model: str | os.PathLike | None, workers: int, limits: Limits) -> WebContext:
        """The context over state folder HOME for MODEL (None: the built-in one)."""
        return cls(
            home=home,
            queue=JobQueue(home / "jobs", limits.lease_seconds),
            tokens=TokenStore(home),
            limits=limits,
            facts=ModelFacts.read(model),
            model=str(model) if model else None,
            workers=workers,
        )


async def web_context(request: Request) -> WebContext:
    """The dependency every router takes its shared state from (async: a plain function
    would cost each request a trip through the thread pool)."""
    return request.app.state.context


async def caller(request: Request) -> Token:
    """The dependency naming the token this request carries (the guard middleware checked
    it); its id owns the jobs, uploads and review items the request may reach."""
    return request.state.token


Context = Annotated[WebContext, Depends(web_context)]
Caller = Annotated[Token, Depends(caller)]
