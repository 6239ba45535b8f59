"""QA of a clip against what it should show: the temporal measures and, for a
shapes-world prompt, the world checker's verdict.

metrics.qa judges a clip on its own; only here, a layer above both, is a prompt read.
A shapes-world prompt (WORLD.md's grammar) says which objects should be there and how
they move: the world checker's verdict is added, and a clip whose objects all stay
still is expected to be static (dynamic_degree then flags one that moves instead). Any
other prompt is recorded with world None and a note; it is not an error.
"""

from __future__ import annotations

from kinema.io import Video
from kinema.metrics import qa
from kinema.world import PromptError, check, parse

__all__ = ["clip_qa"]


def clip_qa(video: Video, prompt: str | None = None) -> dict:
    """Temporal QA of `video` and, for a shapes-world `prompt`, the world checker's verdict.

    Returns a JSON-ready dict: "frames", "size" [w, h], "fps", "metrics" {name: result},
    "world" (the checker's verdict with at least "pass" and "reasons", or None),
    "prompt" (when given), "world_note" (why a given prompt had no world check), "flags"
    (names of the measures that flagged) and "vbench" {name: dimension}.
    """
    scene, note = None, None
    if prompt is not None:
        try:
            scene = parse(prompt)
        except PromptError as e:
            note = f"not a shapes-world prompt, no world check: {e}"
    still = None if scene is None else all(o.motion == "staying still" for o in scene.objects)
    temporal = qa(video, expect_static=still)
    result: dict = {
        "frames": temporal["frames"],
        "size": temporal["size"],
        "fps": temporal["fps"],
        "metrics": temporal["metrics"],
        "world": None,
    }
    if prompt is not None:
        result["prompt"] = prompt
    if note is not None:
        result["world_note"] = note
    if scene is not None:
        result["world"] = check(video.frames, scene)
    result["flags"] = temporal["flags"]
    result["vbench"] = temporal["vbench"]
    return result
