"""The prompt reader's rules, without a text encoder (words it does not hold are then out
of the world) or with a made-up one."""

import numpy as np
import pytest

from kinema.world.dataset import validation_split
from kinema.world.reading import LEXICON, Vocabulary, derived_meaning, read


@pytest.mark.parametrize("held_out", [False, True])
def test_a_canonical_prompt_reads_as_itself_with_no_warning(held_out):
    for prompt, _ in validation_split(50, held_out=held_out):
        reading = read(prompt)
        assert reading.understood == prompt and reading.confidence == 1.0
        assert reading.warnings == () and not reading.changed


def test_case_spaces_and_a_full_stop_read_as_the_canonical_prompt():
    reading = read("  A Red circle moving right on a black background. ")
    assert reading.understood == "a red circle moving right on a black background" and reading.changed


@pytest.mark.parametrize(
    ("typed", "understood"),
    [
        ("a little crimson disc sliding to the right on a black backdrop", "a small red circle moving right"),
        ("on a gray background, a navy box that is dwindling", "a blue square shrinking"),
        ("a huge teal ball sits still on white", "a big cyan circle staying still"),
        ("a violet pyramid that is not moving, against a dark backdrop", "a purple triangle staying still"),
        ("an amber dot getting bigger", "an orange circle growing"),
        ("reddish circles drifting leftwards", "a red circle moving left"),
    ],
)
def test_other_words_read_into_the_worlds_words(typed, understood):
    reading = read(typed)
    assert reading.understood.startswith(understood), reading
    assert reading.out_of_world == ()


def test_a_reading_names_each_objects_slots_as_said_or_filled_in():
    canonical = read("a big green circle moving right on a black background").objects
    assert canonical == ({"colour": "green", "shape": "circle", "motion": "moving right", "size": "big"},)
    assert read("a large green ball sliding to the right on a black backdrop").objects == canonical
    # a control supplies the motion: left out, not filled in; no size said, none named
    assert read("a green ball on black", supplied=("motion",)).objects == (
        {"colour": "green", "shape": "circle"},
    )
    two = read("a red circle moving up and a blue square moving down on a gray background").objects
    assert [o["shape"] for o in two] == ["circle", "square"]
    assert read("a cat playing piano").objects == ()


def test_two_objects_split_at_and_while_or_a_second_noun_and_order_left_to_right():
    want = "a red circle moving up and a blue square moving down on a gray background"
    for typed in (
        "a scarlet ball rising and a navy box sinking on grey",
        "on a grey backdrop, a scarlet ball rises while a navy box sinks",
        "a navy box sinking on the right and a scarlet ball rising on the left, on grey",
        "on the left, a scarlet ball rising, and on the right, a navy box sinking, on grey",
    ):
        assert read(typed).understood == want, typed


def test_scenes_the_model_cannot_draw_are_not_read_and_say_why():
    same = read("a red ball rising and a scarlet box sinking on black")
    assert same.understood is None and "different colours" in same.warnings[0]
    sideways = read("a red ball sliding left and a blue box sinking on black")
    assert sideways.understood is None and "two-shape scenes move only" in sideways.warnings[0]
    sized = read("a big red ball rising and a blue box sinking on black")
    assert sized.understood == "a red circle moving up and a blue square moving down on a black background"
    assert "no size words" in sized.warnings[0]
    three = read("a red ball, a blue box and a green wedge, all still, on black")
    assert "one or two shapes" in three.warnings[-1]


def test_what_the_prompt_leaves_unsaid_is_filled_and_named():
    reading = read("a scarlet ball")
    assert reading.understood == "a red circle staying still on a black background"
    assert set(reading.filled) == {"motion", "background"} and reading.confidence < 1


def test_out_of_world_words_warn_and_the_in_world_part_is_read():
    mixed = read("a red cat moving right on a black background")
    assert mixed.understood == "a red circle moving right on a black background"
    assert mixed.out_of_world == ("cat",) and "shape" in mixed.filled
    assert mixed.warnings == ('the built-in model knows coloured shapes; nothing here matches "cat"',)
    outside = read("a cat playing piano")
    assert outside.understood is None and outside.confidence == 0.0
    # the things are named; an activity only when nothing else is unknown
    assert outside.warnings == (
        'the built-in model knows coloured shapes; nothing here matches "cat", "piano"',
    )
    assert read("dancing").warnings == (
        'the built-in model knows coloured shapes; nothing here matches "dancing"',
    )
    assert read("x").understood is None and "names none" in read("x").warnings[0]


def test_adapter_words_are_never_replaced():
    reading = read("a pink disc sliding right on a black backdrop", keep_words={"pink"}, embed=_fake_embed)
    assert reading.understood == "a pink circle moving right on a black background"
    assert reading.out_of_world == ()
    kept = read("a scarlet disc sliding right on a black backdrop", keep_words={"scarlet", "disc"})
    assert kept.understood == "a scarlet disc moving right on a black background"
    # a kept word the reader cannot place: the prompt goes as typed, not without it
    stranded = read("a zorbly disc sliding right", keep_words={"zorbly"})
    assert stranded.understood == "a zorbly disc sliding right" and stranded.confidence == 0.0


def test_what_a_control_or_reference_supplies_is_never_filled_in():
    path = read("a scarlet ball on a dark backdrop", supplied={"motion"})
    assert path.understood == "a red circle on a black background" and "motion" not in path.filled
    reference = read("something drifting left against white", supplied={"colour", "shape"})
    assert reference.understood == "an object moving left on a white background"
    control = read("a tiny navy box against grey", supplied={"motion", "size"})
    assert control.understood == "a small blue square on a gray background"
    with pytest.raises(ValueError, match="supplied"):
        read("a red ball", supplied={"background"})


def test_suffixes_derive_meanings_from_lexicon_words():
    assert derived_meaning("reddish") == "colour:red" and derived_meaning("greyish") == "background:gray"
    assert derived_meaning("triangular") == "shape:triangle" and derived_meaning("boxes") == "shape:square"
    assert derived_meaning("larger") == "motion:growing" and derived_meaning("tinier") == "motion:shrinking"
    assert derived_meaning("reduce") is None and derived_meaning("cat") is None


def _fake_embed(texts):
    """A made-up encoder: "pink" lands on "red", "glowing" on "sliding"; the rest apart."""
    near = {"pink": "red", "glowing": "sliding"}
    vectors = []
    for text in texts:
        seed = sum(map(ord, near.get(text, text)))
        v = np.random.default_rng(seed).normal(size=16)
        vectors.append(v / np.linalg.norm(v))
    return np.stack(vectors)


def test_the_vocabulary_embeds_the_lexicon_once_and_each_new_word_once():
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return _fake_embed(texts)

    vocabulary = Vocabulary(embed)
    assert calls == []  # nothing until a word is missing
    read("a red circle moving right on a black background", vocabulary)
    read("a scarlet ball rising on black", vocabulary)
    assert calls == []
    reading = read("a red ball glowing left on black", vocabulary)
    assert reading.understood == "a red circle moving left on a black background"
    assert len(calls) == 2 and len(calls[0]) == len(LEXICON) and calls[1] == ["glowing"]
    read("a red ball glowing left on black", vocabulary)
    assert len(calls) == 2
    # nouns never take a motion's meaning, verbs never a thing's
    assert vocabulary.nearest(["glowing"])["glowing"][0] == ("mover", pytest.approx(1.0))
