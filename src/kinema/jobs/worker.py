"""Worker processes: claim a job, render it through the request layer, publish, repeat.

A job's params become a ClipRequest (kinema.jobs.requests), which is checked and
rendered exactly as the command line checks and renders its own (kinema.render): the
same request gives the same pixels and settings from either door, and inputs are
policy-checked again here (a consent revoked since the job was queued is honoured).
The file goes through `kinema.publish` (watermark, C2PA manifest with the uploads or the
source take as ingredients, sidecar, review queue) to outputs/<job id>.mp4 (a still's to
outputs/<job id>.png: kinema.jobs.queue.output_name), written under a temporary name and
renamed into place.

While a job renders, the worker keeps a contact sheet of the clip as sampled so far at
previews/<job id>.png (`preview_path`; kinema.render.preview: watermarked, rewritten
atomically every PREVIEW_EVERY steps, removed when the render ends), which the web
studio shows beside the step counter. Outside outputs/, a killed worker's last sheet is
never taken for a take; workers clear the sheets of jobs no longer running.

A worker process exits when told to stop or when its parent process is gone (handing
its job back). The web server runs its workers through kinema.jobs.supervisor, which
replaces a dead one and takes its job back.

A heartbeat thread keeps a running job's lease while a long step (a VAE decode, a
publish) holds the main thread, but only while the job moves: every sampler step and
every phase (check, render, publish) counts, and once none has come for STALL_SECONDS the
thread stops renewing the lease and calls ON_STALL. A worker hung alive inside a step
(a deadlock, a stuck read) then no longer keeps its job: the lease runs out and the
queue takes the job back as a lost run, retried once. A supervised worker also exits
(kinema.jobs.supervisor replaces it at once).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.jobs.queue import LEASE_SECONDS, Cancelled, Job, JobQueue, output_name
from kinema.jobs.requests import EDITS, GENERATE, MODES, clip_request

__all__ = [
    "EDITS",
    "GENERATE",
    "MODES",
    "STALL_SECONDS",
    "PREVIEW_EVERY",
    "WORKER_NICE",
    "Steps",
    "clear_previews",
    "preview_path",
    "run_job",
    "work",
    "worker_name",
]

POLL_SECONDS = 0.5
CLEANUP_SECONDS = 300.0
# A running job whose steps stop for this long is given up by its worker: generous, since
# one step of a large model on a CPU, or a long clip's decode, can take minutes.
STALL_SECONDS = 600.0
PREVIEW_EVERY = 4  # sampler steps between two previews of a running job

OnStall = Callable[[Job, float], None]  # (the job, seconds since its last step)


class Steps:
    """When the running job last moved (a sampler step or a new phase), thread-safe."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def advance(self) -> None:
        """The job just moved."""
        with self._lock:
            self._last = time.monotonic()

    def idle(self) -> float:
        """Seconds since the job last moved."""
        with self._lock:
            return time.monotonic() - self._last


class Orphaned(Exception):
    """The process that started this worker is gone: hand the job back and stop."""


def run_job(
    queue: JobQueue,
    job: Job,
    pipe,
    facts,
    alive: Callable[[], bool] = lambda: True,
    stall_seconds: float = STALL_SECONDS,
    on_stall: OnStall | None = None,
) -> bool:
    """Run one claimed JOB with PIPE (whose model's facts are FACTS) and record the
    outcome; True when it completed. ALIVE is asked at every step; when it says False the
    job goes back to the queue. When no step or phase comes for STALL_SECONDS the lease
    is no longer renewed and ON_STALL(job, idle seconds) is called (module doc)."""
    from kinema.publish import publish_rendered
    from kinema.render import check, render
    from kinema.render.preview import PreviewFile

    steps = Steps()

    def progress(i: int, n: int) -> None:
        steps.advance()
        if not alive():
            raise Orphaned(job.id)
        if not queue.progress(job, i, n):
            raise Cancelled(job.id)

    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(queue, job, stop, steps, stall_seconds, on_stall), daemon=True
    )
    beat.start()
    try:
        checked = check(clip_request(job.params, job.owner, queue), facts)
        steps.advance()
        path = preview_path(queue, job.id)
        path.parent.mkdir(exist_ok=True)
        sheet = PreviewFile(path, checked.request, PREVIEW_EVERY)
        with sheet.removed():
            rendered = render(pipe, checked, progress, sheet.preview)
        steps.advance()
        if not queue.heartbeat(job):
            raise Cancelled(job.id)
        name = output_name(job)
        record = publish_rendered(rendered, queue.outputs / name, creator=f"token:{job.owner}")
    except Orphaned:
        stop.set()
        queue.release(job)
        return False
    except Cancelled:
        stop.set()
        queue.fail(job, "cancelled", cancelled=True)
        _discard_if_gone(queue, job)
        return False
    except InputError as exc:
        stop.set()
        queue.fail(job, str(exc))
        return False
    except Exception as exc:  # a worker survives a bad job; the reason is kept on the job
        stop.set()
        traceback.print_exc()
        queue.fail(job, f"internal error: {type(exc).__name__}: {exc}")
        return False
    finally:
        stop.set()
    done = queue.complete(job, name, record)
    if not done:
        _discard_if_gone(queue, job)
    return done


