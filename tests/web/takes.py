"""Helpers the web tests share."""

import numpy as np

from kinema.io import Video
from kinema.jobs.queue import JobQueue
from kinema.publish import Origin, publish


def publish_take(queue: JobQueue, owner: str, frames: int = 9, size=(64, 64)) -> str:
    """A done job whose take went through publish as a worker's does (no model needed):
    a synthetic clip, watermarked, signed and registered for review. Returns the job id."""
    job = queue.submit(owner, {"mode": "t2v", "prompt": "a red circle", "seed": 1})
    running = queue.claim("test")
    assert running.id == job.id
    rng = np.random.default_rng(0)
    video = Video(rng.integers(0, 255, (frames, size[1], size[0], 3), dtype=np.uint8), 8.0)
    settings = {"prompt": "a red circle", "seed": 1, "frames": frames, "size": list(size), "fps": 8.0}
    record = publish(video, queue.outputs / f"{job.id}.mp4", settings, Origin("test", "0" * 64))
    assert queue.complete(running, f"{job.id}.mp4", record)
    return job.id
