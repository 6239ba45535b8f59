"""The shapes world's vocabulary and scene description (WORLD.md, v1).

A Scene is what a prompt says: a background and one or two objects, each with a colour,
a shape, an optional size word and a motion. Where things start on the canvas is not in
the prompt; `render.sample_layout` draws it from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 50, 190),
    "orange": (245, 130, 20),
    "cyan": (30, 200, 210),
}
# Colours outside v1, for teaching adapters only (WORLD.md: never in the built-in model's
# training stream, which draws from COLOURS); prompts, the renderer and the checker know them.
EXTRA_COLOURS: dict[str, tuple[int, int, int]] = {"pink": (255, 105, 180)}
PALETTE: dict[str, tuple[int, int, int]] = {**COLOURS, **EXTRA_COLOURS}
SHAPES = ("circle", "square", "triangle")
# nominal extent d as a fraction of the canvas side
SIZES: dict[str | None, float] = {"small": 0.16, None: 0.22, "big": 0.30}
MOTIONS = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "staying still",
    "growing",
    "shrinking",
)
TWO_OBJECT_MOTIONS = ("moving up", "moving down", "staying still", "growing", "shrinking")
# Never in training data, in any slot: the test of compositional generalisation.
HELD_OUT_PAIRS = frozenset(
    {("red", "triangle"), ("blue", "circle"), ("yellow", "square"), ("purple", "triangle")}
)
# Motion paths span frames 0..15, then ping-pong with this period.
PATH_FRAMES = 16
PERIOD = 30


@dataclass(frozen=True)
class WorldObject:
    colour: str
    shape: str
    motion: str
    size: str | None = None  # "small", "big" or None (the default extent)

    def __post_init__(self) -> None:
        if self.colour not in PALETTE:
            raise ValueError(f"unknown colour '{self.colour}'")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape '{self.shape}'")
        if self.motion not in MOTIONS:
            raise ValueError(f"unknown motion '{self.motion}'")
        if self.size not in SIZES:
            raise ValueError(f"unknown size word '{self.size}'")

    @property
    def extent(self) -> float:
        """The nominal extent d0 as a fraction of the canvas."""
        return SIZES[self.size]

    @property
    def held_out(self) -> bool:
        return (self.colour, self.shape) in HELD_OUT_PAIRS


@dataclass(frozen=True)
class Scene:
    objects: tuple[WorldObject, ...]
    background: str

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background '{self.background}'")
        if len(self.objects) not in (1, 2):
            raise ValueError("a scene has one or two objects")
        if len(self.objects) == 2:
            a, b = self.objects
            for obj in self.objects:
                if obj.motion not in TWO_OBJECT_MOTIONS:
                    raise ValueError(
                        f"two-object scenes use only {', '.join(TWO_OBJECT_MOTIONS)}; got '{obj.motion}'"
                    )
                if obj.size is not None:
                    raise ValueError("two-object scenes take no size words")
            if a.colour == b.colour:
                raise ValueError("the two objects of a scene have different colours")

    @property
    def held_out(self) -> bool:
        return any(o.held_out for o in self.objects)

    @property
    def palette(self) -> dict[str, tuple[int, int, int]]:
        """The colours a checker tells apart for this scene: v1's, plus any colour outside
        v1 the scene names (a v1 scene is judged exactly as WORLD.md v1 says)."""
        extra = {o.colour: EXTRA_COLOURS[o.colour] for o in self.objects if o.colour in EXTRA_COLOURS}
        return {**COLOURS, **extra}


def ping_pong(t: int) -> float:
    """Path position u in [0, 1] at frame t: 0 → 1 over frames 0..15, then back, period 30."""
    p = t % PERIOD
    half = PATH_FRAMES - 1
    return p / half if p <= half else (PERIOD - p) / half