def work(
    root: str | os.PathLike | None = None,
    model: str | None = None,
    worker: str | None = None,
    stop: Any = None,
    once: bool = False,
    max_bytes: int | None = None,
    max_age: float | None = None,
    nice: int = 0,
    lease_seconds: float = LEASE_SECONDS,
    on_ready: Callable[[], None] | None = None,
    stall_seconds: float = STALL_SECONDS,
    on_stall: OnStall | None = None,
) -> int:
    """The worker loop: claim and run jobs until STOP (an Event) is set, the parent
    process is gone or, with ONCE, the queue is empty. Returns the number completed.
    NICE lowers this process's CPU priority by that much; a job's lease lasts
    LEASE_SECONDS past each heartbeat; ON_READY is called once the model has loaded.
    STALL_SECONDS and ON_STALL: see run_job."""
    from kinema.pipelines.facts import ModelFacts
    from kinema.pipelines.loading import load

    if nice:
        os.nice(nice)

    queue = JobQueue(root, lease_seconds)
    worker = worker or worker_name()
    parent = os.getppid()
    pipe = load(model)  # before any claim: a model that cannot load strands no job
    facts = ModelFacts.read(model)
    if on_ready is not None:
        on_ready()
    completed = 0
    last_cleanup = 0.0
    while not (stop is not None and stop.is_set()) and os.getppid() == parent:
        queue.recover()
        if time.time() - last_cleanup > CLEANUP_SECONDS:
            clear_previews(queue)
            if max_bytes or max_age:
                queue.cleanup(max_bytes, max_age)
            last_cleanup = time.time()
        job = queue.claim(worker)
        if job is None:
            if once:
                break
            time.sleep(POLL_SECONDS)
            continue
        completed += run_job(
            queue,
            job,
            pipe,
            facts,
            alive=lambda: os.getppid() == parent,
            stall_seconds=stall_seconds,
            on_stall=on_stall,
        )
    return completed


def preview_path(queue: JobQueue, job_id: str) -> Path:
    """Where the running job JOB_ID's preview sheet is (present only while it renders)."""
    return queue.root / "previews" / f"{job_id}.png"


def clear_previews(queue: JobQueue) -> None:
    """Remove the preview sheets of jobs that are not running (left by a killed worker,
    or by a job deleted while it ran), and stray temporary files beside them."""
    folder = queue.root / "previews"
    for path in folder.glob("*.png") if folder.is_dir() else ():
        if path.name.startswith("."):  # a sheet being written: only an old one is stray
            with contextlib.suppress(FileNotFoundError):  # renamed into place meanwhile
                if path.stat().st_mtime < time.time() - 3600:
                    path.unlink(missing_ok=True)
            continue
        try:
            running = queue.get(path.name.split(".")[0]).status == "running"
        except InputError:  # no such job (any more), or a name that is not a job's
            running = False
        if not running:
            path.unlink(missing_ok=True)


WORKER_NICE = 10  # generation yields the CPU to the server answering requests


def worker_name(pid: int | None = None) -> str:
    """The name a worker process (PID, default this one) holds its jobs under: the
    queue's `worker` column, by which kinema.jobs.supervisor takes back a dead one's job."""
    return f"{os.uname().nodename}:{os.getpid() if pid is None else pid}"


def _heartbeat(
    queue: JobQueue,
    job: Job,
    stop: threading.Event,
    steps: Steps,
    stall_seconds: float,
    on_stall: OnStall | None,
) -> None:
    """Keep JOB's lease while a long step runs, as long as the job moves (module doc)."""
    while not stop.wait(min(queue.lease_seconds, stall_seconds) / 4):
        idle = steps.idle()
        if idle >= stall_seconds:
            # stop vouching for a job that does not move: its lease runs out and the queue
            # takes it back as a lost run (retried once), whatever this process does next
            if on_stall is not None:
                on_stall(job, idle)
            return
        queue.heartbeat(job)


def _discard_if_gone(queue: JobQueue, job: Job) -> None:
    """A job deleted while it ran leaves no file behind (a re-queued one keeps its name)."""
    try:
        queue.get(job.id)
    except InputError:
        queue._remove_output(job.id)
