"""Batch generation: a file of prompts to a folder of finished clips and a summary CSV.

    PROMPTS.txt ─► plan (one Job a prompt line) ─► skip finished ─► executor generates
               ─► publish each clip (driver) ─► temporal QA of the written file ─► summary.csv

Every clip is one ClipRequest (the batch's shared options, with the line's prompt and
seed), checked on the driver before any work and rendered through kinema.render like a
`kinema generate` of the same settings. An executor turns jobs into generated clips, in
any order: `Sequential` in this process,
`RayExecutor` on a Ray cluster (one model-holding actor a worker). Workers only make
pixels; publishing (watermark, C2PA signing, sidecar, review queue) stays on the driver,
so the signing keys never leave this machine and DIR needs no shared filesystem. A clip
counts as finished when its file and its JSON sidecar both exist (publish renames the
clip into place after its sidecar), so a batch killed midway resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kinema.errors import InputError
from kinema.pipelines.facts import ModelFacts
from kinema.publish import publish_rendered, settings_path
from kinema.render import ClipRequest, Rendered, check, render

FORMATS = ("mp4", "webm", "gif", "png")  # png: a folder of PNG frames per prompt
SUMMARY = "summary.csv"


@dataclass(frozen=True)
class Job:
    """One prompt: its index among the file's prompts (0-based: it names the output), its
    1-based line number (for messages), text, seed and output path."""

    index: int
    line: int
    prompt: str
    seed: int
    output: Path

    def request(self, template: ClipRequest) -> ClipRequest:
        """The batch's shared options (TEMPLATE) with this line's prompt and seed."""
        return replace(template, prompt=self.prompt, seed=self.seed)


@dataclass(frozen=True)
class Clip:
    """A rendered clip before publishing, and how long it took (not in its settings: they
    name the clip, and its mark)."""

    rendered: Rendered
    seconds: float


Executor = Callable[[Sequence[Job]], Iterator[tuple[Job, Clip]]]


# ---------------------------------------------------------------- planning


def read_prompts(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(line number, prompt) for each prompt line; blank lines and `#` comments skipped."""
    try:
        text = Path(os.fspath(path)).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read prompts file '{path}': {e}") from None
    prompts = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            prompts.append((number, line))
    return prompts


def plan(
    prompts_file: str | os.PathLike, out_dir: str | os.PathLike, *, seed: int = 0, fmt: str = "mp4"
) -> list[Job]:
    """The jobs of a prompts file: prompt i (0-based, comments and blank lines not counted)
    goes to DIR/iiii.FMT (a frame folder for png) with seed = base seed + i, so a clip
    does not depend on which run made it."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt}")
    out = Path(os.fspath(out_dir))
    prompts = read_prompts(prompts_file)
    if not prompts:
        raise InputError(
            f"'{prompts_file}' holds no prompts (one a line; blank lines and # comments are skipped)"
        )
    suffix = "" if fmt == "png" else f".{fmt}"
    return [
        Job(index, number, prompt, seed + index, out / f"{index:04d}{suffix}")
        for index, (number, prompt) in enumerate(prompts)
    ]


def is_finished(output: Path) -> bool:
    """True when a clip and its JSON sidecar are both in place."""
    return output.exists() and settings_path(output).is_file()


def check_jobs(jobs: Iterable[Job], template: ClipRequest) -> None:
    """Refuse the batch before any work when a line's request would be refused (a
    screened prompt, a size or option the model does not take), naming the line."""
    facts = ModelFacts.read(template.model)
    for job in jobs:
        try:
            check(job.request(template), facts)
        except InputError as e:
            raise InputError(f"line {job.line}: {e}") from None


# ---------------------------------------------------------------- one job


def load_pipeline(template: ClipRequest):
    """The pipeline every clip of the batch is made with; its size is checked up front."""
    from kinema.pipelines.loading import load

    pipe = load(template.model, template.device, savers=template.savers, int8=template.int8)
    if template.size is not None:
        pipe.check_size(*template.size)
    return pipe


def generate(pipe, facts: ModelFacts, job: Job, template: ClipRequest) -> Clip:
    """Check and render one job's request with PIPE."""
    start = time.monotonic()
    rendered = render(pipe, check(job.request(template), facts))
    return Clip(rendered, round(time.monotonic() - start, 3))


def finish(job: Job, clip: Clip) -> dict:
    """Publish a generated clip at its job's output; its summary row."""
    record = publish_rendered(clip.rendered, job.output)
    return summary_row(job, "generated", record, clip.seconds)


