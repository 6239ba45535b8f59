"""Reading a prompt into the shapes world's canonical form (WORLD.md's grammar).

    read("a little crimson disc sliding to the right on a black backdrop")
      → Reading(understood="a small red circle moving right on a black background", …)

A canonical prompt reads as itself. Any other prompt is read word by word: each word is
looked up in a lexicon made only of the grammar's words and the TRAIN wordings of
kinema.world.paraphrase (never its held-out ones); a word the lexicon does not hold is
compared, through an `embed` function (the text encoder's sentence embedding, injected
by the caller), with every lexicon word, and takes the meaning of the nearest one when
it is near enough. Words are grouped into objects (split at "and", "while", commas, or a
second shape noun), each object's colour, shape, size and motion are read from its
words, the background from the words around "background", "on", "against".

What the prompt does not say is filled with a default (shape circle, colour red, motion
staying still, background black) and named in `filled`, unless a control or reference
supplies it (`supplied`: then the understood prompt leaves it out, as WORLD.md's
prompts under control do). Words in `keep_words` (a loaded adapter's caption words) are
never replaced: they stay as typed, in the slot they fill. Content words that match
nothing the model knows are `out_of_world`; a prompt with no colour or shape the model
knows is not read at all (`understood` None).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from kinema.world.grammar import PromptError, format_prompt, parse
from kinema.world.paraphrase import all_wordings
from kinema.world.scene import BACKGROUNDS, COLOURS, EXTRA_COLOURS, TWO_OBJECT_MOTIONS, Scene, WorldObject

Embed = Callable[[list[str]], np.ndarray]  # texts → (n, d) unit vectors

SLOTS = ("colour", "shape", "size", "motion")
DEFAULTS = {"colour": "red", "shape": "circle", "motion": "staying still", "background": "black"}
KNOWS = "the built-in model knows coloured shapes"

# General English words that carry no scene content (articles, pronouns, prepositions,
# auxiliaries, numbers, manner adverbs) and words that name the picture itself. They are
# neither read nor reported as unknown.
FUNCTION_WORDS = frozenset(
    """a an the this that these those there here it its itself they them their which who whom
    whose what where when something anything everything is are was were be been being am do does did doing has have having
    had can could will would shall should may might must of on in at to toward towards into
    onto upon over under above below across along against around through from by for with
    within near beside behind front between before after out off about like than then so
    very quite rather just only also too some any each both another other same
    one two three four single pair couple get gets getting got become becomes becoming keep
    keeps keeping seen seems looks shown slowly quickly steadily gently smoothly softly fast
    constantly continuously shape shapes object objects thing things item items form figure
    video clip animation scene image picture frame frames side half sides show shows showing
    depicting depicts featuring containing plain solid simple uniform""".split()
)
NEGATIONS = frozenset({"not", "no", "never", "without"})
CONJUNCTIONS = frozenset({"and", "while", "as", "whereas", "but", "whilst"})
POSITION_WORDS = frozenset({"on", "at", "in"})  # "on the left" is where, not where to
BACKGROUND_LEADS = frozenset({"on", "against", "over", "upon", "behind", "of"})

# How near (cosine) an unknown word must be to a lexicon word to take its meaning, by
# the lexicon word's family: just above the nearest of ~190 out-of-world words (nouns,
# non-motion verbs, other languages) that lands in the family, floor 0.5, as
# tools/reader_thresholds.py prints them from the train lexicon alone.
THRESHOLDS = {
    "size": 0.54,
    "colour": 0.68,
    "shape": 0.51,
    "background": 0.59,
    "background_noun": 0.50,
    "direction": 0.50,
    "motion": 0.50,
    "mover": 0.50,
}


@dataclass(frozen=True)
class Reading:
    """What a prompt was read as.

    `understood` is the prompt in the world's canonical form (None when nothing in the
    world was found, or the scene cannot be drawn: then `notes` say why); `out_of_world`
    the content words that match nothing the model knows; `filled` the slots the prompt
    left unsaid and the reader filled in; `confidence` in [0, 1] (1: a canonical
    prompt, or every slot said in lexicon words); `objects` each understood object's
    slots (SLOTS → value: "colour" → "green", "motion" → "moving right"), a slot absent
    when neither said nor filled in (a size left unsaid, a supplied motion)."""

    typed: str
    understood: str | None
    out_of_world: tuple[str, ...] = ()
    confidence: float = 1.0
    filled: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    objects: tuple[dict[str, str], ...] = ()

    @property
    def changed(self) -> bool:
        """True when the model is given other words than the typed ones."""
        return self.understood is not None and self.understood != self.typed

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line each: the words the model does not know, then the notes."""
        lines = list(self.notes)
        if self.out_of_world:
            # the things first: an unknown activity ("playing") is named only when alone
            named = [w for w in self.out_of_world if not w.endswith("ing")] or self.out_of_world
            words = ", ".join(f'"{w}"' for w in named)
            lines.insert(0, f"{KNOWS}; nothing here matches {words}")
        elif self.understood is None and not self.notes:
            lines.insert(0, f"{KNOWS}; this prompt names none")
        return tuple(lines)


