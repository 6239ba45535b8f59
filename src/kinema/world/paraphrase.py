"""Other ways of saying a shapes-world scene: a synonym and template list of our own.

The grammar (kinema.world.grammar) says a scene one way. `paraphrase(scene, rng)` says
it in other words: synonyms for sizes, colours, shapes, motions and backgrounds, other
word orders, and templates for one and two objects. Every list is split in two:

- TRAIN wordings are what a DiT training run may see as captions (caption augmentation)
  and what a prompt reader may keep in its lexicon;
- HELD_OUT wordings are never trained on and never in a reader's lexicon: they measure
  how far a model or a reader generalises to wordings it never saw.

Every synonym class (each size word, colour, shape, motion, background colour, the
background noun) and every template family keeps at least one wording only in the
held-out split. The held-out colour words are the -ish derivations (reddish, bluish, …)
and the held-out shapes, sizes and motions are synonyms of their own; the reasons are
in the lists below.

`paraphrase_set(n, seed)` draws n evaluation prompts built only from held-out wordings,
from the scenes and layout seeds of kinema.world.dataset.validation_split (layout seeds
≥ 2**62, never drawn in training). Everything is a pure function of its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinema.world.grammar import format_prompt, parse
from kinema.world.scene import Scene, WorldObject

SPLITS = ("train", "held_out")


@dataclass(frozen=True)
class Wordings:
    """The ways of saying one thing, in the two splits."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]

    def of(self, split: str) -> tuple[str, ...]:
        return self.train if split == "train" else self.held_out


@dataclass(frozen=True)
class Verb:
    """A motion said as a verb phrase: `-ing` form ("sliding") and present tense ("slides")."""

    ing: str
    present: str


def _verbs(*pairs: tuple[str, str]) -> tuple[Verb, ...]:
    return tuple(Verb(ing, present) for ing, present in pairs)


# ---------------------------------------------------------------------- the lists

# Size words of the one-object scene ("no size word" stays without a word).
SIZES: dict[str, Wordings] = {
    "small": Wordings(("small", "little", "tiny"), ("miniature", "petite")),
    "big": Wordings(("big", "large", "huge", "giant"), ("enormous", "massive")),
}
# Object colours. The held-out words are the -ish derivations: MiniLM, the text encoder
# every reader and the DiT hear through, places rarer colour names (crimson, navy, teal)
# nearer other hues than their own, so a held-out list of them would measure the encoder,
# not what a model learns from captions; those names are in the train split instead.
COLOURS: dict[str, Wordings] = {
    "red": Wordings(("red", "scarlet", "crimson", "ruby", "cherry"), ("reddish",)),
    "green": Wordings(("green", "emerald", "lime", "jade"), ("greenish",)),
    "blue": Wordings(("blue", "navy", "azure", "cobalt", "sapphire"), ("bluish",)),
    "yellow": Wordings(("yellow", "golden", "lemon", "gold"), ("yellowish",)),
    "purple": Wordings(("purple", "violet", "lilac", "plum", "lavender"), ("purplish",)),
    "orange": Wordings(("orange", "amber", "tangerine", "apricot"), ("orangish",)),
    "cyan": Wordings(("cyan", "teal", "turquoise", "aqua"), ("cyanish",)),
}
SHAPES: dict[str, Wordings] = {
    "circle": Wordings(("circle", "disc", "ball", "dot", "round shape"), ("sphere", "orb")),
    "square": Wordings(("square", "box", "block", "tile", "square shape"), ("cube",)),
    "triangle": Wordings(("triangle", "pyramid", "wedge", "three-sided shape"), ("triangular shape",)),
}
BACKGROUND_COLOURS: dict[str, Wordings] = {
    "black": Wordings(("black", "dark", "pitch-black"), ("blackish",)),
    "white": Wordings(("white", "snow-white", "snowy"), ("whitish",)),
    "gray": Wordings(("gray", "grey", "silver"), ("greyish",)),
}
BACKGROUND_NOUNS = Wordings(("background", "backdrop"), ("canvas", "backcloth"))

