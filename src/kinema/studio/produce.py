"""One request to one finished file, as the command line makes it:

    output checked ─► check(request, facts) ─► load the model ─► render (best of N takes)
                  ─► publish (watermark, manifest, sidecar, review)

Everything a request can be refused for is refused before the model loads, and nothing
is written until the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kinema.errors import InputError
from kinema.io import check_output_path, is_still
from kinema.pipelines.facts import ModelFacts
from kinema.pipelines.preview import Preview
from kinema.render import Checked, ClipRequest, Rendered, check, render
from kinema.studio.bestof import DEFAULT_THRESHOLD, best_of, check_counts

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Takes:
    """Best-of-N: N candidate seeds (seed, seed+1, …), up to `retakes` more while none
    passes QA, and the QA score a kept take needs."""

    candidates: int = 1
    retakes: int = 0
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        check_counts(self.candidates, self.retakes, self.threshold)

    @property
    def several(self) -> bool:
        return self.candidates > 1 or self.retakes > 0


def prepare(request: ClipRequest, output: str | os.PathLike) -> Checked:
    """Check the output path and REQUEST (against its model's facts) before any work; a
    still (.png, .jpg, .webp output) is a one-frame request. Returns the Checked request."""
    kind = check_output_path(output)
    if is_still(kind):
        if request.mode != "generate":
            raise InputError(f"a still (.{kind}) comes from generate; write the {request.mode} as a clip")
        request = replace(request, still=True)
    if request.narration is not None and kind in ("gif", "frames") or (request.narration and is_still(kind)):
        where = {"gif": "a GIF", "frames": "a folder of PNG frames"}.get(kind, f"a .{kind} still")
        raise InputError(f"{where} cannot carry narration; write .mp4 or .webm")
    return check(request, ModelFacts.read(request.model))


def produce(
    checked: Checked,
    output: str | os.PathLike,
    *,
    takes: Takes = Takes(),
    progress: Progress | None = None,
    preview: Preview | None = None,
) -> dict:
    """Render a Checked request (best of its takes) and publish it at OUTPUT; returns the
    sidecar record ("id", "path", "seed", …). PREVIEW is shown each take as it is sampled."""
    from kinema.pipelines.loading import load
    from kinema.publish import publish_rendered

    r = checked.request
    pipe = load(r.model, r.device, savers=r.savers, int8=r.int8)
    if takes.several:
        rendered = render_best(pipe, checked, takes, progress, preview)
    else:
        rendered = render(pipe, checked, progress, preview)
    return publish_rendered(rendered, Path(os.fspath(output)), hide_prompt=r.hide_prompt)


def render_best(
    pipe, checked: Checked, takes: Takes, progress: Progress | None = None, preview: Preview | None = None
) -> Rendered:
    """The Rendered take kept by best-of-N (kinema.studio.bestof) over seeds seed, seed+1,
    …; its settings record the kept seed and every take."""
    made: dict[int, Rendered] = {}

    def make(seed: int):
        rendered = render(pipe, checked.with_seed(seed), preview=preview)
        # best_of keeps the best take's pixels; only the small rest of each take stays here
        made[seed] = replace(rendered, video=None)
        return rendered.video, False

    def count(take) -> None:
        if progress:
            progress(len(made), takes.candidates + takes.retakes)

    r = checked.request
    choice = best_of(make, r.prompt, r.seed, takes.candidates, takes.retakes, takes.threshold, count)
    best = made[choice.best.seed]
    return replace(best, video=choice.video, settings={**best.settings, "takes": choice.record()})


def produce_board(board, template: ClipRequest, output: str | os.PathLike, fps: float, progress=None) -> dict:
    """Check every shot of BOARD (a loaded kinema.studio.storyboard Board) with TEMPLATE's
    shared options and the output path before the model loads, make the shots, join them
    and publish the finished clip at OUTPUT; returns its sidecar record."""
    from kinema.pipelines.loading import load
    from kinema.provenance.origin import Origin
    from kinema.publish import publish
    from kinema.studio.storyboard import check_board, render_board

    check_output_path(output)
    facts = ModelFacts.read(template.model)
    check_board(board, template, facts, fps)
    pipe = load(template.model, template.device, savers=template.savers, int8=template.int8)
    video, log = render_board(pipe, board, board.path.parent, fps, template, facts, progress)
    settings = {
        "storyboard": str(board.path),
        "seed": board[0].seed,
        "shots": log,
        "frames": video.num_frames,
        "fps": video.fps,
        "steps": template.steps,
    }
    images = [shot.image for shot in board if shot.image is not None]
    origin = Origin(pipe.name, pipe.model_hash)
    return publish(video, output, settings, origin, ingredients=images, hide_prompt=template.hide_prompt)
