"""A queued job's params → the ClipRequest every door renders.

A job's params are what the web's modes take (see kinema.web.modes): the mode (t2v, i2v,
keyframes, extend, remix, inpaint, outpaint), prompt, negative, seed (fixed at submit
time, so a re-run after a crash writes the same file), steps, guidance, literal (the
prompt goes to the model as typed); frames, size,
fps, loop and still (one frame, written as a PNG) for generated clips; upload ids for
images, masks and clips, and for a generated clip's motion path, control clip (with
control_scale) and reference image; a done take's id as an edit's source (a clip, not a still).
Ids are resolved here to the owner's files, so the web (before queueing) and the worker
(before rendering) check the very same request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.jobs.queue import JobError, JobQueue
from kinema.pipelines.adapters import SUFFIX, check_name, loras_dir
from kinema.render import Adapter, ClipRequest

GENERATE = ("t2v", "i2v", "keyframes")
EDITS = ("extend", "remix", "inpaint", "outpaint")
MODES = (*GENERATE, *EDITS)


def clip_request(
    params: dict[str, Any], owner: str, queue: JobQueue, model: str | None = None
) -> ClipRequest:
    """The ClipRequest of a job's PARAMS for OWNER on QUEUE; refuses (InputError) an
    unknown mode, and uploads or takes that are not OWNER's or are gone."""
    mode = params.get("mode", "t2v")
    if mode not in MODES:
        raise InputError(f"unknown mode '{mode}'")
    common: dict[str, Any] = {
        "prompt": params["prompt"],
        "negative": params.get("negative") or "",
        "seed": params.get("seed"),
        "steps": params.get("steps"),
        "guidance": params.get("guidance"),
        "literal": bool(params.get("literal")),
        "fast": bool(params.get("fast")),
        "model": model,
        # by name only, in KINEMA_HOME/loras: a web user never names a path on the server
        "adapters": tuple(
            Adapter(str(adapter_file(a["name"])), float(a["scale"])) for a in params.get("adapters") or ()
        ),
    }
    if mode in GENERATE:
        size = params.get("size")
        return ClipRequest(
            **common,
            frames=params.get("frames"),
            size=tuple(size) if size else None,
            fps=params.get("fps"),
            loop=bool(params.get("loop")),
            still=bool(params.get("still")),
            image=_upload(params.get("image"), owner, queue),
            last_image=_upload(params.get("last_image"), owner, queue),
            path=_upload(params.get("path"), owner, queue),
            control=_upload(params.get("control_clip"), owner, queue),
            control_scale=float(params.get("control_scale", 1.0)),
            reference=_upload(params.get("reference"), owner, queue),
        )
    edit: dict[str, Any] = {"mode": mode, "source": source_path(params, owner, queue, mode)}
    if mode == "extend":
        edit.update(add_frames=params.get("frames"), backward=bool(params.get("backward")))
    elif mode == "remix":
        edit["strength"] = params.get("strength")
    elif mode == "inpaint":
        edit["mask"] = _upload(params.get("mask"), owner, queue)
    else:
        edit["outpaint"] = tuple(int(v) for v in params.get("outpaint") or ())
    return ClipRequest(**common, **edit)


def adapter_file(name: str) -> Path:
    """The file of adapter NAME in KINEMA_HOME/loras (a name, never a path)."""
    return loras_dir() / f"{check_name(name)}{SUFFIX}"


def source_path(params: dict[str, Any], owner: str, queue: JobQueue, mode: str) -> Path:
    """The file an edit changes: an uploaded clip of OWNER's, or a finished take of theirs."""
    if params.get("source_clip"):
        return queue.input_path(params["source_clip"], owner)
    try:
        source = queue.get(str(params.get("source")), owner)
    except JobError:
        raise InputError(f"no take with id '{str(params.get('source'))[:40]}' to {mode}") from None
    path = queue.output_path(source)
    if path is None:
        raise InputError(f"take {source.id} is {source.status}; only a finished take can be used for {mode}")
    if source.params.get("still"):
        raise InputError(f"take {source.id} is an image; {mode} changes a clip")
    return path


def _upload(upload_id: str | None, owner: str, queue: JobQueue) -> Path | None:
    return None if upload_id is None else queue.input_path(upload_id, owner)
