"""Colour lessons: what the training clips show, and that the test prompts judge only
what the lesson never combined."""

from collections import Counter

import pytest

from kinema.world import parse
from kinema.world.lessons import LESSON_SHAPES, TEST_SEED_BASE, lesson_scenes, lesson_test


def _combo(scene):
    obj = scene.objects[0]
    return obj.shape, obj.motion, scene.background


def test_a_lesson_shows_each_shape_at_each_size_alike_and_no_combination_twice():
    scenes = lesson_scenes("pink", 32)
    objects = [scene.objects[0] for scene, _ in scenes]
    assert {o.colour for o in objects} == {"pink"}
    assert {o.shape for o in objects} == set(LESSON_SHAPES)
    by_shape_and_size = Counter((o.shape, o.size) for o in objects)
    # 32 clips, 2 shapes, 3 size words: every (shape, size) 5 or 6 times
    assert set(by_shape_and_size.values()) <= {5, 6} and len(by_shape_and_size) == 6
    combos = [_combo(scene) for scene, _ in scenes]
    assert len(set(combos)) == len(combos)


def test_the_test_prompts_combine_what_no_lesson_clip_showed():
    shown = {_combo(scene) for seed in range(3) for scene, _ in lesson_scenes("pink", 32, seed)}
    tests = lesson_test("pink", 20)
    assert len(tests) == 20
    for prompt, seed in tests:
        scene = parse(prompt)
        assert seed >= TEST_SEED_BASE
        assert scene.objects[0].colour == "pink"
        assert _combo(scene) not in shown
    assert sum(parse(p).objects[0].shape == "triangle" for p, _ in tests) == 10


def test_only_colours_outside_v1_are_taught():
    with pytest.raises(ValueError, match="outside v1"):
        lesson_scenes("red")
