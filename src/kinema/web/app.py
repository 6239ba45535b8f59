"""The web studio's app: a JSON API under /api and server-rendered pages, one token each.

    create_app(home, model, workers) ─► FastAPI
        app.state.context   WebContext: home, queue, tokens, limits, facts, rate limiter
                            (kinema.web.context; routes take it with Depends)
        middleware          path check (400) ─► token (401) ─► same-site writes ─► rate
                            limit (429); security headers; InputError → 400
                            (kinema.web.middleware)
        routers             kinema.web.routes: auth (/login, /logout, /api/me), uploads,
                            jobs (jobs.py parses with kinema.web.modes, then calls
                            kinema.jobs), verify and review (kinema.provenance), health
                            (workers and queue depth), pages (kinema.web.pages: templates,
                            plain JavaScript, /docs drawn from the spec, nothing from a CDN)
        lifespan            recover and trim the queue, then a supervised WorkerPool
                            (kinema.jobs.supervisor) on app.state.context.pool
        /openapi.json       FastAPI's spec, with JobRequest's bounds set to the app's Limits

The app only parses requests and calls the library: jobs go to the durable queue
(kinema.jobs) and run in worker processes the app supervises; verify and review are
kinema.provenance's. No request value reaches a filesystem path: ids must match a strict
pattern, uploads are stored under names the queue makes, and their type is read from
their content, never from their name.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from kinema.errors import InputError
from kinema.jobs.supervisor import WorkerPool
from kinema.state import HOME_ENV, kinema_home
from kinema.web import middleware
from kinema.web.context import Limits, WebContext
from kinema.web.routes import ROUTERS

__all__ = ["Limits", "create_app"]

STATIC = Path(__file__).parent / "static"
DEFAULT_LIMITS = Limits()

API_DESCRIPTION = """kinema's web studio API. Every request needs a token: the header
`Authorization: Bearer <token>` (`kinema serve token create` makes one), or the page
cookie plus `X-Kinema: 1` on writes. Errors answer `{"detail": "<what was wrong>"}`."""


class Problem(BaseModel):
    """A refusal: what was wrong, in one line."""

    detail: str


REFUSALS = (
    (400, "bad input"),
    (401, "no valid token"),
    (404, "no such job or item (for this token)"),
    (409, "not in a state for this"),
    (413, "too large"),
    (429, "too many requests"),
)


def create_app(
    home: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    workers: int = 1,
    limits: Limits = DEFAULT_LIMITS,
) -> FastAPI:
    """The studio app over state folder HOME (default KINEMA_HOME), generating with
    MODEL (a model folder; default the built-in model) in WORKERS processes started,
    supervised (a dead one is replaced) and stopped with the app (0: jobs wait for
    workers started elsewhere). LIMITS may tighten the request schema's bounds, never
    loosen them (Limits refuses that with ValueError)."""
    if workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    if home is not None:
        os.environ[HOME_ENV] = str(home)  # the library and the workers read it
    context = WebContext.open(kinema_home(), model, workers, limits)
    app = FastAPI(
        title="kinema studio",
        version=_version(),
        description=API_DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,  # FastAPI's pages load scripts from a CDN; pages.py serves /docs offline
        redoc_url=None,
        responses={code: {"description": text, "model": Problem} for code, text in REFUSALS},
    )
    app.state.context = context
    app.openapi = lambda: _openapi_with_limits(app, limits)  # type: ignore[method-assign]
    # the parts tests and tools reach for directly, as before the context existed
    app.state.queue, app.state.tokens, app.state.limits = context.queue, context.tokens, limits
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    middleware.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app


def _reconcile_review() -> None:
    """Close the review changes a crash interrupted (DESIGN.md's audit protocol: start-up
    reconciles an intent without its done entry). A broken log is reported, not fatal:
    it blocks every state change anyway until `kinema audit repair --accept`."""
    from kinema.governance import review

    try:
        review.reconcile()
    except InputError as e:
        print(f"kinema studio: review changes are blocked: {e}", file=sys.stderr)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Ready the app: import what requests need, recover the previous run's jobs, trim
    old outputs, and run the supervised workers for as long as the app runs."""
    context: WebContext = app.state.context
    queue, limits = context.queue, context.limits
    # import what requests need now: a first request importing them holds the GIL
    # and stalls every other request for as long (verify's imports take a second)
    for name in ("kinema.governance.policy", "kinema.governance.review", "kinema.provenance.verify"):
        importlib.import_module(name)

    queue.recover(all_running=True)  # the previous run's workers are gone
    _reconcile_review()
    queue.cleanup(limits.output_bytes, limits.output_age)
    if context.workers > 0:
        context.pool = WorkerPool(
            context.workers,
            queue.root,
            context.model,
            lease_seconds=limits.lease_seconds,
            max_bytes=limits.output_bytes,
            max_age=limits.output_age,
        ).start()
    try:
        yield
    finally:
        if context.pool is not None:
            context.pool.stop()
            context.pool = None


# JobRequest's bounds that are the app's Limits: (field, JSON-schema keyword, Limits field)
LIMITED_BOUNDS = (
    ("prompt", "maxLength", "prompt_chars"),
    ("negative", "maxLength", "prompt_chars"),
    ("frames", "maximum", "frames"),
    ("steps", "maximum", "steps"),
)


def _openapi_with_limits(app: FastAPI, limits: Limits) -> dict[str, Any]:
    """APP's OpenAPI spec (made once, then cached) with JobRequest's bounds set to LIMITS
    and its size field naming the side limit: the spec states what this server enforces,
    tightened limits included (looser ones Limits refuses)."""
    if app.openapi_schema is None:
        spec = FastAPI.openapi(app)  # FastAPI's own, cached on app.openapi_schema
        fields = spec["components"]["schemas"]["JobRequest"]["properties"]
        for name, keyword, limit in LIMITED_BOUNDS:
            _set_bound(fields[name], keyword, getattr(limits, limit))
        fields["size"]["description"] += f"; each side 16..{limits.side}"
    return app.openapi_schema


def _set_bound(schema: dict[str, Any], keyword: str, value: int) -> None:
    """Set KEYWORD wherever SCHEMA (a field's, optional ones being anyOf [type, null])
    states it; a field that states it nowhere is a schema that moved away: refuse."""
    found = False
    for option in [schema, *schema.get("anyOf", [])]:
        if keyword in option:
            option[keyword], found = value, True
    if not found:
        raise RuntimeError(f"JobRequest's schema no longer states {keyword} where Limits expect it")


def _version() -> str:
    import kinema

    return kinema.__version__
