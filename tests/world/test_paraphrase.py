"""Paraphrases of shapes-world scenes: deterministic, meaning-preserving, and split so the
held-out wordings are never among the train ones (nor in the reader's lexicon)."""

import numpy as np
import pytest

from kinema.world import format_prompt, parse
from kinema.world.dataset import TRAIN_SEEDS, sample_scene, validation_split
from kinema.world.paraphrase import (
    BACKGROUND_COLOURS,
    COLOURS,
    DIRECTIONS,
    MOTION_VERBS,
    SHAPES,
    SIZES,
    all_wordings,
    paraphrase,
    paraphrase_set,
)
from kinema.world.reading import LEXICON, read, words_of


def _scenes(n, seed=0):
    rng = np.random.default_rng(seed)
    return [sample_scene(rng) for _ in range(n)]


def test_the_same_rng_gives_the_same_wording():
    scene = parse("a big red circle moving right on a black background")
    a = [paraphrase(scene, np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    assert len({paraphrase(scene, np.random.default_rng(s)) for s in range(40)}) > 10


def test_every_class_keeps_a_wording_only_in_the_held_out_split():
    train, held = all_wordings("train"), all_wordings("held_out")
    assert set(train) == set(held)
    for what in train:
        assert held[what], what
        assert not set(held[what]) & set(train[what]), what
    every_train = {w for ws in train.values() for w in ws}
    assert not every_train & {w for ws in held.values() for w in ws}
    for table in (SIZES, COLOURS, SHAPES, BACKGROUND_COLOURS, DIRECTIONS, MOTION_VERBS):
        assert all(w.held_out for w in table.values())


def test_no_held_out_word_is_in_the_readers_lexicon():
    train_words = {w for k, ws in all_wordings("train").items() for x in ws for w in words_of(x)}
    held_words = {w for k, ws in all_wordings("held_out").items() for x in ws for w in words_of(x)}
    assert set(LEXICON) <= train_words | {"background"}
    assert not (held_words - train_words) & set(LEXICON)


@pytest.mark.parametrize("split", ["train", "held_out"])
def test_a_wording_says_every_part_of_its_scene(split):
    for i, scene in enumerate(_scenes(60)):
        text = paraphrase(scene, np.random.default_rng(i), split)
        for obj in scene.objects:
            colours = COLOURS[obj.colour].of(split)
            assert any(c in text for c in colours), (text, obj)
            assert any(s in text for s in SHAPES[obj.shape].of(split)), (text, obj)
        assert any(c in text for c in BACKGROUND_COLOURS[scene.background].of(split)), text


def test_the_lexicon_reads_every_train_wording_back_exactly():
    for i, scene in enumerate(_scenes(300, seed=1)):
        text = paraphrase(scene, np.random.default_rng(i), "train")
        reading = read(text)  # no encoder: the train lexicon alone
        assert reading.understood == format_prompt(scene), text
        assert reading.warnings == (), text


def test_the_paraphrase_set_uses_validation_scenes_and_held_out_wordings_only():
    items = paraphrase_set(50, seed=0)
    assert items == paraphrase_set(50, seed=0) and len(items) == 50
    assert [(c, s) for _, c, s in items] == validation_split(50, seed=0)
    assert all(s >= TRAIN_SEEDS for _, _, s in items)
    train_only = {w for ws in all_wordings("train").values() for x in ws for w in words_of(x)} - {
        w for ws in all_wordings("held_out").values() for x in ws for w in words_of(x)
    }
    for text, canonical, _ in items:
        assert text != canonical
        assert not set(words_of(text)) & train_only, text


def test_unknown_splits_and_sizes_are_refused():
    scene = parse("a red circle moving right on a black background")
    with pytest.raises(ValueError, match="split"):
        paraphrase(scene, np.random.default_rng(0), "test")
    with pytest.raises(ValueError, match="at least 1"):
        paraphrase_set(0)
