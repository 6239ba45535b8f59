import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinema.world import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    SHAPES,
    TWO_OBJECT_MOTIONS,
    PromptError,
    Scene,
    WorldObject,
    format_prompt,
    parse,
)


def _one_object_scenes():
    for bg, size, colour, shape, motion in itertools.product(
        BACKGROUNDS, (None, "small", "big"), COLOURS, SHAPES, MOTIONS
    ):
        yield Scene((WorldObject(colour, shape, motion, size),), bg)


def _two_object_scenes():
    for bg, (c1, c2), s1, s2, m1, m2 in itertools.product(
        BACKGROUNDS,
        itertools.permutations(COLOURS, 2),
        SHAPES,
        SHAPES,
        TWO_OBJECT_MOTIONS,
        TWO_OBJECT_MOTIONS,
    ):
        yield Scene((WorldObject(c1, s1, m1), WorldObject(c2, s2, m2)), bg)


def test_every_canonical_prompt_round_trips():
    count = 0
    for scene in itertools.chain(_one_object_scenes(), _two_object_scenes()):
        prompt = format_prompt(scene)
        assert parse(prompt) == scene
        assert format_prompt(parse(prompt)) == prompt
        count += 1
    assert count == 3 * 3 * 7 * 3 * 7 + 3 * 42 * 9 * 25


def test_articles_follow_english_and_parsers_accept_either():
    scene = parse("an orange square moving up on a gray background")
    assert format_prompt(scene) == "an orange square moving up on a gray background"
    assert parse("a orange square moving up on a gray background") == scene
    big = Scene((WorldObject("orange", "square", "moving up", "big"),), "gray")
    assert format_prompt(big) == "a big orange square moving up on a gray background"
    assert parse("an big orange square moving up on a gray background") == big


def test_case_spaces_and_full_stop_are_forgiven():
    assert parse("  A Red  Circle moving RIGHT on a black background. ") == parse(
        "a red circle moving right on a black background"
    )


@pytest.mark.parametrize(
    "prompt, word",
    [
        ("a magenta circle moving right on a black background", "'magenta'"),
        ("a red hexagon moving right on a black background", "'hexagon'"),
        ("a red circle moving sideways on a black background", "'sideways'"),
        ("a red circle moving right on a pink background", "'pink'"),
        ("a red circle moving right in a black background", "'in'"),
        ("a red circle moving right on a black background please", "'please'"),
        ("the red circle moving right on a black background", "'the'"),
    ],
)
def test_unknown_words_are_named_with_what_was_expected(prompt, word):
    with pytest.raises(PromptError, match=word) as info:
        parse(prompt)
    assert "expected" in str(info.value) or "end" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "prompt, fragment",
    [
        ("", "empty prompt"),
        ("   ", "empty prompt"),
        ("a red circle", "ends too early"),
        (
            "a red circle moving left and a blue square moving up on a black background",
            "moving left",
        ),
        (
            "a red circle moving up and a red square moving up on a black background",
            "different colours",
        ),
        ("a big red circle moving up and a blue square moving up on a black background", "size"),
        ("a red circle moving up and a small blue square moving up on a black background", "size"),
    ],
)
def test_scene_rules_are_refused_with_a_reason(prompt, fragment):
    with pytest.raises(PromptError, match=fragment):
        parse(prompt)


@given(st.text(max_size=60))
def test_parse_either_succeeds_or_raises_prompt_error(text):
    try:
        scene = parse(text)
    except PromptError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert parse(format_prompt(scene)) == scene