# Motions. A directed move is a mover verb and a direction; up and down also have verbs
# of their own; growing, shrinking and staying still are verbs alone.
MOVERS = Wordings(
    _verbs(
        ("moving", "moves"),
        ("sliding", "slides"),
        ("drifting", "drifts"),
        ("heading", "heads"),
        ("travelling", "travels"),
        ("going", "goes"),
        ("floating", "floats"),
    ),
    _verbs(("gliding", "glides"), ("cruising", "cruises")),
)
DIRECTIONS: dict[str, Wordings] = {
    "left": Wordings(("left", "to the left", "leftward", "leftwards"), ("towards the left",)),
    "right": Wordings(("right", "to the right", "rightward", "rightwards"), ("towards the right",)),
    "up": Wordings(("up", "upward", "upwards"), ("towards the top",)),
    "down": Wordings(("down", "downward", "downwards"), ("towards the bottom",)),
}
MOTION_VERBS: dict[str, Wordings] = {
    "moving up": Wordings(
        _verbs(("rising", "rises"), ("climbing", "climbs")), _verbs(("ascending", "ascends"))
    ),
    "moving down": Wordings(
        _verbs(("sinking", "sinks"), ("falling", "falls"), ("dropping", "drops")),
        _verbs(("descending", "descends"), ("plunging", "plunges")),
    ),
    "growing": Wordings(
        _verbs(
            ("growing", "grows"),
            ("expanding", "expands"),
            ("swelling", "swells"),
            ("getting bigger", "gets bigger"),
            ("growing bigger", "grows bigger"),
        ),
        _verbs(("enlarging", "enlarges"), ("getting larger", "gets larger")),
    ),
    "shrinking": Wordings(
        _verbs(
            ("shrinking", "shrinks"),
            ("dwindling", "dwindles"),
            ("contracting", "contracts"),
            ("getting smaller", "gets smaller"),
        ),
        _verbs(("diminishing", "diminishes")),
    ),
    "staying still": Wordings(
        _verbs(
            ("staying still", "stays still"),
            ("not moving", "does not move"),
            ("sitting still", "sits still"),
            ("staying put", "stays put"),
            ("standing still", "stands still"),
            ("resting", "rests"),
        ),
        _verbs(("motionless", "is motionless"), ("stationary", "is stationary")),
    ),
}

# Where the background is said: after the objects ("… on a black backdrop") or before
# them ("on a gray background, a …"). {c} is the colour, {n} the noun.
BACKGROUND_PHRASES = Wordings(
    ("on a {c} {n}", "against a {c} {n}", "over a {c} {n}", "on {c}", "against {c}"),
    ("in front of a {c} {n}", "upon a {c} {n}"),
)
# Templates: {obj} a noun phrase, {ing}/{present} its motion, {bg} the background phrase.
ONE_OBJECT = Wordings(
    (
        "{obj} {ing} {bg}",
        "{bg}, {obj} {ing}",
        "{obj} that is {ing} {bg}",
        "{obj} that {present} {bg}",
        "{bg}: {obj} {ing}",
    ),
    ("there is {obj} {ing} {bg}", "{obj}, {ing}, {bg}", "{bg}, {obj} {present}"),
)
# Two objects: the first named is the left one unless the template says where each is.
TWO_OBJECTS = Wordings(
    (
        "{obj1} {ing1} and {obj2} {ing2} {bg}",
        "{bg}, {obj1} {present1} while {obj2} {present2}",
        "on the left, {obj1} {ing1}, and on the right, {obj2} {ing2}, {bg}",
        "{obj1} that is {ing1} and {obj2} that is {ing2} {bg}",
    ),
    (
        "{obj1} {ing1} as {obj2} {ing2} {bg}",
        "there are two shapes {bg}: {obj1} {ing1} and {obj2} {ing2}",
        "{obj2} {ing2} on the right and {obj1} {ing1} on the left, {bg}",
    ),
)


# ---------------------------------------------------------------------- drawing wordings


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _article(words: str) -> str:
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def _noun_phrase(obj: WorldObject, rng: np.random.Generator, split: str) -> str:
    words = []
    if obj.size is not None:
        words.append(_pick(rng, SIZES[obj.size].of(split)))
    words.append(_pick(rng, COLOURS[obj.colour].of(split)))
    words.append(_pick(rng, SHAPES[obj.shape].of(split)))
    return _article(" ".join(words))


