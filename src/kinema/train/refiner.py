"""Training the VAE's picture refiner (models.refiner) on pairs cached once.

    training-stream world clips ─► the frozen VAE: encode, latents + noise, decode ─►
    (decoded, rendered) uint8 pairs in RUN/pairs.pt ─► each step: whole clips drawn by
    the step number ─► edge-weighted L1 of refined against rendered ─► AdamW on the refiner

The decoder never runs in the loop, so a step costs the refiner alone. The latents get a
little noise before decoding (up to `latent_noise` standard deviations, per clip): the
DiT's latents are near the encoder's, not on them, and the refiner has to clean both.
A step's clips and flips are functions of the step number, so a killed run resumes
(RUN/state.pt) onto the same numbers.

    python -m kinema.train.refiner --out runs/refiner --vae src/kinema/weights/builtin/vae
    python -m kinema.train.refiner --out runs/refiner --export OUT_VAE   # VAE + this refiner
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kinema.models.refiner import WINDOW, PictureRefiner
from kinema.train.run_log import RunLog


@dataclasses.dataclass
class RefinerSettings:
    clips: int = 3072  # training-stream clips in the cache
    size: int = 64
    latent_noise: float = 0.15
    steps: int = 2000
    clips_per_step: int = 2
    lr: float = 5e-4
    warmup: int = 100
    edge_weight: float = 4.0  # extra L1 weight within 2 px of a rendered edge
    widths: str = "32,64,96,128"
    seed: int = 11
    checkpoint_every: int = 100

    def width_tuple(self) -> tuple[int, ...]:
        return tuple(int(w) for w in self.widths.split(","))


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def build_pairs(vae, settings: RefinerSettings, path: Path, say: Callable[[str], None] = print) -> dict:
    """(decoded, rendered) uint8 clips (N, 3, WINDOW, S, S) of settings.clips
    training-stream clips (stream `seed`, random offsets, 35 % two objects), cached in
    PATH; a cache of the same clips, size and noise is read back instead."""
    from kinema.world.dataset import training_sample

    key = {
        "clips": settings.clips,
        "size": settings.size,
        "noise": settings.latent_noise,
        "seed": settings.seed,
    }
    if path.exists():
        data = torch.load(path)
        if data["key"] == key:
            return data
    began = time.perf_counter()
    decoded, rendered = [], []
    generator = torch.Generator().manual_seed(settings.seed)
    for start in range(0, settings.clips, 32):
        stop = min(settings.clips, start + 32)
        clips = [
            training_sample(settings.seed, 0, i, WINDOW, settings.size, True, 0.35).frames
            for i in range(start, stop)
        ]
        x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        z = vae.encode(x)
        scale = torch.rand(z.shape[0], 1, 1, 1, 1, generator=generator) * settings.latent_noise
        noisy = z + scale * torch.randn(z.shape, generator=generator)
        decoded.append(_to_uint8(vae.decode_pictures(noisy, None)))
        rendered.append(_to_uint8(x))
        if start % 512 == 0:
            say(f"pairs: {stop}/{settings.clips} clips, {time.perf_counter() - began:.0f} s")
    data = {"key": key, "decoded": torch.cat(decoded), "rendered": torch.cat(rendered)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return data


def edge_weights(target: torch.Tensor, weight: float) -> torch.Tensor:
    """1 + WEIGHT within 2 px of an edge of TARGET (frames (N, 3, H, W) in [-1, 1]): the
    corners the checker reads are a few pixels of thousands a frame."""
    dy = (target[..., 1:, :] - target[..., :-1, :]).abs().amax(1, keepdim=True)
    dx = (target[..., :, 1:] - target[..., :, :-1]).abs().amax(1, keepdim=True)
    edges = F.pad(dy, (0, 0, 0, 1)) + F.pad(dx, (0, 1, 0, 0))
    return 1 + weight * F.max_pool2d((edges > 0.05).float(), 5, 1, 2)


def train_refiner(
    data: dict,
    settings: RefinerSettings,
    out: Path,
    resume: bool,
    command: str,
    init: PictureRefiner | None = None,
    say: Callable[[str], None] = print,
    until: int | None = None,
) -> PictureRefiner:
    """Train a refiner on DATA's pairs for settings.steps steps (from INIT's weights when
    given); checkpoints in OUT/state.pt. UNTIL stops after that step, as a killed run
    would (a chunk of a run). Returns the refiner."""
    torch.manual_seed(settings.seed)
    refiner = PictureRefiner(settings.width_tuple())
    if init is not None:
        refiner.load_state_dict(init.state_dict())
    optimizer = torch.optim.AdamW(refiner.parameters(), lr=settings.lr, weight_decay=0.0)
    log = RunLog(out, settings, say, every=25)
    state = log.resume() if resume else None
    if state is not None:
        refiner.load_state_dict(state["refiner"])
        optimizer.load_state_dict(state["optimizer"])

    def weights() -> dict:
        return {"refiner": refiner.state_dict(), "optimizer": optimizer.state_dict(), "command": command}

    decoded, rendered = data["decoded"], data["rendered"]
    n, size = len(decoded), decoded.shape[-1]
    refiner.train()
    for step in range(log.start, min(settings.steps, until or settings.steps)):
        rng = np.random.default_rng([settings.seed, step])
        rows = torch.from_numpy(rng.integers(n, size=settings.clips_per_step))
        flip = bool(rng.random() < 0.5)

        def frames(clips: torch.Tensor, rows: torch.Tensor = rows, flip: bool = flip) -> torch.Tensor:
            x = clips[rows].float().transpose(1, 2).reshape(-1, 3, size, size) / 127.5 - 1
            return x.flip(-1) if flip else x

        x, y = frames(decoded), frames(rendered)
        # warm-up, then a cosine down to a tenth
        fall = 0.5 * (1 + np.cos(np.pi * step / settings.steps))
        lr = float(settings.lr * min(1.0, (step + 1) / settings.warmup) * (0.1 + 0.9 * fall))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = ((refiner.refine_frames(x, WINDOW) - y).abs() * edge_weights(y, settings.edge_weight)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log.done(step + 1, loss.item(), weights)
    return refiner.eval()


def export(run: Path, vae_folder: Path, out: Path, say: Callable[[str], None] = print) -> Path:
    """Write OUT: the VAE checkpoint VAE_FOLDER with RUN's refiner as its last decoder
    stage (fp16 refiner weights), its config naming the refiner and how it was trained."""
    from kinema.models.checkpoint import load_config, load_weights
    from kinema.train.checkpoint import save_checkpoint

    state = torch.load(run / "state.pt")
    settings = RefinerSettings(**state["settings"])
    config = load_config(vae_folder)
    weights = {k: v for k, v in load_weights(vae_folder).items() if not k.startswith("refiner.")}
    weights.update({f"refiner.{k}": v.to(torch.float16) for k, v in state["refiner"].items()})
    tail = [v for _, v in state["losses"][-200:]]
    config["model"]["refiner"] = list(settings.width_tuple())
    config["refiner"] = {
        "step": state["step"],
        "train_seconds": round(state["seconds"], 1),
        "final_loss": round(float(np.mean(tail)), 5) if tail else None,
        "settings": state["settings"],
        "command": state["command"],
    }
    save_checkpoint(out, weights, config)
    say(f"wrote {out} (refiner step {state['step']})")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m kinema.train.refiner", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="the run's folder")
    parser.add_argument(
        "--vae", type=Path, default=None, help="the VAE checkpoint (default: the built-in one)"
    )
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--export", type=Path, default=None, help="write the VAE with the run's refiner here")
    for field in dataclasses.fields(RefinerSettings):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    args = parser.parse_args(argv)
    from kinema.pipelines.facts import builtin_folder
    from kinema.train.stages import load_vae

    vae_folder = args.vae or builtin_folder() / "vae"
    say = lambda s: print(s, flush=True)  # noqa: E731
    if args.export is not None:
        export(args.out, vae_folder, args.export, say)
        return
    settings = RefinerSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RefinerSettings)})
    command = "python -m kinema.train.refiner " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    vae = load_vae(vae_folder)
    # a VAE that has a refiner already starts this one from it
    init, vae.refiner = vae.refiner, None
    data = build_pairs(vae, settings, args.out / "pairs.pt", say)
    train_refiner(data, settings, args.out, args.resume, command, init, say)


if __name__ == "__main__":
    main()
