"""The shapes-world prompt grammar: canonical prompt ⇄ Scene.

    one object:  a {size }{colour} {shape} {motion} on a {background} background
    two objects: a {colour} {shape} {motion} and a {colour} {shape} {motion} on a {background} background

`parse` accepts either article, any letter case, extra spaces and a final full stop;
anything else is refused with a PromptError naming the word it did not understand and
what it expected there. `format_prompt` writes the canonical form, so
`format_prompt(parse(p)) == p` for every canonical prompt.
"""

from __future__ import annotations

from kinema.errors import InputError
from kinema.world.scene import BACKGROUNDS, PALETTE, SHAPES, Scene, WorldObject

EXAMPLE = "a red circle moving right on a black background"
_MOTION_WORDS = {
    "moving": ("left", "right", "up", "down"),
    "staying": ("still",),
    "growing": (),
    "shrinking": (),
}


class PromptError(InputError):
    """A prompt that is not a shapes-world prompt; the message says which word and why."""


class _Tokens:
    def __init__(self, prompt: str):
        self.words = prompt.strip().rstrip(".").lower().split()
        self.i = 0

    def peek(self) -> str | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def take(self, allowed, what: str) -> str:
        word = self.peek()
        if word is None or word not in allowed:
            choices = ", ".join(f"'{w}'" for w in allowed)
            if word is None:
                raise PromptError(f"prompt ends too early: expected {what} ({choices})")
            raise PromptError(f"word {self.i + 1} '{word}' not understood: expected {what} ({choices})")
        self.i += 1
        return word


def parse(prompt: str) -> Scene:
    """Parse a shapes-world prompt into a Scene; raises PromptError."""
    if not prompt or not prompt.strip():
        raise PromptError(f"empty prompt: expected e.g. '{EXAMPLE}'")
    tokens = _Tokens(prompt)
    objects = [_object(tokens, allow_size=True)]
    if tokens.peek() == "and":
        tokens.take(("and",), "'and'")
        objects.append(_object(tokens, allow_size=False))
    tokens.take(("on",), "'on' (or 'and' before a second object)")
    tokens.take(("a", "an"), "an article")
    background = tokens.take(tuple(BACKGROUNDS), "a background colour")
    tokens.take(("background",), "the word")
    if tokens.peek() is not None:
        raise PromptError(
            f"word {tokens.i + 1} '{tokens.peek()}' not understood: the prompt should end after 'background'"
        )
    if len(objects) == 2 and objects[0].size is not None:
        raise PromptError("two-object scenes take no size words ('small', 'big')")
    try:
        return Scene(tuple(objects), background)
    except ValueError as e:
        raise PromptError(str(e)) from None


def _object(tokens: _Tokens, allow_size: bool) -> WorldObject:
    tokens.take(("a", "an"), "an article")
    size = None
    if allow_size and tokens.peek() in ("small", "big"):
        size = tokens.take(("small", "big"), "a size word")
    elif tokens.peek() in ("small", "big"):
        raise PromptError(
            f"word {tokens.i + 1} '{tokens.peek()}' not understood: "
            "the second object of a scene takes no size word"
        )
    colour = tokens.take(tuple(PALETTE), "a colour")
    shape = tokens.take(SHAPES, "a shape")
    first = tokens.take(tuple(_MOTION_WORDS), "a motion")
    rest = _MOTION_WORDS[first]
    motion = f"{first} {tokens.take(rest, f'a word after {first!r}')}" if rest else first
    return WorldObject(colour=colour, shape=shape, motion=motion, size=size)


def _noun_phrase(obj: WorldObject) -> str:
    words = " ".join(w for w in (obj.size, obj.colour, obj.shape) if w)
    article = "an" if words[0] in "aeiou" else "a"
    return f"{article} {words} {obj.motion}"


def format_prompt(scene: Scene) -> str:
    """The canonical prompt of a scene."""
    objects = " and ".join(_noun_phrase(o) for o in scene.objects)
    return f"{objects} on a {scene.background} background"


def is_world_prompt(prompt: str) -> bool:
    try:
        parse(prompt)
    except PromptError:
        return False
    return True