# ---------------------------------------------------------------------- words


def words_of(text: str) -> list[str]:
    """Lower-case words and "," separators: hyphens split words, n't is "not", other
    punctuation goes."""
    text = text.lower().replace("n't", " not").replace("-", " ")
    text = re.sub(r"[,;:]", " , ", text)
    text = re.sub(r"[^\w\s,]", " ", text)
    return text.split()


def _family(meaning: str) -> str:
    return meaning.split(":")[0]


def build_lexicon() -> tuple[dict[str, str], frozenset[str]]:
    """(word → meaning, light words) from the grammar's words and the TRAIN wordings only.

    A meaning is "colour:red", "shape:circle", "size:big", "background:gray",
    "direction:left", "motion:growing", "mover" or "background_noun". A word found in
    wordings of two meanings ("getting" in getting bigger and getting smaller) is light:
    known, but saying nothing alone. The words of a wording with a negation ("does not
    move") mean a move, which the negation rule turns into staying still."""
    seen: dict[str, set[str]] = {}
    for meaning, wordings in all_wordings("train").items():
        if meaning.startswith("template:"):
            continue
        for wording in wordings:
            words = words_of(wording)
            # "does not move": "move" means a move; the negation rule reads it as still
            said = "mover" if NEGATIONS & set(words) else meaning
            for word in words:
                if word not in FUNCTION_WORDS and word not in NEGATIONS:
                    seen.setdefault(word, set()).add(said)
    lexicon = {w: next(iter(m)) for w, m in seen.items() if len(m) == 1}
    return lexicon, frozenset(w for w, m in seen.items() if len(m) > 1)


LEXICON, LIGHT_WORDS = build_lexicon()


