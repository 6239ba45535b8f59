"""The shapes world (WORLD.md): vocabulary, prompt grammar, renderer, dataset, checker."""

from kinema.world.checker import check
from kinema.world.grammar import PromptError, format_prompt, is_world_prompt, parse
from kinema.world.render import render_frames, sample_layout
from kinema.world.scene import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT_PAIRS,
    MOTIONS,
    SHAPES,
    SIZES,
    TWO_OBJECT_MOTIONS,
    Scene,
    WorldObject,
    ping_pong,
)
from kinema.world.sharpness import clip_sharpness

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "HELD_OUT_PAIRS",
    "MOTIONS",
    "SHAPES",
    "SIZES",
    "TWO_OBJECT_MOTIONS",
    "PromptError",
    "Scene",
    "WorldObject",
    "check",
    "clip_sharpness",
    "format_prompt",
    "is_world_prompt",
    "parse",
    "ping_pong",
    "render_frames",
    "sample_layout",
]
