import numpy as np
import torch
from torch.utils.data import DataLoader

from kinema.world import HELD_OUT_PAIRS, check, parse
from kinema.world.dataset import TRAIN_SEEDS, WorldClips, training_sample, validation_split


def _pairs(prompt):
    return {(o.colour, o.shape) for o in parse(prompt).objects}


def test_samples_are_pure_functions_of_their_index():
    a, b = training_sample(1, 0, 5), training_sample(1, 0, 5)
    assert a.prompt == b.prompt and np.array_equal(a.frames, b.frames)
    assert training_sample(1, 0, 6).layout_seed != a.layout_seed
    assert training_sample(1, 1, 5).layout_seed != a.layout_seed


def test_training_never_shows_held_out_pairs_and_mixes_scene_kinds():
    counts = {1: 0, 2: 0}
    for i in range(600):
        s = training_sample(0, 0, i, frames=1, size=16)
        assert not (_pairs(s.prompt) & HELD_OUT_PAIRS), s.prompt
        assert s.layout_seed < TRAIN_SEEDS
        counts[len(parse(s.prompt).objects)] += 1
    assert counts[1] > 300 and counts[2] > 120


def test_training_clips_satisfy_their_prompts():
    for i in range(20):
        s = training_sample(3, 0, i)
        assert s.frames.shape == (16, 64, 64, 3) and s.offset == 0
        assert check(s.frames, s.prompt)["pass"], s.prompt
    offsets = {training_sample(3, 0, i, frames=1, size=16, random_offset=True).offset for i in range(60)}
    assert len(offsets) > 10 and all(0 <= o < 30 for o in offsets)


def test_loader_workers_get_distinct_streams_and_resume_is_exact():
    data = WorldClips(seed=0, frames=2, size=16)
    loader = DataLoader(data, batch_size=None, num_workers=2)
    it = iter(loader)
    prompts_frames = [next(it) for _ in range(8)]
    fingerprints = {(d["prompt"], d["frames"].sum().item()) for d in prompts_frames}
    assert len(fingerprints) == 8  # the two workers do not repeat each other
    first = next(iter(WorldClips(seed=0, frames=2, size=16, start=3)))
    third = [d for _, d in zip(range(4), iter(WorldClips(seed=0, frames=2, size=16)), strict=False)][3]
    assert first["prompt"] == third["prompt"] and torch.equal(first["frames"], third["frames"])


def test_validation_splits_are_fixed_disjoint_and_held_out_as_asked():
    val = validation_split(32)
    assert val == validation_split(32)
    assert all(seed >= TRAIN_SEEDS for _, seed in val)
    assert not any(_pairs(p) & HELD_OUT_PAIRS for p, _ in val)
    held = validation_split(12, held_out=True)
    assert all(_pairs(p) & HELD_OUT_PAIRS for p, _ in held)
    assert any(len(parse(p).objects) == 2 for p, _ in held)
