"""Worker processes: claim a job, run the pipeline through the library, publish, repeat.

A job's params are what the commands take. Every mode has prompt, negative, seed (fixed
at submit time, so a re-run after a crash writes the same file), steps and guidance; then

    t2v, i2v, keyframes   frames, size [W, H], fps, loop; image / last_image: upload ids
                          (as `kinema generate --image --last-image --loop`)
    extend                source (a done job's id), frames to add, backward   (`kinema extend`)
    remix                 source, strength                                    (`kinema remix`)
    inpaint, outpaint     source, mask (upload id) or outpaint [L, T, R, B]   (`kinema inpaint`)

The file goes through `kinema.publish` (watermark, C2PA manifest with the uploads or the
source take as ingredients, sidecar, review queue) to outputs/<job id>.mp4, written under
a temporary name and renamed into place. Inputs are policy-checked here as the commands
check theirs (a face needs a consent record).

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
from kinema.jobs.queue import OUTPUT_SUFFIX, Cancelled, Job, JobQueue

__all__ = ["EDITS", "GENERATE", "MODES", "run_job", "start_workers", "stop_workers", "work"]

POLL_SECONDS = 0.5
GENERATE = ("t2v", "i2v", "keyframes")
EDITS = ("extend", "remix", "inpaint", "outpaint")
MODES = (*GENERATE, *EDITS)
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
        video, settings, edit, sources = _render(queue, job, pipe, progress)
        if not queue.heartbeat(job):
            raise Cancelled(job.id)
        name = job.id + OUTPUT_SUFFIX
        record = publish(
            video,
            queue.outputs / name,
            settings,
            Origin(pipe.name, pipe.model_hash),
            edit=edit,
            ingredients=sources,
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
    nice: int = 0,
) -> int:
    """The worker loop: claim and run jobs until STOP (an Event) is set, the parent
    process is gone or, with ONCE, the queue is empty. Returns the number completed.
    NICE lowers this process's CPU priority by that much."""
    import kinema

    if nice:
        os.nice(nice)

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


WORKER_NICE = 10  # generation yields the CPU to the server answering requests


def start_workers(
    n: int, root: str | os.PathLike | None = None, model: str | None = None, **limits: Any
) -> tuple[list[mp.Process], Any]:
    """Start N worker processes on the queue at ROOT, at a lower CPU priority than the
    caller (WORKER_NICE); returns them and their stop Event."""
    context = mp.get_context("spawn")
    stop = context.Event()
    processes = []
    for index in range(n):
        process = context.Process(
            target=work,
            kwargs={
                "root": str(root) if root else None,
                "model": model,
                "stop": stop,
                "nice": WORKER_NICE,
                **limits,
            },
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


def _render(queue: JobQueue, job: Job, pipe, progress) -> tuple[Any, dict, str | None, list]:
    """Make JOB's clip: (video, settings for publish, edit name or None, ingredient paths)."""
    from kinema.publish import clip_settings

    p = job.params
    mode = p.get("mode", "t2v")
    common = {"seed": int(p["seed"]), "steps": p.get("steps"), "guidance": p.get("guidance")}
    negative = p.get("negative", "")
    if mode in EDITS:
        return _edit(queue, job, pipe, progress, common)
    size = tuple(p["size"]) if p.get("size") else (pipe.defaults["size"],) * 2
    images = {name: _image(queue, job, p[name], size) for name in ("image", "last_image") if p.get(name)}
    frames = p.get("frames")
    if p.get("loop") and frames is None:
        frames = pipe.defaults.get("loop_period", 30)  # as `kinema generate --loop` does
    video = pipe(
        p["prompt"],
        frames=frames,
        size=size,
        negative=negative,
        fps=p.get("fps"),
        keyframes={0: images["image"][0]} if "image" in images else None,
        last_image=images["last_image"][0] if "last_image" in images else None,
        loop=bool(p.get("loop")),
        progress=progress,
        **common,
    )
    settings = clip_settings(pipe, video, prompt=p["prompt"], negative=negative, loop=p.get("loop"), **common)
    return video, settings, None, [path for _, path in images.values()]


def _edit(queue: JobQueue, job: Job, pipe, progress, common: dict) -> tuple[Any, dict, str, list]:
    """extend, remix, inpaint or outpaint a done take or an uploaded clip of the same owner."""
    from kinema.io import read_image, read_video
    from kinema.provenance.policy import check_likeness
    from kinema.publish import clip_settings

    p = job.params
    mode, prompt, negative = p["mode"], p["prompt"], p.get("negative", "")
    if p.get("source_clip"):
        path, label = queue.input_path(p["source_clip"], job.owner), f"clip {p['source_clip']}"
    else:
        source = queue.get(p["source"], job.owner)
        path, label = queue.output_path(source), f"take {source.id}"
        if path is None:
            raise InputError(f"take {source.id} is gone; there is nothing to {mode}")
    video = read_video(path)
    check_likeness(video.frames, source=label)
    kw = {"negative": negative, "progress": progress, **common}
    flags: dict[str, Any] = {}
    if mode == "extend":
        result = pipe.extend(video, prompt, int(p["frames"]), backward=bool(p.get("backward")), **kw)
        flags = {"added_frames": int(p["frames"]), "backward": bool(p.get("backward"))}
    elif mode == "remix":
        result = pipe.remix(video, prompt, strength=float(p["strength"]), **kw)
        flags = {"strength": float(p["strength"])}
    elif mode == "inpaint":
        from kinema.pipelines.conditioning import mask_region

        region = mask_region(read_image(queue.input_path(p["mask"], job.owner)), video.width, video.height)
        result = pipe.inpaint(video, prompt, region, **kw)
        flags = {"mask": p["mask"]}
    elif mode == "outpaint":
        result = pipe.outpaint(video, prompt, *(int(v) for v in p["outpaint"]), **kw)
        flags = {"outpaint": [int(v) for v in p["outpaint"]]}
    else:
        raise InputError(f"unknown mode '{mode}'")
    settings = clip_settings(pipe, result, prompt=prompt, negative=negative, **common)
    settings.update(source=path.name, **flags)
    return result, settings, mode, [path]


def _image(queue: JobQueue, job: Job, upload: str, size: tuple[int, int]):
    """An uploaded condition image, policy-checked and fitted to SIZE; and its path."""
    from kinema.io import read_image
    from kinema.pipelines.conditioning import fit_image
    from kinema.provenance.policy import check_likeness

    path = queue.input_path(upload, job.owner)
    pixels = read_image(path)
    check_likeness(pixels, source=f"upload {upload}")
    return fit_image(pixels, *size)[0], path


def _discard_if_gone(queue: JobQueue, job: Job) -> None:
    """A job deleted while it ran leaves no file behind (a re-queued one keeps its name)."""
    try:
        queue.get(job.id)
    except InputError:
        queue._remove_output(job.id)
