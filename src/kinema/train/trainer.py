"""The training loop: AdamW, warmup + cosine schedule, EMA, gradient clipping, periodic
validation, safetensors checkpoints, and an exact resume after a kill.

Exactness comes from two facts: a step's batch is a pure function of the step number
(the shapes world renders it on demand), and every random state is saved with the
weights. A run killed between checkpoints redoes the same steps and lands on the same
numbers.

Under torchrun (or `accelerate launch`) the same command trains on several processes, each
on its slice of every step's batch (see distributed.py): rank 0 alone writes checkpoints,
logs and plots, and validates, while the others wait for it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
import warnings
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kinema.errors import InputError
from kinema.train.adversarial import AdversarialDecoderStage
from kinema.train.checkpoint import (
    load_config,
    load_train_state,
    load_weights,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from kinema.train.distributed import join, wrap
from kinema.train.plot import plot_curves
from kinema.train.presets import Preset, preset_command
from kinema.train.stages import STAGES as _BASE_STAGES

STAGES = {**_BASE_STAGES, "vae-gan": AdversarialDecoderStage}


def learning_rate(preset: Preset, step: int) -> float:
    if step < preset.warmup:
        return preset.lr * (step + 1) / preset.warmup
    progress = min(1.0, (step - preset.warmup) / max(1, preset.steps - preset.warmup))
    return preset.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    """Trains one preset into the checkpoint folder `out`, resuming it when it exists.

    `init_from` warm-starts a new run from another checkpoint's weights: how a run
    continues from committed weights when its optimizer state was not kept (the same
    preset: its step count too, so the schedule goes on) or fine-tunes them under another
    preset (from step 0 of that preset's schedule).

    On a CUDA `device` the forward and backward passes run under bf16 autocast (weights,
    optimizer and EMA stay fp32); checkpoints are written from CPU copies either way, so a
    run trained on a GPU resumes or exports on a CPU.

    Started by torchrun with WORLD_SIZE > 1, it joins the process group (a bare "cuda"
    `device` becomes the GPU of LOCAL_RANK) and trains with DistributedDataParallel on the
    preset's batch split evenly between the processes; every process resumes from the
    same checkpoint, and the numbers match a single process's to fp32 rounding.
    """

    def __init__(
        self,
        preset: Preset,
        out: str | Path,
        init_from: str | Path | None = None,
        device: str | torch.device = "cpu",
        compile: bool = False,
    ):
        self.preset, self.out = preset, Path(out)
        self.shard, self.device = join(torch.device(device))
        if preset.batch % self.shard.world:
            raise InputError(
                f"batch {preset.batch} does not split evenly between {self.shard.world} processes"
            )
        torch.manual_seed(preset.seed)
        self.stage = STAGES[preset.stage](preset, device=self.device, shard=self.shard)
        self.model = self.stage.build().to(self.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        # listed once: every step clips, steps and averages the same tensors
        self._raw_params, self._ema_params = list(self.model.parameters()), list(self.ema.parameters())
        # a stage may freeze part of its model (the VAE's encoder)
        self._trained = [p for p in self._raw_params if p.requires_grad]
        decay = [p for p in self._trained if p.dim() >= 2]
        no_decay = [p for p in self._trained if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": preset.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=preset.lr,
            betas=(0.9, 0.99),
            fused=self.device.type == "cuda",
        )
        self.step = 0
        self.history: dict[str, list] = {"loss": [], "val": []}
        self.seconds = 0.0  # training time over all runs
        self.init_from = str(init_from) if init_from is not None else None
        self._resume(init_from)
        # what a step calls the model through: the model itself, or DDP around it
        self.step_module = wrap(self.stage.training_module(self.model), self.shard, self.device)
        # torch.compile fuses the many small element-wise kernels of a small model's step
        # (same weights, same checkpoints); until one compiled step has run, the eager
        # module is kept, so a compiler failure costs a warning, not the run
        self._eager = None
        if compile:
            self._eager, self.step_module = self.step_module, torch.compile(self.step_module, dynamic=False)

    # ---------------------------------------------------------------- state

    def _resume(self, init_from: str | Path | None) -> None:
        state = load_train_state(self.out)
        if state is None:
            if init_from is not None:
                weights = load_weights(init_from)
                weights = self.stage.adapt_init(weights, self.model)  # e.g. a shallower DiT grown deeper
                self.model.load_state_dict(weights)
                self.ema.load_state_dict(weights)
                source = load_config(init_from)
                if source.get("preset", {}).get("name") == self.preset.name:  # the same recipe goes on
                    self.step = int(source.get("step", 0))
            return
        tensors, meta = state
        self.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("raw.")})
        self.ema.load_state_dict(load_weights(self.out))
        optimizer_from_tensors(self.optimizer, tensors, meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step, self.history, self.seconds = meta["step"], meta["history"], meta.get("seconds", 0.0)
        if hasattr(self.stage, "load_state_tensors"):  # what the stage trains besides the model
            stage_tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("stage.")}
            self.stage.load_state_tensors(stage_tensors, meta["stage"])
        self.init_from = meta.get("init_from")

    def _finalise(self) -> None:
        # stages whose model carries data statistics (the VAE's latent scale) set them here
        if hasattr(self.stage, "finalise"):
            self.stage.finalise(self.ema)

    def save(self) -> Path:
        """Write the checkpoint (rank 0; every process must call this, and the others wait)."""
        if self.shard.main:
            self._write()
        self.shard.barrier()
        return self.out

    def _write(self) -> None:
        self._finalise()
        opt_tensors, opt_scalars = optimizer_to_tensors(self.optimizer)
        tensors = {f"raw.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if hasattr(self.stage, "state_tensors"):
            stage_tensors, stage_meta = self.stage.state_tensors()
            tensors.update({f"stage.{k}": v for k, v in stage_tensors.items()})
        last_val = self.history["val"][-1][1] if self.history["val"] else {}
        config = {
            "kind": getattr(self.stage, "kind", self.preset.stage),  # what the weights are
            "model": dataclasses.asdict(self.stage.config),
            "step": self.step,
            "train_seconds": round(self.seconds, 1),
            "validation": last_val,
            "preset": self.preset.to_dict(),
            "command": preset_command(self.preset)
            + (f" --init-from {self.init_from}" if self.init_from else ""),
        }
        meta = {
            "step": self.step,
            "history": self.history,
            "seconds": self.seconds,
            "optimizer": opt_scalars,
            "init_from": self.init_from,
        }
        if hasattr(self.stage, "state_tensors"):
            meta["stage"] = stage_meta
        save_checkpoint(self.out, self.ema.state_dict(), config, tensors, meta)
        score_name = next(iter(last_val), "score")
        plot_curves(
            self.out / "curves.png",
            [tuple(x) for x in self.history["loss"]],
            [(s, v.get(score_name, 0.0)) for s, v in self.history["val"]],
            score_name,
            f"{self.preset.name}: step {self.step}",
        )

    # ---------------------------------------------------------------- loop

    def train_step(self) -> dict:
        """One optimisation step at the schedule's learning rate; the EMA follows. Among
        several processes the returned loss and metrics are this process's."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.preset, self.step)
        self.model.train()
        cuda = self.device.type == "cuda"
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss, metrics = self.stage.loss(self.step_module, self.step)
            loss.backward()
        except Exception as error:  # noqa: BLE001 — only the first compiled step falls back
            if self._eager is None:
                raise
            warnings.warn(f"torch.compile failed, training eagerly: {error}", stacklevel=1)
            self.step_module, self._eager = self._eager, None
            return self.train_step()
        self._eager = None
        grad_norm = torch.nn.utils.clip_grad_norm_(self._trained, self.preset.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            decay = min(self.preset.ema_decay, (1 + self.step) / (10 + self.step))
            torch._foreach_lerp_(self._ema_params, self._raw_params, 1 - decay)
        self.step += 1
        # tensors, not floats: reading a value waits for the GPU, so only logged steps do
        return {"loss": loss.detach(), "grad_norm": grad_norm.detach(), **metrics}

    def validate(self) -> dict:
        self._finalise()
        metrics = self.stage.validate(self.ema)
        self.history["val"].append([self.step, metrics])
        return metrics

    def run(
        self,
        max_steps: int | None = None,
        max_minutes: float | None = None,
        progress: bool = True,
        log_path: Path | None = None,
        validate: bool = True,
    ) -> dict:
        """Train until the preset's steps, `max_steps` more steps, or `max_minutes` pass.

        validate=False skips validation (a GPU run whose validation happens elsewhere).
        Among several processes every one must call this; all return rank 0's result."""
        p, main = self.preset, self.shard.main
        end = p.steps if max_steps is None else min(p.steps, self.step + max_steps)
        deadline = time.monotonic() + 60 * max_minutes if max_minutes else math.inf
        last_save = time.monotonic()
        log_path = log_path or self.out.with_suffix(".log.jsonl")
        if main:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        # rank 0's clock decides when to stop and save, so all processes do it at one step
        agree = self.shard.agree
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
        ]
        with (
            Progress(*columns, disable=not (progress and main)) as bar,
            open(log_path if main else os.devnull, "a") as log,
        ):
            task = bar.add_task(p.name, total=end, completed=self.step, info="")
            window_start, window_steps = time.monotonic(), 0
            while self.step < end and not agree(time.monotonic() >= deadline):
                t0 = time.monotonic()
                metrics = self.train_step()
                self.seconds += time.monotonic() - t0
                window_steps += 1
                if self.step % p.log_every == 0 or self.step == end:
                    rate = window_steps * p.batch / max(time.monotonic() - window_start, 1e-9)
                    window_start, window_steps = time.monotonic(), 0
                    metrics = self.shard.mean({k: float(v) for k, v in metrics.items()})
                    self.history["loss"].append([self.step, round(metrics["loss"], 6)])
                    log.write(
                        json.dumps({"step": self.step, "samples_per_s": round(rate, 2), **metrics}) + "\n"
                    )
                    log.flush()
                    bar.update(
                        task, completed=self.step, info=f"loss {metrics['loss']:.4f} · {rate:.1f} samples/s"
                    )
                if validate and self.step % p.validate_every == 0:
                    if main:
                        val = self.validate()
                        log.write(json.dumps({"step": self.step, "validation": val}) + "\n")
                        log.flush()
                    self.shard.barrier()
                if agree(time.monotonic() - last_save > 60 * p.checkpoint_minutes):
                    self.save()
                    last_save = time.monotonic()
            if validate and main and (not self.history["val"] or self.history["val"][-1][0] != self.step):
                self.validate()
            self.save()
        last_val = self.history["val"][-1][1] if self.history["val"] else {}
        return self.shard.broadcast({"step": self.step, "validation": last_val, "checkpoint": str(self.out)})
