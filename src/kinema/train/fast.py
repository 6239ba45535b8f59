"""Training the few-step adapter (`--fast`): a LoRA on the built-in DiT, distilled by
rectified-flow reflow from the full model's guided sampler.

    world prompts + seeded noise z ─► the full model (its default sampler, steps and
    guidance) ─► couples (z, x0) cached in RUN/couples.pt ─► each step: couples drawn by
    the step number, a time t from the few-step schedule ─► x_t = (1 − t) x0 + t z ─►
    the student's velocity at (x_t, t, prompt) against z − x0 ─► AdamW on the LoRA pairs

Why reflow: the full model's paths from noise to clip curve, so a few Euler steps along
them land off the clip; paths between couples of the teacher's own noise and result are
straight lines, which a few steps follow exactly when the student has learned them.
Half the training times are the few-step schedule's own, half anywhere in its steps.
Guidance is distilled in as well (the couples are guided; the student runs at guidance
1, one DiT call a step). It is a LoRA in kinema-lora/1's layout, so it mixes with a
user's adapters as any two adapters mix (pipelines.lora.mixed_in).

    python -m kinema.train.fast --out runs/fast --couples 2048 --steps 1500
    python -m kinema.train.fast --out runs/fast --export src/kinema/weights/builtin
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from kinema.train.branch import branch_main, run_card
from kinema.train.run_log import RunLog


@dataclasses.dataclass
class FastSettings:
    couples: int = 2048  # teacher (noise, clip) couples
    teacher_batch: int = 32
    fast_steps: int = 4  # the student's steps (Euler), what --fast runs
    steps: int = 1500
    batch: int = 16
    rank: int = 16
    lr: float = 1e-3
    warmup: int = 50
    seed: int = 5
    checkpoint_every: int = 50


def fast_schedule(steps: int, shift: float) -> torch.Tensor:
    """The student's times: STEPS + 1 from 1 to 0, shifted as the full model's are."""
    from kinema.diffusion.samplers import timesteps

    return timesteps(steps, shift)


def world_prompt(seed: int, index: int) -> str:
    """Prompt INDEX of the couples' stream: a training-stream scene (held-out pairs out)."""
    from kinema.world.dataset import sample_scene
    from kinema.world.grammar import format_prompt

    return format_prompt(sample_scene(np.random.default_rng([seed, 7, index])))