def summary_row(job: Job, status: str, record: dict | None = None, seconds: float | None = None) -> dict:
    """The CSV row of a finished clip: temporal QA of the file as written (so a resumed
    batch reports what a fresh one would) and, for a shapes-world prompt, the world
    checker's verdict."""
    from kinema.io import read_video
    from kinema.metrics import MEASURES
    from kinema.qa import clip_qa

    if record is None:
        try:
            record = json.loads(settings_path(job.output).read_text())
        except (OSError, ValueError):
            record = {}
    video = read_video(job.output)
    result = clip_qa(video, job.prompt)  # with the world checker's verdict for a world prompt
    world = result["world"]
    row = {
        "index": job.index,
        "prompt": job.prompt,
        "seed": record.get("seed", job.seed),
        "path": str(job.output),
        "seconds": "" if seconds is None else seconds,  # a skipped clip was made by an earlier run
        "line": job.line,
        "id": record.get("id", ""),
        "status": status,
        "frames": video.num_frames,
        "width": video.width,
        "height": video.height,
        "fps": video.fps,
        "qa_flags": " ".join(result["flags"]),
        "world_pass": "" if world is None else world["pass"],
        "world_reasons": "" if world is None else "; ".join(world["reasons"]),
    }
    row.update({name: result["metrics"][name]["value"] for name in MEASURES})
    return row


# ---------------------------------------------------------------- executors


class Sequential:
    """Generate the jobs one after another in this process, loading the model once."""

    def __init__(self, template: ClipRequest):
        self.template = template

    def __call__(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, Clip]]:
        if not jobs:
            return
        pipe, facts = load_pipeline(self.template), ModelFacts.read(self.template.model)
        for job in jobs:
            yield job, generate(pipe, facts, job, self.template)


class _Worker:
    """A Ray actor's state: the loaded pipeline, kept for every job it is given."""

    def __init__(self, template: ClipRequest):
        import torch

        torch.set_num_threads(1)  # the one CPU the actor was given: workers do not oversubscribe
        self.template = template
        self.pipe, self.facts = load_pipeline(template), ModelFacts.read(template.model)

    def generate(self, job: Job) -> tuple[Job, Clip]:
        return job, generate(self.pipe, self.facts, job, self.template)


class RayExecutor:
    """Generate the jobs on a Ray cluster: the one at `address`, or a local one started
    with `workers` CPUs; one actor a worker (each holding the model), one CPU or GPU each.

    With an address, the model folder must exist at the same path on every node (the
    built-in model does: it is package data). A cluster this process did not start is
    left running.
    """

    def __init__(self, template: ClipRequest, *, address: str | None = None, workers: int | None = None):
        if workers is not None and workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        self.template, self.address, self.workers = template, address, workers

    def __call__(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, Clip]]:
        if not jobs:
            return
        import ray
        from ray.util import ActorPool

        started = not ray.is_initialized()
        if started:
            self._init(ray)
        try:
            gpu = self.template.device == "cuda"
            capacity = int(ray.cluster_resources().get("GPU" if gpu else "CPU", 1))
            count = max(1, min(self.workers or capacity, len(jobs)))
            actor = ray.remote(_Worker).options(num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0)
            pool = ActorPool([actor.remote(self.template) for _ in range(count)])
            results = pool.map_unordered(lambda worker, job: worker.generate.remote(job), list(jobs))
            while True:
                try:
                    yield next(results)
                except StopIteration:
                    return
                except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as e:
                    # a worker's InputError (a size or frame count the model cannot make) is
                    # the user's one-line error, not a remote traceback
                    cause = _input_error(e)
                    if cause is None:
                        raise
                    raise cause from None
        finally:
            if started:
                ray.shutdown()

    def _init(self, ray) -> None:
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if self.address is None:
                ray.init(num_cpus=self.workers or os.cpu_count() or 1, **options)
            else:
                ray.init(address=self.address, **options)
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            raise InputError(f"cannot start or reach {where}: {' '.join(str(e).split())}") from None


def _input_error(error: BaseException) -> InputError | None:
    """The InputError a Ray error wraps (a task's, or an actor constructor's), if any."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, InputError) and not type(error).__name__.startswith("RayTaskError"):
            return error
        error, seen = getattr(error, "cause", None), seen + 1
    return None


# ---------------------------------------------------------------- the batch


def run_all(
    jobs: Sequence[Job],
    executor: Executor,
    template: ClipRequest,
    *,
    progress: Callable[[int, int], None] | None = None,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run a batch: skip the finished jobs, generate the rest with `executor`, publish and
    QA each clip as it arrives. Every job's request (TEMPLATE with its prompt and seed) is
    checked first. Returns the summary rows in prompt order (one a job); progress(done,
    total) is called after each clip, on_row(row) with each row."""
    check_jobs(jobs, template)
    rows: dict[int, dict] = {}

    def record(row: dict) -> None:
        rows[row["index"]] = row
        if on_row is not None:
            on_row(row)
        if progress is not None:
            progress(len(rows), len(jobs))

    pending = []
    for job in jobs:
        if is_finished(job.output):
            record(summary_row(job, "skipped"))
        else:
            pending.append(job)
    for job, clip in executor(pending):
        record(finish(job, clip))
    return [rows[job.index] for job in jobs]


def write_summary(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write the summary rows as CSV, atomically."""
    from kinema.io.atomic import replacing

    target = Path(os.fspath(path))
    with replacing(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["index"])
        writer.writeheader()
        writer.writerows(rows)
    return target
