"""The web studio's app: a JSON API under /api and server-rendered pages, one token each.

    create_app(home, model, workers) ─► FastAPI
        middleware: path check (400) ─► token (401) ─► same-site writes ─► rate limit (429)
        /api/...   parse and check the request (jobs: kinema.web.modes), then call
                   kinema.jobs / kinema.provenance
        /...       pages (kinema.web.pages): templates and a little plain JavaScript;
                   /docs is the API reference drawn from the spec, nothing from a CDN

The app only parses requests and calls the library: jobs go to the durable queue
(kinema.jobs) and run in worker processes started with the app; verify and review are
kinema.provenance's. No request value reaches a filesystem path: ids must match a strict
pattern, uploads are stored under names the queue makes, and their type is read from
their content, never from their name.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from kinema.errors import InputError
from kinema.jobs.queue import ID_PATTERN, Job, JobError, JobQueue
from kinema.state import HOME_ENV, kinema_home
from kinema.web.modes import JobRequest, ModelFacts, job_params, recheck
from kinema.web.tokens import TokenStore

__all__ = ["Limits", "create_app"]

COOKIE = "kinema_token"
WRITE_HEADER = "x-kinema"  # pages send it on writes; another site's form cannot
REVIEW_ID = re.compile(r"^[0-9a-f]{4,64}$")
STATIC = Path(__file__).parent / "static"
CSP = "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; frame-ancestors 'none'; form-action 'self'"
MAX_SIDE = 4096  # of an uploaded image
CLIP: dict[int | str, dict[str, Any]] = {200: {"description": "the clip", "content": {"video/mp4": {}}}}
# documented in the spec, checked by the handlers (a bad id is a 400 with a message)
JobId = Annotated[
    str, PathParam(description="a job id: 16 hex digits", json_schema_extra={"pattern": ID_PATTERN.pattern})
]
ItemId = Annotated[
    str, PathParam(description="a review item id", json_schema_extra={"pattern": REVIEW_ID.pattern})
]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how often."""

    prompt_chars: int = 500
    frames: int = 256
    side: int = 512
    steps: int = 100
    image_bytes: int = 8 << 20
    upload_bytes: int = 64 << 20
    reads_per_second: float = 100.0  # 50 tabs polling every half second stay below this
    read_burst: int = 1000
    writes_per_second: float = 1.0
    write_burst: int = 30
    output_bytes: int = 2 << 30
    output_age: float = 7 * 24 * 3600.0


API_DESCRIPTION = """kinema's web studio API. Every request needs a token: the header
`Authorization: Bearer <token>` (`kinema serve token create` makes one), or the page
cookie plus `X-Kinema: 1` on writes. Errors answer `{"detail": "<what was wrong>"}`."""


class Problem(BaseModel):
    """A refusal: what was wrong, in one line."""

    detail: str


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=1000)


# content sniffing: the first bytes say what a file is, whatever its name
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif"}


def _media_suffix(head: bytes) -> str | None:
    for magic, suffix in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return suffix
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:10] == b"qt" else ".mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm" if b"webm" in head[:64] else ".mkv"
    return None


