"""The web server's worker processes, supervised: a worker that dies is replaced and its
job taken back; a worker that cannot start is started again after a growing pause.

    WorkerPool(n, root, model, lease_seconds=…, max_bytes=…, max_age=…).start()
        one thread in the server process, every TICK_SECONDS:
          each slot   a dead process ─► queue.abandon(its name): a lost run, re-queued
                      once, failed after that (kinema.jobs.queue, Retries) ─► a new
                      process once its back-off has passed
          the queue   queue.recover(): leases that expired (a stalled worker, or one of
                      another process) come back even when no worker of ours is idle
          each slot   a process that has said nothing for stall_seconds (frozen: even
                      its threads stopped) ─► killed, then as a dead one
    pool.health()   what /api/health reports: expected, alive, ready, restarts, slots
    pool.stop()     workers finish their job (up to GRACE_SECONDS); the rest are stopped
                    and their jobs re-queued without counting a lost run

Back-off. A worker reports "ready" once its model has loaded. The first death of a ready
worker is replaced at once (a crash or a kill mid-job); a worker that dies before it is
ready (a model that cannot load), or dies again before it has worked STABLE_SECONDS, is
started again after FIRST_BACKOFF_SECONDS, doubling up to MAX_BACKOFF_SECONDS: a broken
model costs one start a minute, not a tight loop, and health names the reason it gave.

Stalls. A worker whose job stops moving for stall_seconds (kinema.jobs.worker: its
heartbeat stops renewing the lease) says so and exits with STALLED_EXIT: it is replaced at
once and its job taken back, retried once, like a dead one. Every worker also says it is
alive every PING_SECONDS from a thread of its own, so one frozen whole (a stopped process,
a C call that never lets go of the interpreter) is killed when its word stops coming.

A thread rather than an asyncio task: starting a process (spawn) and the queue's SQLite
writes block, and the event loop must keep answering requests meanwhile.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from kinema.errors import InputError
from kinema.jobs.queue import LEASE_SECONDS, Job, JobQueue
from kinema.jobs.worker import STALL_SECONDS, WORKER_NICE, work, worker_name

__all__ = ["STALLED_EXIT", "WorkerPool", "restart_delay"]

TICK_SECONDS = 0.5
GRACE_SECONDS = 10.0
STABLE_SECONDS = 60.0
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
STALLED_EXIT = 75  # a worker's exit status when it gave up a job that stopped moving
PING_SECONDS = 2.0  # a worker says it is alive this often (a quarter of a small stall limit)


@dataclass
class _Slot:
    """One worker place in the pool and what its latest process did."""

    index: int
    process: BaseProcess | None = None
    messages: Connection | None = None  # the reading end of the process's pipe
    pid: int | None = None
    started: float = 0.0  # time.monotonic() of the latest start
    ready_since: float | None = None
    starts: int = 0
    failures: int = 0  # deaths in a row without STABLE_SECONDS of work
    next_start: float = 0.0  # time.monotonic(): no start before this
    last_exit: str | None = None
    last_error: str | None = None
    heard: float = 0.0  # time.monotonic() of the latest word from the process
    frozen: float | None = None  # seconds without a word when it was killed for it


class WorkerPool:
    """N worker processes on the queue at ROOT generating with MODEL, kept alive by a
    supervising thread (module doc). LEASE_SECONDS, MAX_BYTES, MAX_AGE and STALL_SECONDS
    (default kinema.jobs.worker.STALL_SECONDS) go to each worker
    (kinema.jobs.worker.work); workers run at WORKER_NICE."""

    def __init__(
        self,
        n: int,
        root: str | os.PathLike | None = None,
        model: str | None = None,
        *,
        lease_seconds: float = LEASE_SECONDS,
        max_bytes: int | None = None,
        max_age: float | None = None,
        stall_seconds: float | None = None,
    ):
        if n < 1:
            raise ValueError(f"a worker pool needs at least 1 worker, got {n}")
        self.stall_seconds = STALL_SECONDS if stall_seconds is None else float(stall_seconds)
        if not self.stall_seconds > 0:
            raise ValueError(f"stall_seconds must be positive, got {stall_seconds}")
        self.queue = JobQueue(root, lease_seconds)
        self.slots = [_Slot(index) for index in range(n)]
        self._context = mp.get_context("spawn")  # no worker inherits the server's threads
        self._stop_work = self._context.Event()  # read by the workers: stop after this job
        self._work = {
            "root": str(self.queue.root),
            "model": model,
            "stop": self._stop_work,
            "nice": WORKER_NICE,
            "lease_seconds": lease_seconds,
            "max_bytes": max_bytes,
            "max_age": max_age,
            "stall_seconds": self.stall_seconds,
        }
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # process polls: from the thread and from health()
        self._thread = threading.Thread(target=self._supervise, name="kinema-worker-supervisor", daemon=True)

    def start(self) -> WorkerPool:
        """Start every worker and the supervising thread; returns the pool."""
        for slot in self.slots:
            self._spawn(slot)
        self._thread.start()
        return self

    def stop(self, grace: float = GRACE_SECONDS) -> None:
        """Stop supervising, ask the workers to stop after their current job, and stop
        those still busy after GRACE seconds; their jobs go back to the queue without
        counting a lost run (the server stopped them, not the job)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._stop_work.set()
        deadline = time.monotonic() + grace
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            stopped_here = process.is_alive()
            if stopped_here:
                process.terminate()
                process.join(5)
                if process.is_alive():
                    process.kill()
                    process.join()
            # one that finished its job and exited holds none; one that died by itself
            # meanwhile lost its run
            self.queue.abandon(worker_name(process.pid), counted=not stopped_here)
            if slot.messages is not None:
                slot.messages.close()

    def health(self) -> dict[str, Any]:
        """The workers as /api/health reports them: how many are expected, alive (a
        process running), ready (model loaded) and were restarted, and each slot's state
        (starting, ready, down, backing off, stopped), last exit and reason."""
        now = time.monotonic()
        slots = []
        with self._lock:
            for slot in self.slots:
                alive = slot.process is not None and slot.process.is_alive()
                if alive:
                    state = "ready" if slot.ready_since is not None else "starting"
                elif self._stopping.is_set():
                    state = "stopped"
                else:
                    state = "backing off" if slot.next_start > now else "down"
                slots.append(
                    {
                        "index": slot.index,
                        "pid": slot.pid if alive else None,
                        "state": state,
                        "starts": slot.starts,
                        "up_seconds": round(now - slot.started, 1) if alive else None,
                        "last_exit": slot.last_exit,
                        "last_error": slot.last_error,
                        "next_start_in": None if alive else round(max(0.0, slot.next_start - now), 1),
                    }
                )
        return {
            "expected": len(self.slots),
            "alive": sum(s["state"] in ("starting", "ready") for s in slots),
            "ready": sum(s["state"] == "ready" for s in slots),
            "restarts": sum(max(0, s["starts"] - 1) for s in slots),
            "slots": slots,
        }

    # ------------------------------------------------------------------ the thread

    def _supervise(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            try:
                self._tick()
            except Exception:  # the supervisor outlives a bad tick (a locked database, a full disk)
                traceback.print_exc()

    def _tick(self) -> None:
        for slot in self.slots:
            self._read(slot)
            with self._lock:
                dead = slot.process is not None and not slot.process.is_alive()
            if not dead and self._frozen(slot):
                dead = True
            if dead:
                self._bury(slot)
            now = time.monotonic()
            if slot.ready_since is not None and now - slot.ready_since >= STABLE_SECONDS:
                slot.failures = 0
            if slot.process is None and now >= slot.next_start and not self._stopping.is_set():
                self._spawn(slot)
        self.queue.recover()

    def _frozen(self, slot: _Slot) -> bool:
        """Kill the slot's process when it has said nothing for stall_seconds (module doc);
        True when it did."""
        silent = time.monotonic() - slot.heard
        if slot.process is None or silent < self.stall_seconds:
            return False
        slot.process.kill()
        slot.frozen = silent
        return True

    def _spawn(self, slot: _Slot) -> None:
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_supervised_worker,
            args=(writer, self._work),
            name=f"kinema-worker-{slot.index}",
            daemon=True,
        )
        process.start()
        writer.close()  # the child holds the only writing end: its death reads as EOF here
        with self._lock:
            slot.process, slot.messages, slot.pid = process, reader, process.pid
            slot.started, slot.ready_since = time.monotonic(), None
            slot.heard, slot.frozen = slot.started, None
            slot.starts += 1

    def _read(self, slot: _Slot) -> None:
        """Take in what the slot's process said: that it is ready, or why it could not start."""
        if slot.messages is None:
            return
        try:
            while slot.messages.poll():
                kind, text = slot.messages.recv()
                slot.heard = time.monotonic()
                if kind == "ready":
                    slot.ready_since = time.monotonic()
                elif kind != "alive":
                    slot.last_error = text
        except (EOFError, OSError):
            pass  # the process is gone; _bury notices

    def _bury(self, slot: _Slot) -> None:
        """Record a dead process's exit, take back its job and set when to start the next."""
        process = slot.process
        assert process is not None
        process.join(1)
        self._read(slot)
        now = time.monotonic()
        ready = slot.ready_since is not None
        lived = now - slot.started
        self.queue.abandon(worker_name(process.pid))
        slot.failures += 1
        delay = restart_delay(slot.failures, ready)
        when = "after its model loaded" if ready else "before its model loaded"
        if slot.frozen is not None:
            words = f"killed after {slot.frozen:.1f} s without a word (frozen)"
        else:
            words = _exit_words(process.exitcode)
        with self._lock:
            slot.last_exit = f"{words} {when}, {lived:.1f} s after it started"
            if ready:
                slot.last_error = None  # a reason given at start-up belongs to an earlier death
            slot.next_start = now + delay
            slot.process, slot.ready_since = None, None
        if slot.messages is not None:
            slot.messages.close()
            slot.messages = None


