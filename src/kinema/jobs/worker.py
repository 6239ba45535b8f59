"""Worker processes: claim a job, run the pipeline through the library, publish, repeat.

A job's params are what `kinema generate` takes (mode "t2v", or "i2v" with an uploaded
first image): prompt, negative, seed (always fixed at submit time, so a re-run after a
crash writes the same file), frames, size [W, H], steps, guidance, fps, loop. The file
goes through `kinema.publish` (watermark, C2PA, sidecar, review queue) to
outputs/<job id>.mp4, written under a temporary name and renamed into place.

`start_workers(n, ...)` starts N processes (spawn, so none inherits a server's threads);
each exits when told to stop or when its parent process is gone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from kinema.errors import InputError
from kinema.jobs.queue import Cancelled, Job, JobQueue

__all__ = ["run_job", "start_workers", "stop_workers", "work"]

POLL_SECONDS = 0.5
CLEANUP_SECONDS = 300.0


class Orphaned(Exception):
    """The process that started this worker is gone: hand the job back and stop."""


def run_job(queue: JobQueue, job: Job, pipe, alive: Callable[[], bool] = lambda: True) -> bool:
    """Run one claimed JOB with PIPE and record the outcome; True when it completed.
    ALIVE is asked at every step; when it says False the job goes back to the queue."""
    from kinema.publish import Origin, publish

    def progress(i: int, n: int) -> None:
        if not alive():
            raise Orphaned(job.id)
        if not queue.progress(job, i, n):
            raise Cancelled(job.id)

    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(queue, job, stop), daemon=True)
    beat.start()
    try:
        p = job.params
        keyframes = None
        if p.get("mode") == "i2v":
            keyframes = {0: _first_image(queue, job, pipe)}
        frames = p.get("frames")
        if p.get("loop") and frames is None:
            frames = pipe.defaults.get("loop_period", 30)  # as `kinema generate --loop` does
        video = pipe(
            p["prompt"],
            seed=int(p["seed"]),
            frames=frames,
            size=tuple(p["size"]) if p.get("size") else None,
            steps=p.get("steps"),
            guidance=p.get("guidance"),
            negative=p.get("negative", ""),
            fps=p.get("fps"),
            keyframes=keyframes,
            loop=bool(p.get("loop")),
            progress=progress,
        )
        if not queue.heartbeat(job):
            raise Cancelled(job.id)
        d = pipe.defaults
        settings = {
            "prompt": p["prompt"],
            "negative_prompt": p.get("negative", ""),
            "seed": int(p["seed"]),
            "frames": video.num_frames,
            "size": [video.width, video.height],
            "fps": video.fps,
            "steps": d["steps"] if p.get("steps") is None else p["steps"],
            "guidance": d["guidance"] if p.get("guidance") is None else p["guidance"],
            "sampler": d["sampler"],
            **({"loop": True} if p.get("loop") else {}),
        }
        name = job.id + ".mp4"
        sources = [queue.input_path(p["image"])] if p.get("mode") == "i2v" else []
        record = publish(
            video, queue.outputs / name, settings, Origin(pipe.name, pipe.model_hash), ingredients=sources
        )
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
) -> int:
    """The worker loop: claim and run jobs until STOP (an Event) is set, the parent
    process is gone or, with ONCE, the queue is empty. Returns the number completed."""
    import kinema

    queue = JobQueue(root)
    worker = worker or f"{os.uname().nodename}:{os.getpid()}"
    parent = os.getppid()
    pipe = kinema.load(model)  # before any claim: a model that cannot load strands no job
    completed = 0
    last_cleanup = 0.0
    while not (stop is not None and stop.is_set()) and os.getppid() == parent:
        queue.recover()
        if time.time() - last_cleanup > CLEANUP_SECONDS and (max_bytes or max_age):
            queue.cleanup(max_bytes, max_age)
            last_cleanup = time.time()
        job = queue.claim(worker)
        if job is None:
            if once:
                break
            time.sleep(POLL_SECONDS)
            continue
        completed += run_job(queue, job, pipe, alive=lambda: os.getppid() == parent)
    return completed


def start_workers(
    n: int, root: str | os.PathLike | None = None, model: str | None = None, **limits: Any
) -> tuple[list[mp.Process], Any]:
    """Start N worker processes on the queue at ROOT; returns them and their stop Event."""
    context = mp.get_context("spawn")
    stop = context.Event()
    processes = []
    for index in range(n):
        process = context.Process(
            target=work,
            kwargs={"root": str(root) if root else None, "model": model, "stop": stop, **limits},
            name=f"kinema-worker-{index}",
            daemon=True,
        )
        process.start()
        processes.append(process)
    return processes, stop


def stop_workers(processes: list[mp.Process], stop: Any, timeout: float = 10.0) -> None:
    """Ask workers to stop after their current job; terminate those still busy after
    TIMEOUT (their jobs are re-queued by the next recover)."""
    stop.set()
    deadline = time.time() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.time()))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(5)


def _heartbeat(queue: JobQueue, job: Job, stop: threading.Event) -> None:
    # keeps the lease while a long step (model load, VAE decode, publish) runs
    while not stop.wait(queue.lease_seconds / 4):
        queue.heartbeat(job)


def _first_image(queue: JobQueue, job: Job, pipe):
    from kinema.io import read_image
    from kinema.pipelines.conditioning import fit_image

    pixels = read_image(queue.input_path(job.params["image"], job.owner))
    size = pipe.defaults["size"]
    width, height = job.params.get("size") or (size, size)
    return fit_image(pixels, width, height)[0]


def _discard_if_gone(queue: JobQueue, job: Job) -> None:
    """A job deleted while it ran leaves no file behind (a re-queued one keeps its name)."""
    try:
        queue.get(job.id)
    except InputError:
        queue._remove_output(job.id)