def _motion(motion: str, rng: np.random.Generator, split: str) -> Verb:
    """A verb phrase for MOTION, in both tenses."""
    if motion.startswith("moving "):
        direction = motion.split()[1]
        own = MOTION_VERBS.get(motion)
        # up and down: their own verbs half the time, a mover and a direction otherwise
        if own is not None and rng.random() < 0.5:
            return _pick(rng, own.of(split))
        mover = _pick(rng, MOVERS.of(split))
        way = _pick(rng, DIRECTIONS[direction].of(split))
        return Verb(f"{mover.ing} {way}", f"{mover.present} {way}")
    return _pick(rng, MOTION_VERBS[motion].of(split))


def _background(background: str, rng: np.random.Generator, split: str) -> str:
    phrase = _pick(rng, BACKGROUND_PHRASES.of(split))
    colour = _pick(rng, BACKGROUND_COLOURS[background].of(split))
    return phrase.format(c=colour, n=_pick(rng, BACKGROUND_NOUNS.of(split)))


def _fix_articles(text: str) -> str:
    """'a' before a vowel becomes 'an' (the background phrase's article too)."""
    words = text.split(" ")
    for i, word in enumerate(words[:-1]):
        if word in ("a", "an"):
            words[i] = "an" if words[i + 1][:1] in "aeiou" else "a"
    return " ".join(words)


def paraphrase(scene: Scene, rng: np.random.Generator, split: str = "train") -> str:
    """SCENE said in words drawn from SPLIT ("train" or "held_out") with RNG.

    The scene's meaning is kept exactly; a train wording may happen to be the canonical
    prompt itself (its lists hold the grammar's words too), a held-out one never is.
    Refuses an unknown split.
    """
    _check_split(split)
    bg = _background(scene.background, rng, split)
    if len(scene.objects) == 1:
        (obj,) = scene.objects
        verb = _motion(obj.motion, rng, split)
        template = _pick(rng, ONE_OBJECT.of(split))
        text = template.format(obj=_noun_phrase(obj, rng, split), ing=verb.ing, present=verb.present, bg=bg)
    else:
        first, second = scene.objects
        verbs = [_motion(o.motion, rng, split) for o in scene.objects]
        template = _pick(rng, TWO_OBJECTS.of(split))
        text = template.format(
            obj1=_noun_phrase(first, rng, split),
            obj2=_noun_phrase(second, rng, split),
            ing1=verbs[0].ing,
            ing2=verbs[1].ing,
            present1=verbs[0].present,
            present2=verbs[1].present,
            bg=bg,
        )
    return _fix_articles(text)


def paraphrase_set(n: int = 50, seed: int = 0) -> list[tuple[str, str, int]]:
    """N evaluation prompts in held-out wordings only: (paraphrase, canonical prompt,
    layout seed), the scenes and layout seeds of validation_split (seen pairs, seeds ≥
    2**62). The same (n, seed) always gives the same list."""
    from kinema.world.dataset import validation_split  # torch comes with it: only when asked

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9A4A]))
    out = []
    for canonical, layout_seed in validation_split(n, held_out=False, seed=seed):
        scene = parse(canonical)
        out.append((paraphrase(scene, rng, "held_out"), format_prompt(scene), layout_seed))
    return out


def all_wordings(split: str) -> dict[str, tuple[str, ...]]:
    """Every wording of SPLIT by what it says ("colour:red", "motion:growing", "mover",
    "direction:left", "template:one", …): what a reader may learn from (train) or must
    never contain (held_out)."""
    _check_split(split)
    out: dict[str, tuple[str, ...]] = {}
    for family, table in (
        ("size", SIZES),
        ("colour", COLOURS),
        ("shape", SHAPES),
        ("background", BACKGROUND_COLOURS),
        ("direction", DIRECTIONS),
    ):
        for value, wordings in table.items():
            out[f"{family}:{value}"] = wordings.of(split)
    for value, verbs in MOTION_VERBS.items():
        out[f"motion:{value}"] = tuple(w for v in verbs.of(split) for w in (v.ing, v.present))
    out["mover"] = tuple(w for v in MOVERS.of(split) for w in (v.ing, v.present))
    out["background_noun"] = BACKGROUND_NOUNS.of(split)
    out["template:background"] = BACKGROUND_PHRASES.of(split)
    out["template:one"] = ONE_OBJECT.of(split)
    out["template:two"] = TWO_OBJECTS.of(split)
    return out