class Vocabulary:
    """The lexicon's words embedded once (lazily, at the first unknown word) and the
    nearest meanings of unknown words, each word embedded once per process."""

    def __init__(self, embed: Embed, lexicon: dict[str, str] = LEXICON):
        self.embed = embed
        self.words = sorted(lexicon)
        self.meanings = [lexicon[w] for w in self.words]
        self._matrix: np.ndarray | None = None
        self._seen: dict[str, list[tuple[str, float]]] = {}

    def nearest(self, words: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
        """word → [(meaning, cosine)], one entry per meaning, nearest first."""
        new = [w for w in dict.fromkeys(words) if w not in self._seen]
        if new:
            if self._matrix is None:
                self._matrix = np.asarray(self.embed(self.words), np.float32)
            sims = np.asarray(self.embed(new), np.float32) @ self._matrix.T
            for word, row in zip(new, sims, strict=True):
                best: dict[str, float] = {}
                for meaning, sim in zip(self.meanings, row.tolist(), strict=True):
                    best[meaning] = max(best.get(meaning, -1.0), sim)
                self._seen[word] = sorted(best.items(), key=lambda kv: -kv[1])
        return {w: self._seen[w] for w in words}


@dataclass
class _Word:
    text: str
    kind: str  # "sep", "function", "negation", "light", "known", "unknown", "position"
    meaning: str | None = None
    score: float = 1.0
    options: list[tuple[str, float]] = field(default_factory=list)  # an unknown word's
    kept: bool = False


# English inflections and derivations: a word made of a lexicon word and one of these
# suffixes means what the lexicon word means (circles, squarish, greyish, triangular).
SUFFIXES = ("s", "es", "ed", "ing", "ish", "y", "ly", "ness", "ular")
DERIVED_SCORE = 0.9  # a derived word's confidence: sure of the stem, not of the sense
VERB_ENDINGS = ("ing", "s", "ed")  # only verb forms take a motion's meaning by embedding


def _stems(word: str) -> set[str]:
    """The words WORD may be derived from: circles → circle, reddish → red, greyish → grey,
    triangular → triangle, larger → large (a comparative, "er")."""
    stems = set()
    for suffix in (*SUFFIXES, "er", "r", "ier"):
        if not word.endswith(suffix) or len(word) - len(suffix) < 3:
            continue
        base = word[: -len(suffix)]
        stems |= {base, base + "e", base + "y" if suffix == "ier" else base}
        if len(base) > 3 and base[-1] == base[-2]:  # reddish → red, bigger → big
            stems.add(base[:-1])
        if suffix == "ular":  # triangular → triangle, circular → circle
            stems.add(base + "le")
        if suffix in ("ed", "s"):  # drifted → drifting
            stems.add(base + "ing")
    return stems


def derived_meaning(word: str) -> str | None:
    """The meaning of WORD when it is a lexicon word with an English suffix; a size word
    compared ("larger", "tinier") means growing or shrinking."""
    comparative = word.endswith(("er", "ier")) and not word.endswith(tuple(s for s in SUFFIXES if s != "s"))
    for stem in sorted(_stems(word), key=len, reverse=True):
        meaning = LEXICON.get(stem)
        if meaning is None:
            continue
        if comparative and word not in (stem + "s", stem + "es"):
            if meaning.startswith("size:"):
                return "motion:growing" if meaning == "size:big" else "motion:shrinking"
            continue
        return meaning
    return None


def _near_enough(word: str, meaning: str, similarity: float) -> bool:
    family = _family(meaning)
    if family in ("motion", "mover") and not word.endswith(VERB_ENDINGS):
        return False  # "boat" is near "sinking", but a noun says no motion
    if family not in ("motion", "mover", "direction") and word.endswith("ing"):
        return False  # and "playing" is near "ball", but a verb names no thing
    return similarity >= THRESHOLDS[family]


def _tag(text: str, keep: frozenset[str], vocabulary: Vocabulary | None) -> list[_Word]:
    words: list[_Word] = []
    for w in words_of(text):
        if w == "," or w in CONJUNCTIONS:
            words.append(_Word(w, "sep"))
        elif w in NEGATIONS:
            words.append(_Word(w, "negation"))
        elif w in LEXICON:
            words.append(_Word(w, "known", LEXICON[w], kept=w in keep))
        elif w in FUNCTION_WORDS or len(w) < 2 or w.isdigit() or (w in LIGHT_WORDS and w not in keep):
            words.append(_Word(w, "function" if w in FUNCTION_WORDS else "light"))
        elif (meaning := derived_meaning(w)) is not None:
            words.append(_Word(w, "known", meaning, score=DERIVED_SCORE, kept=w in keep))
        else:
            words.append(_Word(w, "unknown", kept=w in keep))
    for i, word in enumerate(words):  # "on the left", "at its right": a place, not a motion
        if word.meaning in ("direction:left", "direction:right"):
            before = [w.text for w in words[max(0, i - 2) : i]]
            if any(b in POSITION_WORDS for b in before) and "to" not in before:
                word.kind = "position"
    unknown = [w for w in words if w.kind == "unknown"]
    if unknown and vocabulary is not None:
        nearest = vocabulary.nearest([w.text for w in unknown])
        for word in unknown:
            word.options = [
                (m, s) for m, s in nearest[word.text] if word.kept or _near_enough(word.text, m, s)
            ]
    return words


# ---------------------------------------------------------------------- objects


def _is_shape(word: _Word) -> bool:
    if word.kind == "known":
        return _family(word.meaning) == "shape"
    return word.kind == "unknown" and bool(word.options) and _family(word.options[0][0]) == "shape"


def _describes(word: _Word) -> bool:
    """A word that may stand before a shape noun: an article, a colour or size word, or
    an unknown adjective."""
    if word.kind == "function":
        return True
    meaning = word.meaning if word.kind == "known" else (word.options[0][0] if word.options else None)
    if word.kind == "unknown" and meaning is None:
        return True
    return meaning is not None and _family(meaning) in ("colour", "size")


def _segments(words: list[_Word]) -> list[list[_Word]]:
    """Clauses split at separators, and before a second shape noun's words within one."""
    clauses, current = [], []
    for word in words:
        if word.kind == "sep":
            clauses.append(current)
            current = []
        else:
            current.append(word)
    clauses.append(current)
    out = []
    for clause in clauses:
        shapes = [i for i, w in enumerate(clause) if _is_shape(w)]
        while len(shapes) > 1:
            cut = shapes[1]
            while cut - 1 > shapes[0] and _describes(clause[cut - 1]):
                cut -= 1
            out.append(clause[:cut])
            clause = clause[cut:]
            shapes = [i for i, w in enumerate(clause) if _is_shape(w)]
        out.append(clause)
    return [c for c in out if c]


@dataclass
class _Object:
    words: list[_Word] = field(default_factory=list)
    position: str | None = None


def _names_object(word: _Word) -> bool:
    """A shape noun or an object colour: what starts an object of its own."""
    if _is_shape(word):
        return True
    meaning = word.meaning if word.kind == "known" else (word.options[0][0] if word.options else "")
    return _family(meaning or "") == "colour"


def _objects(segments: list[list[_Word]]) -> list[_Object]:
    """Clauses that name a shape or an object colour are objects; any other clause joins
    the object before it (a place alone, "on the left,", joins the one after it)."""
    has_shape = [any(_names_object(w) for w in seg) for seg in segments]
    if not any(has_shape):
        return [_Object([w for seg in segments for w in seg])]
    objects: list[_Object] = []
    pending: list[_Word] = []
    for seg, shaped in zip(segments, has_shape, strict=True):
        place_only = all(w.kind in ("position", "function") for w in seg)
        if shaped:
            objects.append(_Object(pending + seg))
            pending = []
        elif place_only or not objects:
            pending += seg
        else:
            objects[-1].words += seg
    if pending:
        objects[-1].words += pending
    for obj in objects:
        places = [w.meaning.split(":")[1] for w in obj.words if w.kind == "position"]
        obj.position = places[0] if places else None
    return objects


@dataclass
class _Slot:
    value: str  # the canonical word, or a kept word as typed
    score: float
    word: _Word | None = None


def _assign(obj: _Object, background: _Word | None) -> dict[str, _Slot]:
    """Read one object's slots from its words; unknown words take the nearest meaning
    whose slot is still open (best matches first)."""
    slots: dict[str, _Slot] = {}
    motion_words: list[tuple[str, _Word]] = []

    def place(meaning: str, word: _Word, score: float) -> bool:
        family, _, value = meaning.partition(":")
        value = word.text if word.kept else value
        if family in ("colour", "shape", "size"):
            if family in slots:
                return False
            slots[family] = _Slot(value, score, word)
            return True
        if family in ("motion", "mover", "direction"):
            motion_words.append((meaning if not word.kept else f"kept:{word.text}", word))
            word.score = score
            return True
        return family in ("background", "background_noun")  # the scene's, read apart

    for word in obj.words:
        if word.kind == "known" and word is not background:
            place(word.meaning, word, word.score)
    unknown = [w for w in obj.words if w.kind == "unknown" and w.options]
    for word in sorted(unknown, key=lambda w: -w.options[0][1]):
        word.meaning = None
        for meaning, score in word.options:
            if place(meaning, word, score):
                word.meaning = meaning
                break
    negated = any(w.kind == "negation" for w in obj.words)
    motion = _motion(motion_words, negated)
    if motion is not None:
        slots["motion"] = motion
    return slots


def _motion(motion_words: list[tuple[str, _Word]], negated: bool) -> _Slot | None:
    if not motion_words:
        return None
    score = min(w.score for _, w in motion_words)
    kept = [m.split(":", 1)[1] for m, _ in motion_words if m.startswith("kept:")]
    if kept:
        return _Slot(" ".join(kept), score)
    if negated:
        return _Slot("staying still", score)
    own = [m.split(":")[1] for m, _ in motion_words if m.startswith("motion:")]
    directions = [m.split(":")[1] for m, _ in motion_words if m.startswith("direction:")]
    if own and own[0] in ("staying still", "growing", "shrinking"):
        return _Slot(own[0], score)
    if directions:
        return _Slot(f"moving {directions[0]}", score)
    if own:
        return _Slot(own[0], score)
    return _Slot("moving right", 0.5)  # a mover without a direction: the first it could be


def _background(words: list[_Word]) -> tuple[_Word | None, float]:
    """The word that says the background's colour: the one before a background noun or
    after "on"/"against", else the last background colour said."""
    found = []
    for i, word in enumerate(words):
        family = _family(word.meaning or "") if word.kind == "known" else None
        if word.kind == "unknown" and word.options and _family(word.options[0][0]) == "background":
            family = "background"
        if family != "background":
            continue
        after = next((w for w in words[i + 1 :] if w.kind != "function"), None)
        before = [w.text for w in words[max(0, i - 2) : i]]
        noun = after is not None and (
            (after.kind == "known" and after.meaning == "background_noun")
            or (after.kind == "unknown" and any(m == "background_noun" for m, _ in after.options[:1]))
        )
        found.append((noun or bool(BACKGROUND_LEADS & set(before)), i, word))
    if not found:
        return None, 0.0
    _, _, word = max(found, key=lambda f: (f[0], f[1]))
    if word.kind == "known":
        return word, 1.0
    word.meaning = word.options[0][0]
    return word, word.options[0][1]


# ---------------------------------------------------------------------- reading


def read(
    prompt: str,
    embed: Embed | Vocabulary | None = None,
    *,
    keep_words: Collection[str] = (),
    supplied: Collection[str] = (),
) -> Reading:
    """Read PROMPT into the world's canonical form; see the module docstring.

    EMBED (a Vocabulary, or a function of texts → unit vectors) reads words the lexicon
    does not hold; without it they are out of the world. KEEP_WORDS are never replaced
    (an adapter's caption words); SUPPLIED names the slots a control or reference gives
    ("motion", "size", "colour", "shape"), never filled in."""
    unknown_slots = set(supplied) - set(SLOTS)
    if unknown_slots:
        raise ValueError(f"supplied takes {', '.join(SLOTS)}; got {sorted(unknown_slots)[0]}")
    try:
        scene = parse(prompt)
    except PromptError:
        scene = None
    if scene is not None:
        keep = frozenset(w.lower() for w in keep_words)
        # a colour outside v1 (taught by adapters) is one the base model never saw
        untaught = tuple(dict.fromkeys(o.colour for o in scene.objects if o.colour in EXTRA_COLOURS))
        untaught = tuple(c for c in untaught if c not in keep)
        notes = tuple(
            f"the built-in model never learned {c}; an adapter can teach it (--lora)" for c in untaught
        )
        objects = tuple(
            {k: v for k, v in vars(o).items() if k in SLOTS and v is not None} for o in scene.objects
        )
        return Reading(
            prompt, format_prompt(scene), confidence=0.0 if untaught else 1.0, notes=notes, objects=objects
        )
    vocabulary = Vocabulary(embed) if callable(embed) and not isinstance(embed, Vocabulary) else embed
    keep = frozenset(w.lower() for w in keep_words)
    words = _tag(prompt, keep, vocabulary)
    background, background_score = _background(words)
    objects = _objects(_segments([w for w in words if w is not background]))
    read_objects = [(obj, _assign(obj, background)) for obj in objects]
    # an object is one the model knows by its colour or shape, or by a reference's
    named = {"colour", "shape"} - set(supplied)
    read_objects = [(o, s) for o, s in read_objects if not named or named & set(s)]
    if not named and len(read_objects) > 1:
        read_objects = read_objects[:1]  # a reference gives one object
    content = [w for w in words if w.kind in ("known", "unknown")]
    outside = tuple(dict.fromkeys(w.text for w in content if w.kind == "unknown" and w.meaning is None))
    outside = tuple(w for w in outside if w not in keep)
    stranded = [w.text for w in words if w.kept and w.meaning is None and w.kind == "unknown"]
    if stranded:  # an adapter's word the reader cannot place: the prompt goes as typed
        return Reading(prompt, prompt, (), 0.0, notes=(f'"{stranded[0]}" is kept as typed',))
    if not read_objects:
        return Reading(prompt, None, outside, 0.0)
    return _understood(prompt, read_objects, background, background_score, outside, content, set(supplied))


def _understood(prompt, read_objects, background, background_score, outside, content, supplied) -> Reading:
    notes: list[str] = []
    if len(read_objects) > 2:
        notes.append("the built-in model draws one or two shapes; the first two are read")
        read_objects = read_objects[:2]
    if (
        len(read_objects) == 2
        and read_objects[0][0].position == "right"
        or (len(read_objects) == 2 and read_objects[1][0].position == "left")
    ):
        read_objects = read_objects[::-1]  # the first object of a scene is the left one
    filled: list[str] = []
    scores = [background_score] if background is not None else []
    if background is None:
        filled.append("background")
        bg_value = DEFAULTS["background"]
    else:
        bg_value = background.text if background.kept else background.meaning.split(":")[1]
    objects = []
    for obj, slots in read_objects:
        if "colour" not in slots and "colour" not in supplied:
            said = [w.meaning.split(":")[1] for w in obj.words if w.kind == "known" and w is not background]
            notes += [f"the built-in model draws no {c} shapes" for c in said if c in BACKGROUNDS]
        for slot in ("colour", "shape", "motion"):
            if slot not in slots and slot not in supplied:
                used = {s["colour"].value for _, s in read_objects if "colour" in s}
                value = next(c for c in COLOURS if c not in used) if slot == "colour" else DEFAULTS[slot]
                slots[slot] = _Slot(value, 0.5)
                filled.append(slot)
        scores += [s.score for s in slots.values()]
        objects.append(slots)
    coverage = 1 - len(outside) / max(1, len(content))
    confidence = round(min(scores) * coverage, 3)
    kept = (
        background is not None
        and background.kept
        or any(s.word and s.word.kept for o in objects for s in o.values())
    )
    if len(objects) == 2 and any("size" in o for o in objects):
        notes.append("two-shape scenes take no size words; the sizes are left out")
        for o in objects:
            o.pop("size", None)
    text = _format(objects, bg_value)
    if not kept and not supplied:
        try:
            scene = Scene(tuple(WorldObject(**{k: v.value for k, v in o.items()}) for o in objects), bg_value)
            text = format_prompt(scene)
        except ValueError as e:
            return Reading(prompt, None, outside, 0.0, tuple(filled), (*notes, _why(str(e))))
    slots = tuple({k: v.value for k, v in o.items()} for o in objects)
    return Reading(prompt, text, outside, confidence, tuple(dict.fromkeys(filled)), tuple(notes), slots)


def _why(error: str) -> str:
    if "different colours" in error:
        return "the two shapes of a scene need different colours"
    if "two-object scenes use only" in error:
        return f"two-shape scenes move only {', '.join(TWO_OBJECT_MOTIONS)}"
    return error


def _format(objects: list[dict[str, _Slot]], background: str) -> str:
    """The canonical form, with kept words where they stand and supplied slots left out
    (a reference's colour and shape: "an object")."""
    phrases = []
    for slots in objects:
        words = [slots[s].value for s in ("size", "colour", "shape") if s in slots]
        if "shape" not in slots:
            words.append("object")
        noun = " ".join(words)
        phrase = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
        if "motion" in slots:
            phrase += f" {slots['motion'].value}"
        phrases.append(phrase)
    return f"{' and '.join(phrases)} on a {background} background"


__all__ = ["KNOWS", "LEXICON", "Reading", "Vocabulary", "read", "words_of"]
