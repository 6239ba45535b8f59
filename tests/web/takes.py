"""Helpers the web tests share."""

import numpy as np

from kinema.io import Video
from kinema.jobs.queue import JobQueue, output_name
from kinema.publish import Origin, publish


def publish_take(queue: JobQueue, owner: str, frames: int = 9, size=(64, 64), still: bool = False) -> str:
    """A done job whose take went through publish as a worker's does (no model needed):
    a synthetic clip (with STILL: one frame, a PNG), watermarked, signed and registered
    for review. Returns the job id."""
    params = {"mode": "t2v", "prompt": "a red circle", "seed": 1, **({"still": True} if still else {})}
    job = queue.submit(owner, params)
    running = queue.claim("test")
    assert running.id == job.id
    frames = 1 if still else frames
    rng = np.random.default_rng(0)
    video = Video(rng.integers(0, 255, (frames, size[1], size[0], 3), dtype=np.uint8), 8.0)
    settings = {"prompt": "a red circle", "seed": 1, "frames": frames, "size": list(size), "fps": 8.0}
    name = output_name(job)
    record = publish(video, queue.outputs / name, settings, Origin("test", "0" * 64))
    assert queue.complete(running, name, record)
    return job.id
