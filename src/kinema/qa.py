"""QA of a clip against what it should show: the temporal measures and, for a
shapes-world prompt, the world checker's verdict.

metrics.qa judges a clip on its own; only here, a layer above both, is a prompt read.
A shapes-world prompt (WORLD.md's grammar) says which objects should be there and how
they move: the world checker's verdict is added, and a clip whose objects all stay
still is expected to be static (dynamic_degree then flags one that moves instead). Any
other prompt is recorded with world None and a note; it is not an error.

Given the prompt's reading (kinema.world.reading, as `kinema qa` reads it), a prompt in
other words than the grammar's is checked as the scene it was understood as, and a
prompt outside the world gets a world verdict that fails and says so, instead of a
clip that passes on its temporal measures alone.
"""

from __future__ import annotations

from kinema.io import Video
from kinema.metrics import qa
from kinema.world import PromptError, check, parse
from kinema.world.reading import Reading

__all__ = ["clip_qa"]


def clip_qa(video: Video, prompt: str | None = None, *, reading: Reading | None = None) -> dict:
    """Temporal QA of `video` and, for a shapes-world `prompt`, the world checker's verdict.

    Returns a JSON-ready dict: "frames", "size" [w, h], "fps", "metrics" {name: result},
    "world" (the checker's verdict with at least "pass" and "reasons", or None),
    "prompt" (when given), "world_note" (why a given prompt had no world check), "flags"
    (names of the measures that flagged) and "vbench" {name: dimension}. With the
    prompt's READING: "understood_prompt" (the scene it was checked as, when the words
    were not the grammar's) and "warnings" (words outside the world); a prompt with
    nothing of the world in it gets a world verdict that fails, naming those words.
    """
    scene, note, outside = None, None, None
    if prompt is not None:
        try:
            scene = parse(prompt)
        except PromptError as e:
            note = f"not a shapes-world prompt, no world check: {e}"
            understood = None if reading is None else _understood_scene(reading.understood)
            if understood is not None:
                scene, note = understood, None
            elif reading is not None and reading.understood is None:
                outside = {
                    "pass": False,
                    "reasons": [f"the prompt is outside the shapes world: {w}" for w in reading.warnings],
                    "outside_world": list(reading.out_of_world),
                }
                note = None
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
    if reading is not None and reading.changed:
        result["understood_prompt"] = reading.understood
    if reading is not None and reading.warnings:
        result["warnings"] = list(reading.warnings)
    if note is not None:
        result["world_note"] = note
    if scene is not None:
        result["world"] = check(video.frames, scene)
    elif outside is not None:
        result["world"] = outside
    result["flags"] = temporal["flags"]
    result["vbench"] = temporal["vbench"]
    return result


def _understood_scene(understood: str | None):
    """The scene of an understood prompt (None for none, or for one that a control or an
    adapter's words left outside the grammar: it is not checked)."""
    if understood is None:
        return None
    try:
        return parse(understood)
    except PromptError:
        return None