def create_app(
    home: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    workers: int = 1,
    limits: Limits = Limits(),
) -> FastAPI:
    """The studio app over state folder HOME (default KINEMA_HOME), generating with
    MODEL (a model folder; default the built-in model) in WORKERS processes started
    and stopped with the app (0: jobs wait for workers started elsewhere)."""
    if home is not None:
        os.environ[HOME_ENV] = str(home)  # the library and the workers read it
    home = kinema_home()
    queue = JobQueue(home / "jobs")
    tokens = TokenStore(home)
    limiter = _RateLimiter(limits)
    facts = ModelFacts.read(model)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from kinema.jobs.worker import start_workers, stop_workers

        # import what requests need now: a first request importing them holds the GIL
        # and stalls every other request for as long (verify's imports take a second)
        for name in ("kinema.provenance.policy", "kinema.provenance.review", "kinema.provenance.verify"):
            importlib.import_module(name)

        queue.recover(all_running=True)  # the previous run's workers are gone
        queue.cleanup(limits.output_bytes, limits.output_age)
        started = (
            start_workers(
                workers,
                queue.root,
                str(model) if model else None,
                max_bytes=limits.output_bytes,
                max_age=limits.output_age,
            )
            if workers > 0
            else ([], None)
        )
        try:
            yield
        finally:
            if started[0]:
                stop_workers(*started)

    app = FastAPI(
        title="kinema studio",
        version=_version(),
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load scripts from a CDN; pages.py serves /docs offline
        redoc_url=None,
        responses={
            code: {"description": text, "model": Problem}
            for code, text in (
                (400, "bad input"),
                (401, "no valid token"),
                (404, "no such job or item (for this token)"),
                (409, "not in a state for this"),
                (413, "too large"),
                (429, "too many requests"),
            )
        },
    )
    app.state.queue, app.state.tokens, app.state.limits = queue, tokens, limits
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        raw = request.scope.get("raw_path") or request.url.path.encode()
        if _bad_path(raw, request.url.path):
            return _error(400, "bad path: '..', encoded slashes and backslashes are refused")
        path = request.url.path
        if path == "/login" or path.startswith("/static/") or path == "/favicon.ico":
            return await call_next(request)
        token, via_cookie = _token(request, tokens)
        if token is None:
            if path.startswith("/api") or path == "/openapi.json":
                return _error(401, "a token is needed: 'Authorization: Bearer <token>' or visit /login")
            return RedirectResponse("/login", status_code=303)
        write = request.method not in ("GET", "HEAD", "OPTIONS")
        if write and via_cookie and request.headers.get(WRITE_HEADER) != "1":
            return _error(403, f"writes from a page need the '{WRITE_HEADER}: 1' header")
        length = request.headers.get("content-length")
        if length and (not length.isdigit() or int(length) > limits.upload_bytes + (1 << 16)):
            return _error(413, f"request too large: at most {limits.upload_bytes} bytes")
        wait = limiter.take(token.id, write)
        if wait:
            return _error(429, "too many requests; slow down", {"Retry-After": str(max(1, round(wait)))})
        request.state.token = token
        return await call_next(request)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        # outermost: every answer, refusals included, gets these
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")  # login URLs carry a token
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        return _error(400, str(exc))

    # ------------------------------------------------------------------ login

    @app.get("/login", include_in_schema=False)
    def login(request: Request, token: str | None = None):
        from kinema.web.pages import login_page

        if token is None:
            return login_page(request)
        if tokens.check(token) is None:
            return login_page(request, "that token is not valid (revoked or mistyped)", 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=30 * 24 * 3600,
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout():
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # ------------------------------------------------------------------ jobs

    @app.get("/api/me")
    def me(request: Request) -> dict[str, Any]:
        """The token this request carries (its id owns the jobs), the limits, and the
        model: its name, the modes it serves and its defaults."""
        token = request.state.token
        return {
            "token": {"id": token.id, "name": token.name},
            "limits": limits.__dict__,
            "model": facts.summary(),
        }

    @app.post("/api/uploads", status_code=201)
    def upload(request: Request, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """Upload an image (PNG, JPEG, GIF or WebP; checked by decoding it): a first or last
        image (i2v, keyframes) or an inpaint mask (PNG); or an mp4 or webm clip of your own
        to edit (`source_clip` of extend, remix, inpaint, outpaint). Returns its id and kind.
        Images and clips showing a face need a consent record."""
        from kinema.io import read_image
        from kinema.provenance.policy import check_likeness

        data = _read_upload(file, limits.upload_bytes)
        suffix = _media_suffix(data[:64])
        if suffix in (".mp4", ".webm"):
            return _clip_upload(request, file, data, suffix)
        if suffix not in (".png", ".jpg", ".gif", ".webp"):
            raise InputError(
                "the upload is not a PNG, JPEG, GIF or WebP image, nor an mp4 or webm clip (judged by its content)"
            )
        if len(data) > limits.image_bytes:
            raise HTTPException(413, f"an image upload is at most {limits.image_bytes} bytes")
        _check_declared_size(data, suffix)  # before decoding: a small file may claim a huge image
        with _scratch(home, data, suffix) as path:
            pixels = read_image(path)
            h, w = pixels.shape[:2]
            if max(w, h) > MAX_SIDE:
                raise InputError(f"the image is {w}x{h}; at most {MAX_SIDE} pixels a side")
            check_likeness(pixels, source=file.filename and _label(file.filename))
        input_id = queue.save_input(request.state.token.id, data, suffix)
        return {"id": input_id, "kind": "image", "width": w, "height": h}

    def _clip_upload(request: Request, file: UploadFile, data: bytes, suffix: str) -> dict[str, Any]:
        """A clip of the user's own to edit (extend, remix, inpaint, outpaint): its stream's
        declared size is checked before any frame is decoded, then at most the frame limit
        is decoded, and every frame is checked for faces without consent."""
        from kinema.io import read_video
        from kinema.io.video import video_header
        from kinema.provenance.policy import check_likeness

        with _scratch(home, data, suffix) as path:
            w, h, _ = video_header(path)  # before decoding: a small file may declare a huge frame
            if max(w, h) > limits.side:
                raise InputError(f"the clip is {w}x{h}; at most {limits.side} pixels a side")
            video = read_video(path, max_frames=limits.frames + 1)
            if video.num_frames > limits.frames:
                raise InputError(f"the clip has more than {limits.frames} frames; at most {limits.frames}")
            check_likeness(video.frames, source=file.filename and _label(file.filename))
        facts = {"width": video.width, "height": video.height, "frames": video.num_frames, "fps": video.fps}
        # kept with the file: a webm records no frame count, and every edit request needs it
        input_id = queue.save_input(request.state.token.id, data, suffix, facts=facts)
        return {"id": input_id, "kind": "clip", **facts}

    @app.post("/api/jobs", status_code=201)
    def submit(request: Request, job: JobRequest) -> dict[str, Any]:
        """Queue a generation job in any mode (t2v, i2v, keyframes, extend, remix, inpaint,
        outpaint; loop with t2v and i2v); returns it (status "queued", its seed fixed)."""
        owner = request.state.token.id
        return queue.submit(owner, job_params(job, owner, queue, limits, facts)).to_dict()

    @app.get("/api/jobs")
    def list_jobs(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        status: Literal["queued", "running", "done", "failed", "cancelled"] | None = None,
    ) -> dict[str, Any]:
        """This token's jobs, newest first, a page at a time."""
        items, total = queue.list(request.state.token.id, status, limit, offset)
        return {"items": [j.to_dict() for j in items], "total": total, "limit": limit, "offset": offset}

    @app.get("/api/jobs/{job_id}")
    def get_job(request: Request, job_id: JobId) -> dict[str, Any]:
        """One job: status, progress {i, n}, params, error."""
        return _own_job(queue, request, job_id).to_dict()

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel_job(request: Request, job_id: JobId) -> dict[str, Any]:
        """Cancel a queued job, or stop a running one at its next step."""
        job = _own_job(queue, request, job_id)
        return queue.cancel(job.id, job.owner).to_dict()

    @app.post("/api/jobs/{job_id}/again", status_code=201)
    def again(request: Request, job_id: JobId) -> dict[str, Any]:
        """More like this: the same job with a new seed (its uploads and source take must
        still be there)."""
        job = _own_job(queue, request, job_id)
        recheck(job.params, job.owner, queue)
        return queue.submit(job.owner, {**job.params, "seed": secrets.randbelow(2**31)}).to_dict()

    @app.delete("/api/jobs/{job_id}", status_code=204)
    def delete_job(request: Request, job_id: JobId) -> Response:
        """Delete a job and its file (a running job stops)."""
        job = _own_job(queue, request, job_id)
        queue.delete(job.id, job.owner)
        return Response(status_code=204)

    @app.get("/api/jobs/{job_id}/file", response_class=FileResponse, responses=CLIP)
    def download(request: Request, job_id: JobId, download: bool = False) -> FileResponse:
        """The job's clip (mp4). It is a working file: pending review until approved."""
        job = _own_job(queue, request, job_id)
        path = queue.output_path(job)
        if path is None:
            raise HTTPException(409, f"job {job.id} is {job.status}; it has no file yet")
        return FileResponse(
            path,
            media_type="video/mp4",
            filename=f"kinema-{job.id}.mp4",
            content_disposition_type="attachment" if download else "inline",
        )

    @app.post("/api/jobs/{job_id}/publish", status_code=201)
    def publish_take(request: Request, job_id: JobId) -> dict[str, Any]:
        """Publish an approved take (as `kinema export` does): a copy whose C2PA manifest
        records the review decision. 409 until the take is approved on the review page."""
        from kinema.provenance import review

        job = _own_job(queue, request, job_id)
        item = _review_item(queue, job)
        review.export(item.id, queue.published_path(job.id))
        return {"job": job.id, "review_id": item.id, "url": f"/api/jobs/{job.id}/published"}

    @app.get("/api/jobs/{job_id}/published", response_class=FileResponse, responses=CLIP)
    def download_published(request: Request, job_id: JobId) -> FileResponse:
        """The published copy of an approved take (POST .../publish makes it)."""
        job = _own_job(queue, request, job_id)
        _review_item(queue, job)  # a take rejected after publishing is no longer handed out
        path = queue.published_path(job.id)
        if not path.is_file():
            raise HTTPException(409, f"take {job.id} is approved but not published yet (POST .../publish)")
        return FileResponse(
            path,
            media_type="video/mp4",
            filename=f"kinema-{job.id}-published.mp4",
            content_disposition_type="attachment",
        )

    # ------------------------------------------------------------------ verify

    @app.post("/api/verify")
    def verify(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """Provenance of an uploaded media file: C2PA state and watermark (the JSON of
        `kinema verify`)."""
        from kinema.provenance.verify import verify_file

        data = _read_upload(file, limits.upload_bytes)
        suffix = _media_suffix(data[:64])
        if suffix is None:
            raise InputError("not a media file kinema reads (mp4, mov, webm, mkv, gif, png, jpeg, webp, wav)")
        with _scratch(home, data, suffix) as path:
            report = verify_file(path)
        report["file"] = _label(file.filename or "upload")
        return report

    # ------------------------------------------------------------------ review

    @app.get("/api/review")
    def review_list(
        request: Request, status: Literal["pending", "approved", "rejected"] | None = None
    ) -> dict[str, Any]:
        """Review items of this token's clips (all, or those with STATUS)."""
        from kinema.provenance import review

        owned = _owned_reviews(queue, request.state.token.id)
        items = [i for i in review.list_items(status) if i.id in owned]
        return {"items": [_review_dict(i, owned[i.id], queue) for i in items]}

    @app.post("/api/review/{item_id}/{decision}")
    def review_decide(
        request: Request,
        item_id: ItemId,
        decision: Literal["approve", "reject"],
        body: Annotated[Note | None, Body()] = None,
    ) -> dict[str, Any]:
        """Approve or reject one of this token's clips, with an optional note."""
        from kinema.provenance import review

        if not REVIEW_ID.match(item_id):
            raise InputError(f"bad review id '{item_id[:40]}'")
        owned = _owned_reviews(queue, request.state.token.id)
        if item_id not in owned:
            raise HTTPException(404, f"no review item '{item_id}'")
        act = review.approve if decision == "approve" else review.reject
        note = body.note if body else ""
        item = act(item_id, note=note or None, reviewer=f"web:{request.state.token.name}")
        if decision == "reject":
            queue.published_path(owned[item_id]).unlink(missing_ok=True)  # withdrawn
        return _review_dict(item, owned[item_id], queue)

    from kinema.web.pages import router

    app.include_router(router)
    return app


# ---------------------------------------------------------------------- helpers


class _RateLimiter:
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


def _bad_path(raw: bytes, path: str) -> bool:
    lowered = raw.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"\\" in lowered or b"%00" in lowered:
        return True
    segments = [s for s in path.split("/")] + [s for s in lowered.decode("latin-1").split("/")]
    return any(s in ("..", ".", "%2e%2e", ".%2e", "%2e.", "%2e") for s in segments)


def _token(request: Request, tokens: TokenStore):
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return tokens.check(header[7:].strip()), False
    cookie = request.cookies.get(COOKIE)
    return (tokens.check(cookie), True) if cookie else (None, False)


def _own_job(queue: JobQueue, request: Request, job_id: str) -> Job:
    if not ID_PATTERN.match(job_id):
        raise InputError(f"bad job id '{job_id[:40]}': ids are 16 hex digits")
    try:
        return queue.get(job_id, request.state.token.id)
    except JobError:
        raise HTTPException(404, f"no job with id '{job_id}'") from None


def _owned_reviews(queue: JobQueue, owner: str) -> dict[str, str]:
    """review item id → job id, over this owner's done jobs."""
    owned: dict[str, str] = {}
    offset = 0
    while True:
        page, total = queue.list(owner, "done", 200, offset)
        owned.update({j.record["id"]: j.id for j in page if j.record and j.record.get("id")})
        offset += len(page)
        if not page or offset >= total:
            return owned


def _review_item(queue: JobQueue, job: Job):
    """The review item of a done take, refused (409) unless it is approved."""
    from kinema.provenance import review

    if queue.output_path(job) is None or not (job.record or {}).get("id"):
        raise HTTPException(409, f"job {job.id} is {job.status}; it has no take to publish")
    item = review.get(job.record["id"])
    if item.status != "approved":
        raise HTTPException(
            409, f"take {job.id} is {item.status}; only approved takes can be published (see the Review page)"
        )
    return item


def _review_dict(item, job_id: str, queue: JobQueue) -> dict[str, Any]:
    settings = item.settings
    return {
        "id": item.id,
        "job": job_id,
        "status": item.status,
        "created": item.created,
        "reviewer": item.reviewer,
        "note": item.note,
        "decided": item.decided,
        "prompt": settings.get("prompt"),
        "seed": settings.get("seed"),
        "edit": (item.spec or {}).get("edit"),  # extend, remix, inpaint, outpaint; None: generated
        "published": item.status == "approved" and queue.published_path(job_id).is_file(),
    }


def _read_upload(file: UploadFile, limit: int) -> bytes:
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"the upload is larger than {limit} bytes")
    if not data:
        raise InputError("the upload is empty")
    return data


class _scratch:
    """A private temporary file holding DATA under HOME/web/tmp, removed afterwards."""

    def __init__(self, home: Path, data: bytes, suffix: str):
        self.folder = home / "web" / "tmp"
        self.data, self.suffix = data, suffix

    def __enter__(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=self.suffix, dir=self.folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.data)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def _check_declared_size(data: bytes, suffix: str) -> None:
    """Refuse a PNG or GIF whose header declares more than MAX_SIDE pixels a side."""
    if suffix == ".png" and len(data) >= 24:
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    elif suffix == ".gif" and len(data) >= 10:
        w, h = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    else:
        return
    if max(w, h) > MAX_SIDE:
        raise InputError(f"the image is {w}x{h}; at most {MAX_SIDE} pixels a side")


def _label(name: str) -> str:
    """A file name fit to echo back: its last part, printable, short."""
    base = re.split(r"[\\/]", name)[-1]
    return "".join(c for c in base if c.isprintable())[:100] or "upload"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _version() -> str:
    import kinema

    return kinema.__version__
