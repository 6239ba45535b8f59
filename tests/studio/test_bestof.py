"""Best-of-N and auto-retake, on rendered shapes-world clips standing in for a model's takes."""

import dataclasses

import numpy as np
import pytest

from kinema.errors import InputError
from kinema.io import Video
from kinema.studio.bestof import best_of, generate_best, qa_score, seam_measure
from kinema.world import parse, render_frames

PROMPT = "a red circle moving right on a black background"


def world_clip(prompt: str = PROMPT, seed: int = 0, colour: str | None = None) -> Video:
    """The renderer's clip of `prompt`; with `colour`, its object drawn in that colour instead
    (a take the world checker fails: the asked-for object is drawn in the wrong colour)."""
    scene = parse(prompt)
    if colour is not None:
        scene = dataclasses.replace(scene, objects=[dataclasses.replace(scene.objects[0], colour=colour)])
    return Video(render_frames(scene, seed=seed, frames=16), 8.0)


class Maker:
    """make(seed) for best_of: good takes for the seeds in `good`, wrong-colour takes otherwise."""

    def __init__(self, good: set[int]):
        self.good, self.calls = good, []

    def __call__(self, seed: int):
        self.calls.append(seed)
        return world_clip(seed=seed, colour=None if seed in self.good else "blue"), False


def test_qa_score_rewards_the_right_clip_and_explains_the_wrong_one():
    good = qa_score(world_clip(), PROMPT)
    assert good["world_pass"] is True and good["world_score"] == 1.0
    assert good["score"] == pytest.approx(0.5 + 0.5 * good["temporal_score"], abs=1e-3)
    bad = qa_score(world_clip(colour="blue"), PROMPT)
    assert bad["world_pass"] is False and 0 < bad["world_score"] < 1 and bad["score"] < good["score"]
    assert any("colour reads as blue" in r for r in bad["world_reasons"])
    free = qa_score(world_clip(), "a slow pan over a harbour at dusk")  # not a world prompt
    assert free["world_pass"] is None and free["score"] == free["temporal_score"]
    assert set(good["metrics"]) >= {"background_flicker", "identity_drift", "frame_order"}


def test_best_of_keeps_the_passing_candidate_and_only_its_pixels():
    make = Maker(good={12})
    choice = best_of(make, PROMPT, seed=10, candidates=4)
    assert make.calls == [10, 11, 12, 13]
    assert choice.best.seed == 12 and choice.best.passed
    assert np.array_equal(choice.video.frames, world_clip(seed=12).frames)
    record = choice.record()
    assert record["seed"] == 12 and [t["world_pass"] for t in record["takes"]] == [False, False, True, False]
    assert record["retakes"] == 0 and "notes" not in record


def test_ties_keep_the_earliest_seed():
    choice = best_of(Maker(good={3, 4, 5}), PROMPT, seed=3, candidates=3)
    assert choice.best.seed == 3


def test_retakes_stop_at_the_first_pass_and_say_why():
    make = Maker(good={7})
    choice = best_of(make, PROMPT, seed=5, candidates=1, retakes=5)
    assert make.calls == [5, 6, 7]  # a pass at seed 7 ends the retakes
    assert [t.kind for t in choice.takes] == ["candidate", "retake", "retake"]
    assert choice.best.seed == 7
    why = choice.record()["retake_reasons"]
    assert len(why) == 2 and all("failed QA" in w and "world check" in w for w in why)
    assert "seed 5" in why[0]


def test_a_shot_no_take_passes_keeps_the_best_and_notes_it():
    make = Maker(good=set())
    choice = best_of(make, PROMPT, seed=0, candidates=2, retakes=2)
    assert len(make.calls) == 4 and not choice.best.passed
    assert "no take passed QA after 4 tries" in choice.record()["notes"][0]


def test_a_take_below_the_threshold_is_retaken():
    moving = world_clip(seed=1)
    frozen = Video(np.repeat(moving.frames[:1], 16, axis=0), 8.0)  # dynamic_degree flags it

    def make(seed):
        return (frozen if seed == 0 else moving), False

    prompt = "a slow pan over a harbour at dusk"  # no world check: the score alone decides
    choice = best_of(make, prompt, seed=0, candidates=1, retakes=2, threshold=0.9)
    assert [t.seed for t in choice.takes] == [0, 1] and choice.best.seed == 1
    assert "score 0.86 below 0.90" in choice.takes[1].why and "dynamic_degree" in choice.takes[1].why
    assert best_of(make, prompt, seed=0, retakes=2, threshold=0.8).best.seed == 0  # 0.86 is enough


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"candidates": 0}, "candidates"),
        ({"candidates": 65}, "candidates"),
        ({"retakes": -1}, "retakes"),
        ({"candidates": True}, "candidates"),
        ({"threshold": 1.5}, "qa_threshold"),
    ],
)
def test_bad_counts_are_refused_before_any_take(kwargs, message):
    make = Maker(good=set())
    with pytest.raises(InputError, match=message):
        best_of(make, PROMPT, seed=0, **kwargs)
    assert make.calls == []


def test_seam_measure_passes_a_continuation_and_flags_a_jump():
    clip = render_frames(parse(PROMPT), seed=1, frames=20)
    smooth = seam_measure(clip[3], clip[3:])  # the take opens on the frame before it
    assert not smooth["flag"] and smooth["value"] <= 1.5
    other = render_frames(parse("a blue square moving up on a black background"), seed=1, frames=17)
    assert seam_measure(clip[3], other)["flag"]
    # a continued take is judged on its seam as one more temporal measure
    qa = qa_score(Video(other, 8.0), None, before=clip[3])
    assert "seam" in qa["flags"] and qa["metrics"]["seam"]["flag"]


def test_generate_best_wraps_a_pipeline():
    calls = []

    def pipe(prompt, *, seed, frames):
        calls.append((seed, frames))
        return world_clip(prompt, seed=seed, colour=None if seed == 2 else "green")

    choice = generate_best(pipe, PROMPT, seed=1, candidates=1, retakes=3, frames=16)
    assert calls == [(1, 16), (2, 16)] and choice.best.seed == 2
