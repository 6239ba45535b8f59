"""Named training recipes: `kinema train --preset NAME` runs one from scratch (or resumes it).

Each preset is everything that decides the result, so a checkpoint's config.json can
name the exact command that reproduces it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from kinema.errors import InputError


@dataclass(frozen=True)
class Preset:
    name: str
    stage: str  # "vae" or "dit"
    model: dict = field(default_factory=dict)  # the model config's fields
    batch: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup: int = 200
    steps: int = 100_000
    frames: int = 9  # training window (1+4k)
    size: int = 64
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    random_offset: bool = True
    two_object_fraction: float = 0.35
    log_every: int = 10
    validate_every: int = 1000
    validation_clips: int = 16
    validation_steps: int = 20  # sampler steps of the DiT's validation generations
    checkpoint_minutes: float = 5.0
    vae: str | None = None  # the VAE checkpoint a DiT stage trains on
    cache_clips: int = 0  # > 0: pre-encode this many clips once and train on them

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    # what the tests train: seconds on a laptop
    "vae-tiny": Preset(
        "vae-tiny",
        "vae",
        model={"channels": [16, 16], "latent_channels": 4},
        batch=2,
        steps=4,
        frames=5,
        size=32,
        warmup=1,
        validate_every=2,
        log_every=1,
    ),
    # the built-in model's VAE: 9-frame windows (causal convolutions generalise to
    # longer clips) keep a step cheap on a CPU; 64×64×17 → 8×8×5×8 is 81.6× compression
    "vae": Preset(
        "vae",
        "vae",
        model={"channels": [48, 96], "latent_channels": 8, "blocks": 1},
        batch=8,
        lr=4e-4,
        warmup=300,
        steps=60_000,
        frames=9,
        size=64,
        validate_every=500,
    ),
    "dit-tiny": Preset(
        "dit-tiny",
        "dit",
        model={"width": 32, "depth": 2, "heads": 2},
        batch=2,
        steps=4,
        frames=5,
        size=32,
        warmup=1,
        validate_every=1000,
        log_every=1,
        validation_clips=1,
        validation_steps=2,
    ),
    # the built-in model's DiT: 17-frame windows at any offset of the endless ping-pong clip
    # (so it sees the turns), 8×8×5 latents in 2×2 patches = 80 tokens
    "dit": Preset(
        "dit",
        "dit",
        model={"width": 256, "depth": 8, "heads": 4},
        batch=16,
        lr=3e-4,
        warmup=500,
        steps=100_000,
        frames=17,
        size=64,
        validate_every=2000,
        vae="runs/vae",
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise InputError(f"unknown preset '{name}': choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