def restart_delay(failures: int, ready: bool) -> float:
    """Seconds before a dead worker is replaced, after FAILURES deaths in a row (this one
    included) without STABLE_SECONDS of work; READY: this one had loaded its model. The
    first death of a working worker is replaced at once; after that, and for a worker that
    never got ready, FIRST_BACKOFF_SECONDS doubling per death, at most MAX_BACKOFF_SECONDS."""
    if ready and failures == 1:
        return 0.0
    return min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (failures - 1))


def _supervised_worker(messages: Connection, kwargs: dict[str, Any]) -> None:
    """The body of a supervised worker process: `work`, telling the supervisor through
    MESSAGES that it is alive (every PING_SECONDS), when the model has loaded, when a job
    stopped moving (then it exits with STALLED_EXIT) and, when it cannot go on, why (one
    line)."""
    lock = threading.Lock()  # the pinging thread and this one share the pipe

    def say(kind: str, text: str = "") -> None:
        with lock:
            messages.send((kind, text))

    def stalled(job: Job, idle: float) -> None:
        say("stalled", f"job {job.id} made no progress for {idle:.0f} s; given up and retried")
        print(f"kinema worker: job {job.id} made no progress for {idle:.0f} s; exiting", file=sys.stderr)
        os._exit(STALLED_EXIT)  # the main thread is stuck: leave without it

    pinging = threading.Event()

    def ping() -> None:
        while not pinging.wait(min(PING_SECONDS, kwargs["stall_seconds"] / 4)):
            try:
                say("alive")
            except OSError:  # the supervisor is gone
                return

    threading.Thread(target=ping, name="kinema-worker-ping", daemon=True).start()
    try:
        work(on_ready=lambda: say("ready"), on_stall=stalled, **kwargs)
    except Exception as exc:
        pinging.set()
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        say("error", reason)
        if isinstance(exc, InputError):
            print(f"kinema worker: {exc}", file=sys.stderr)
        else:
            traceback.print_exc()
        sys.exit(1)


def _exit_words(code: int | None) -> str:
    if code is None:
        return "vanished"
    if code == STALLED_EXIT:
        return "gave up a job that stopped moving"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return "exited" if code == 0 else f"exited with code {code}"
