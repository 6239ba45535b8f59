"""Jobs: the durable one-machine job queue and its worker processes (no web needed)."""

from kinema.jobs.queue import Job, JobError, JobQueue

__all__ = ["Job", "JobError", "JobQueue"]
