"""Load benchmark of the web studio: a real server, many tabs polling, a queue of jobs.

    run_loadbench(polls=50, jobs=20) ─► starts `kinema serve`'s app (uvicorn, its own
        process, its workers) on a free port over a fresh KINEMA_HOME, submits JOBS jobs
        while POLLS clients poll job status every INTERVAL seconds, until every job has
        finished (or TIMEOUT), then stops the server and returns the figures:

    {"latency_ms": {"all"|"poll"|"submit": {"p50", "p95", "max", "count"}},
     "errors": n, "error_kinds": {...}, "jobs": {"done", "failed", ...}, "seconds": ..., ...}

Latency is measured at the client, from sending a request to reading its whole answer;
an error is a transport failure or any answer that is not 2xx (a 429 from the rate
limiter counts). Run it as `python -m kinema.web.loadbench [--polls 50] [--jobs 20]`; it
prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["run_loadbench", "main"]

PROMPTS = (
    "a red circle moving right on a black background",
    "a blue square moving up on a white background",
    "a green triangle moving left on a grey background",
    "a yellow circle moving down on a black background",
)
_SERVE = (
    "import sys, uvicorn; from kinema.web import create_app; "
    "model = sys.argv[2] or None; "
    "uvicorn.run(create_app(sys.argv[1], model=model, workers=int(sys.argv[4])), host='127.0.0.1', "
    "port=int(sys.argv[3]), log_level='warning', access_log=False)"
)


def run_loadbench(
    polls: int = 50,
    jobs: int = 20,
    *,
    model: str | os.PathLike | None = None,
    workers: int = 1,
    interval: float = 0.5,
    steps: int | None = 4,
    frames: int | None = None,
    timeout: float = 600.0,
    home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Serve MODEL (None: the built-in model) with WORKERS worker processes over HOME (None:
    a temporary folder, removed afterwards); POLLS clients poll job status every INTERVAL
    seconds while JOBS jobs (STEPS sampler steps, FRAMES frames each; None: the model's
    default) are submitted and run. Returns latency percentiles, error counts and job
    outcomes (see the module docstring). Refuses (ValueError) counts below 1."""
    if polls < 1 or jobs < 1 or workers < 1 or interval <= 0:
        raise ValueError("polls, jobs and workers must be at least 1 and interval positive")
    from kinema.web.tokens import TokenStore

    scratch = None
    if home is None:
        scratch = home = tempfile.mkdtemp(prefix="kinema-loadbench-")
    home = Path(os.fspath(home))
    _, secret = TokenStore(home).create("loadbench")
    port = _free_port()
    env = {**os.environ, "KINEMA_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(home), str(model or ""), str(port), str(workers)],
        env=env,
        start_new_session=True,
    )
    started = time.perf_counter()
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_up(base, secret, server)
        up = time.perf_counter() - started
        result = asyncio.run(
            _drive(base, secret, polls, jobs, interval, timeout, {"steps": steps, "frames": frames})
        )
    finally:
        _stop(server)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "polls": polls,
        "jobs_submitted": jobs,
        "workers": workers,
        "model": str(model) if model else "builtin",
        "steps": steps,
        "interval_s": interval,
        "cpu_count": os.cpu_count(),
        "startup_s": round(up, 2),
        "total_s": round(time.perf_counter() - started, 2),
        **result,
    }


async def _drive(base, secret, polls, jobs, interval, timeout, settings) -> dict[str, Any]:
    import httpx

    samples: dict[str, list[float]] = {"poll": [], "submit": [], "list": []}
    errors: Counter[str] = Counter()
    ids: list[str] = []
    unanswered = [0]  # transport failures: requests that got no answer at all
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {secret}"}
    limits = httpx.Limits(max_connections=polls + 4, max_keepalive_connections=polls + 4)

    async def call(client, kind: str, method: str, path: str, **kw):
        began = time.perf_counter()
        try:
            response = await client.request(method, path, **kw)
            await response.aread()
        except httpx.HTTPError as exc:
            errors[f"{kind}: {type(exc).__name__}"] += 1
            unanswered[0] += 1
            return None
        samples[kind].append((time.perf_counter() - began) * 1000)
        if not 200 <= response.status_code < 300:
            errors[f"{kind}: HTTP {response.status_code}"] += 1
            return None
        return response

    async def submitter(client):
        body = {key: value for key, value in settings.items() if value is not None}
        for index in range(jobs):
            prompt = PROMPTS[index % len(PROMPTS)]
            answer = await call(
                client, "submit", "POST", "/api/jobs", json={"prompt": prompt, "seed": index, **body}
            )
            if answer is not None:
                ids.append(answer.json()["id"])

    async def poller(client, offset: int):
        await asyncio.sleep(interval * offset / polls)  # tabs do not all poll in step
        turn = offset
        while not stop.is_set():
            if ids:
                await call(client, "poll", "GET", f"/api/jobs/{ids[turn % len(ids)]}")
                turn += 1
            else:
                await call(client, "list", "GET", "/api/jobs?limit=12")
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

    async def watcher(client) -> dict[str, int]:
        deadline = time.perf_counter() + timeout
        statuses: Counter[str] = Counter()
        while time.perf_counter() < deadline:
            await asyncio.sleep(1.0)
            answer = await call(client, "list", "GET", "/api/jobs?limit=200")
            if answer is None or len(ids) < jobs:
                continue
            statuses = Counter(job["status"] for job in answer.json()["items"])
            if sum(statuses[s] for s in ("done", "failed", "cancelled")) >= jobs:
                return dict(statuses)
        return {"timed_out": 1, **dict(statuses)}

    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        began = time.perf_counter()
        tasks = [asyncio.create_task(poller(client, i)) for i in range(polls)]
        await submitter(client)
        outcome = await watcher(client)
        stop.set()
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - began
    everything = [ms for values in samples.values() for ms in values]
    count = len(everything)
    return {
        "seconds": round(seconds, 2),
        "requests": count + unanswered[0],
        "requests_per_second": round(count / seconds, 1) if seconds else None,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "latency_ms": {
            "all": _summary(everything),
            "poll": _summary(samples["poll"]),
            "submit": _summary(samples["submit"]),
        },
        "jobs": outcome,
    }


def _summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"count": len(ordered), "p50": pick(0.50), "p95": pick(0.95), "max": round(ordered[-1], 2)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(base: str, secret: str, server: subprocess.Popen, seconds: float = 180.0) -> None:
    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode} before it answered")
        try:
            if httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {seconds:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)  # the app stops its workers on the way out
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m kinema.web.loadbench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--polls", type=int, default=50, help="concurrent status pollers")
    parser.add_argument("--jobs", type=int, default=20, help="jobs queued")
    parser.add_argument("--model", default=None, help="model folder (default: the built-in model)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between one poller's polls")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps per job")
    parser.add_argument("--frames", type=int, default=None, help="frames per job (model default)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    try:
        result = run_loadbench(
            args.polls,
            args.jobs,
            model=args.model,
            workers=args.workers,
            interval=args.interval,
            steps=args.steps,
            frames=args.frames,
            timeout=args.timeout,
        )
    except (ValueError, RuntimeError) as exc:
        print(f"loadbench: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
