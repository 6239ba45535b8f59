"""Named training recipes: `kinema train --preset NAME` runs one from scratch (or resumes it).

Each preset is everything that decides the result, so a checkpoint's config.json can
name the exact command that reproduces it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from kinema.errors import InputError

DEFAULT_CONDITION_WEIGHTS = {
    "none": 0.45,
    "first": 0.2,
    "first_last": 0.1,
    "prefix": 0.12,
    "keyframes": 0.05,
    "region": 0.08,
}


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
    offset_fraction: float = 1.0  # of random_offset windows; the rest start at frame 0
    two_object_fraction: float = 0.35
    log_every: int = 10
    validate_every: int = 1000
    validation_clips: int = 16
    validation_steps: int = 20  # sampler steps of the DiT's validation generations
    checkpoint_minutes: float = 5.0
    vae: str | None = None  # the VAE checkpoint a DiT stage trains on
    cache_clips: int = 0  # > 0: pre-encode this many clips once and train on them
    render_workers: int = 0  # processes rendering the cache's clips (0: one per core)
    freeze_encoder: bool = False  # VAE stage: train the decoder only (the latents stay)
    free_colour_fraction: float = 0.0  # VAE stages: clips painted in any RGB (data.preset_samples)
    # adversarial decoder stage (kinema.train.adversarial): the losses' weights
    adversarial_weight: float = 0.0  # of the hinge GAN loss (times the adaptive balance)
    feature_weight: float = 0.0  # of the discriminator's feature matching
    edge_weight: float = 0.0  # of the spatial and temporal gradient L1
    discriminator_lr: float = 1e-4
    adversarial_start: int = 0  # steps the discriminator trains before the decoder feels it
    edge_focus: float = 0.0  # extra weight of the pixels near edges in the reconstruction loss
    # DiT stage: how often each condition kind is drawn (kinema.train.stages.CONDITION_KINDS)
    condition_weights: dict = field(default_factory=lambda: dict(DEFAULT_CONDITION_WEIGHTS))
    # the kinds a window that starts mid-cycle draws among: it may run against its prompt,
    # so only a condition that shows which way it goes may come with it
    context_conditions: list = field(default_factory=lambda: ["first_last", "prefix", "keyframes", "region"])

    # DiT stage: a fraction of the captions said in other words (kinema.world.paraphrase,
    # its training wordings only), and cache clips drawn with weights by the words of
    # their prompts (e.g. {"square": 2.0}: what the strict eval shows failing, weighted up)
    paraphrase_fraction: float = 0.0
    prompt_weights: dict = field(default_factory=dict)

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
    # the built-in model's VAE, decoder only: sharper pictures from the same latents, so a
    # DiT trained on them stays valid (start it from the VAE checkpoint with --init-from)
    "vae-decoder": Preset(
        "vae-decoder",
        "vae",
        model={"channels": [48, 96], "latent_channels": 8, "blocks": 1},
        batch=32,
        lr=2e-4,
        warmup=100,
        steps=60_000,
        frames=9,
        size=64,
        validate_every=1000,
        freeze_encoder=True,
    ),
    # the built-in model's DiT: 17-frame windows at any offset of the endless ping-pong clip
    # (so it sees the turns), 8×8×5 latents in 2×2 patches = 80 tokens; large batches from
    # a cache of 131,072 pre-encoded clips, sized for a GPU (about 12 M parameters)
    "dit": Preset(
        "dit",
        "dit",
        model={"width": 256, "depth": 8, "heads": 4},
        batch=512,
        lr=4e-4,
        warmup=300,
        steps=100_000,
        frames=17,
        size=64,
        validate_every=2000,
        vae="runs/vae",
        cache_clips=131_072,
    ),
}
# the decoder again, on the DiT's 17-frame windows (5 latent frames): trained on 9 frames
# (3 latents), it had never decoded a 4th or 5th latent, and from there its causal caches
# painted faint copies of where the object had been. The encoder stays frozen, so the
# DiT's latents keep their meaning. Sized for 2 CPU cores.
PRESETS["vae-decoder-17"] = dataclasses.replace(
    PRESETS["vae-decoder"],
    name="vae-decoder-17",
    frames=17,
    batch=8,
    lr=1e-4,
    warmup=50,
    steps=6000,
    validate_every=500,
)
# kinema-shapes-4's decoder sharpened (start it with --init-from the built-in VAE): an
# adversarial, a feature-matching and a gradient loss (kinema.train.adversarial) on the
# DiT's 17-frame windows, a quarter of the clips painted in any RGB on any background so
# the decoder is a codec of the world's geometry, not of its palette. Encoder frozen.
PRESETS["vae-decoder-gan"] = dataclasses.replace(
    PRESETS["vae-decoder-17"],
    name="vae-decoder-gan",
    stage="vae-gan",
    batch=4,  # a step of 8 took 9 s on 2 shared cores; twice the steps of 4 learn more
    lr=5e-5,
    warmup=100,
    steps=2400,
    validate_every=200,
    checkpoint_minutes=4.0,
    free_colour_fraction=0.25,
    adversarial_weight=0.3,
    feature_weight=1.0,
    edge_weight=1.0,
    discriminator_lr=1e-4,
    adversarial_start=100,
)
# the same, with the pixels near edges weighted 9× in the reconstruction loss: after 673
# steps of vae-decoder-gan the strict checker's ceiling had not moved (small squares still
# read as circles: their corners are a few pixels of 4,096 a frame); start it with
# --init-from that run
PRESETS["vae-decoder-sharp"] = dataclasses.replace(
    PRESETS["vae-decoder-gan"], name="vae-decoder-sharp", edge_focus=8.0, warmup=20, adversarial_start=0
)
# a tiny version of it for the tests
PRESETS["vae-gan-tiny"] = dataclasses.replace(
    PRESETS["vae-tiny"],
    name="vae-gan-tiny",
    stage="vae-gan",
    freeze_encoder=True,
    free_colour_fraction=0.5,
    adversarial_weight=0.1,
    feature_weight=1.0,
    edge_weight=1.0,
    adversarial_start=2,
    validate_every=4,
)
# the built-in model grown from 8 to 12 blocks (start it with --init-from the 8-block DiT:
# the new blocks begin as the identity), on the windows and batch the 8-block model
# finished on: 75 % start at frame 0, 40 % of clips hold two objects
PRESETS["dit-deep"] = dataclasses.replace(
    PRESETS["dit"],
    name="dit-deep",
    model={**PRESETS["dit"].model, "depth": 12},
    batch=1024,
    lr=5e-4,
    warmup=200,
    offset_fraction=0.25,
    two_object_fraction=0.4,
)
# the GPU-trained DiT continued on a CPU (start it with --init-from): windows start at
# frame 0, where the prompt's motion begins, except a quarter that start mid-cycle
# under a condition that spans time (how extensions and long clips learn the turns)
PRESETS["dit-finetune"] = dataclasses.replace(
    PRESETS["dit-deep"],
    name="dit-finetune",
    batch=32,
    lr=1e-4,
    warmup=50,
    steps=12_000,
    validate_every=500,
    cache_clips=12_288,
    offset_fraction=0.25,
    checkpoint_minutes=4.0,
)
# kinema-shapes-3's DiT continued on 2 CPU cores (start it with --init-from) with the
# kept-region condition (inpainting) only on windows that start at frame 0. That condition
# keeps what lies outside a box, and with the box around the object's path it never shows
# which way the object goes: drawn for mid-cycle windows, which may run against their
# prompt, it taught the model that under it a prompt's motion may run either way (most of
# inpainting's failures). Region clips are drawn more often, to unlearn that sooner.
PRESETS["dit-region"] = dataclasses.replace(
    PRESETS["dit-finetune"],
    name="dit-region",
    condition_weights={**DEFAULT_CONDITION_WEIGHTS, "none": 0.39, "region": 0.14},
    context_conditions=["first_last", "prefix", "keyframes"],
    steps=2600,
)
# the same with one token per latent cell (320 tokens): finer positions, 4× the work
PRESETS["dit-p1"] = dataclasses.replace(
    PRESETS["dit"], name="dit-p1", model={**PRESETS["dit"].model, "patch": [1, 1, 1]}, batch=256
)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise InputError(f"unknown preset '{name}': choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def override(preset: Preset, settings: list[str]) -> Preset:
    """The preset with KEY=VALUE settings applied (values parsed as JSON, else taken as text)."""
    import json

    fields = preset.to_dict()
    changes = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or key not in fields or key == "name":
            raise InputError(
                f"--set takes KEY=VALUE with KEY one of {', '.join(sorted(set(fields) - {'name'}))}, got '{setting}'"
            )
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
        if fields[key] is not None and type(changes[key]) is not type(fields[key]):
            if not (isinstance(fields[key], float) and isinstance(changes[key], int)):
                raise InputError(f"--set {key} takes a {type(fields[key]).__name__}, got '{value}'")
    return dataclasses.replace(preset, **changes)


def preset_command(preset: Preset) -> str:
    """The `kinema train` command that trains this preset (its changes as --set options)."""
    import json

    base = PRESETS[preset.name].to_dict() if preset.name in PRESETS else {}
    parts = [f"kinema train --preset {preset.name}"]
    for key, value in preset.to_dict().items():
        if key in base and base[key] != value:
            parts.append(f"--set {key}={json.dumps(value, separators=(',', ':'))}")
    return " ".join(parts)