@torch.no_grad()
def teacher_couples(pipe, settings: FastSettings, path: Path, say: Callable[[str], None] = print) -> dict:
    """settings.couples (noise, clean latents) couples of the full model on world prompts,
    made teacher_batch at a time and saved after each batch (a killed run keeps them)."""
    from kinema.diffusion.samplers import cfg, timesteps

    d = pipe.defaults
    size, frames = int(d["size"]), int(d["frames"])
    f = pipe.spatial_factor
    shape = (pipe.vae.config.latent_channels, pipe.latent_frames(frames), size // f, size // f)
    data = torch.load(path) if path.exists() else {"noise": [], "clean": [], "prompts": []}
    began = time.perf_counter()
    sampler = pipe._settings(None, None, None, None)
    schedule = timesteps(sampler["steps"], sampler["shift"])
    guidance = sampler["guidance"]
    while len(data["prompts"]) < settings.couples:
        start = len(data["prompts"])
        prompts = [
            world_prompt(settings.seed, i)
            for i in range(start, min(settings.couples, start + settings.teacher_batch))
        ]
        b = len(prompts)
        generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + start)
        noise = torch.randn((b, *shape), generator=generator)
        text, mask = pipe.text_encoder.encode([*prompts, ""])
        # the prompts' rows, then the empty prompt's for each: made once for all the steps
        both_rows = pipe.dit.text_states(
            torch.cat([text[:b], text[b:].expand(b, -1, -1)]),
            torch.cat([mask[:b], mask[b:].expand(b, -1)]),
            times=schedule,
        )

        def both(x, t, both_rows=both_rows, b=b):
            v = pipe.dit(torch.cat([x, x]), t, both_rows)
            return v[:b], v[b:]

        clean = sampler["sampler"](cfg(both, lambda x, t: both(x, t)[0], guidance), noise, schedule)
        data["noise"].append(noise.half())
        data["clean"].append(clean.half())
        data["prompts"] += prompts
        torch.save(data, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        say(f"couples: {len(data['prompts'])}/{settings.couples}, {time.perf_counter() - began:.0f} s")
    return data


def train_fast(
    pipe,
    data: dict,
    settings: FastSettings,
    out: Path,
    resume: bool,
    command: str,
    say: Callable[[str], None] = print,
    until: int | None = None,
):
    """Train the student LoRA on DATA's couples; checkpoints in OUT/state.pt (peft's
    state dict of the LoRA pairs). UNTIL stops after that step, as a killed run would."""
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict

    from kinema.pipelines.lora import target_names

    noise = torch.cat(data["noise"]).float()
    clean = torch.cat(data["clean"]).float()
    names = sorted(set(data["prompts"]))
    prompt_ids = torch.tensor([names.index(p) for p in data["prompts"]])
    with torch.no_grad():
        text, text_mask = pipe.text_encoder.encode(names)
    times = fast_schedule(settings.fast_steps, float(pipe.defaults["shift"])).float()
    dit = pipe.dit.train()
    dit.requires_grad_(False)
    config = LoraConfig(
        r=settings.rank, lora_alpha=float(settings.rank), lora_dropout=0.0, target_modules=target_names(dit)
    )
    with torch.random.fork_rng():
        torch.manual_seed(settings.seed)
        dit = inject_adapter_in_model(config, dit)
    params = [p for n, p in dit.named_parameters() if "lora_" in n]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    log = RunLog(out, settings, say)
    state = log.resume() if resume else None
    if state is not None:
        set_peft_model_state_dict(dit, state["lora"])
        optimizer.load_state_dict(state["optimizer"])

    def weights() -> dict:
        lora = {k: v.detach().clone() for k, v in get_peft_model_state_dict(dit).items()}
        return {"lora": lora, "optimizer": optimizer.state_dict(), "command": command}

    n, b = len(clean), settings.batch
    for step in range(log.start, min(settings.steps, until or settings.steps)):
        rng = np.random.default_rng([settings.seed, step])
        rows = torch.from_numpy(rng.integers(n, size=b))
        # half the times where a --fast run evaluates the student (the few-step schedule's
        # times), half anywhere within one of its steps (other step counts, the curve)
        k = rng.integers(settings.fast_steps, size=b)
        u = torch.from_numpy(rng.random(b) * (rng.random(b) < 0.5)).float()
        t = times[k] + (times[k + 1] - times[k]) * u
        x0, z = clean[rows], noise[rows]
        tt = t.view(-1, 1, 1, 1, 1)
        x_t = (1 - tt) * x0 + tt * z
        for group in optimizer.param_groups:
            group["lr"] = float(settings.lr * min(1.0, (step + 1) / settings.warmup))
        v = dit(x_t, t, text[prompt_ids[rows]], text_mask[prompt_ids[rows]])
        loss = (v - (z - x0)).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        log.done(step + 1, loss.item(), weights)
    return dit


def export(run: Path, model_folder: Path, say: Callable[[str], None] = print) -> Path:
    """Write RUN's LoRA as MODEL_FOLDER/fast/fast.safetensors (kinema-lora/1, fp16,
    bound to the folder's DiT) with its card: steps, settings, command."""
    from safetensors.torch import save_file

    from kinema.pipelines.adapters import FORMAT
    from kinema.pipelines.facts import FAST_ADAPTER
    from kinema.pipelines.lora import PREFIX, dit_sha256

    state, card = run_card(run)
    settings = FastSettings(**state["settings"])
    tensors = {}
    for key, value in state["lora"].items():
        # peft names "blocks.0.attn.qkv.lora_A.weight"; kinema-lora/1 prefixes them
        tensors[f"{PREFIX}{key}"] = value.to(torch.float16).contiguous()
    card = {"kind": "fast", "fast_steps": settings.fast_steps, **card}
    path = model_folder / FAST_ADAPTER
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": FORMAT,
        "rank": str(settings.rank),
        "alpha": str(float(settings.rank)),
        "base_dit_sha256": dit_sha256(model_folder),
        "base_model": json.loads((model_folder / "model.json").read_text())["name"],
        "card": json.dumps(card),
    }
    save_file(tensors, str(path.with_suffix(".tmp")), metadata=metadata)
    path.with_suffix(".tmp").replace(path)
    say(f"wrote {path} (step {state['step']})")
    return path


def run(model: str | None, out: Path, settings: FastSettings, resume: bool, command: str, say=print) -> None:
    """A whole run: the teacher's couples (made or read back), then the student."""
    from kinema.pipelines.loading import load

    pipe = load(model)
    data = teacher_couples(pipe, settings, out / "couples.pt", say)
    train_fast(pipe, data, settings, out, resume, command, say)


def main(argv: list[str] | None = None) -> None:
    branch_main(argv, "kinema.train.fast", __doc__, FastSettings, run, export)


if __name__ == "__main__":
    main()
