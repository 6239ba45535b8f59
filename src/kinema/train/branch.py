"""Training a branch that steers the frozen DiT (the control branch, the reference branch).

    cached latents + captions + per-clip steering data ─► each step: a batch drawn by the
    step number, text dropout, logit-normal times, noise from the step's generator ─►
    the DiT's flow-matching loss with the branch steering it ─► AdamW on the branch only

A step's batch, times and noise are pure functions of the step number, so a killed run
resumes (from RUN/state.pt, written every `checkpoint_every` steps) onto the same
numbers. What differs between branches is the data and how a batch steers the DiT:
`steer(rows)` returns the DiT's keyword arguments (control=…, reference=…).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn


def train_branch(
    dit: nn.Module,
    branch: nn.Module,
    latents: torch.Tensor,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    prompt_ids: torch.Tensor,
    steer: Callable[[torch.Tensor], dict],
    settings,
    out: Path,
    resume: bool,
    record: dict,
    say: Callable[[str], None] = print,
) -> nn.Module:
    """Train BRANCH on LATENTS (N, C, T, h, w; their captions' rows of TEXT by PROMPT_IDS,
    the last row of TEXT the empty prompt) for settings.steps steps; RECORD (JSON-ready:
    the branch's config, the command) is kept in every checkpoint. Returns the branch."""
    from kinema.diffusion.flow import flow_loss, sample_time

    for p in dit.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(branch.parameters(), lr=settings.lr, weight_decay=0.0)
    start, losses, seconds = 0, [], 0.0
    state_path = out / "state.pt"
    if resume and state_path.exists():
        state = torch.load(state_path)
        branch.load_state_dict(state["branch"])
        optimizer.load_state_dict(state["optimizer"])
        start, losses, seconds = state["step"], state["losses"], state["seconds"]
        say(f"resumed at step {start}")

    def save(step: int, seconds: float) -> None:
        state = {
            "branch": branch.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "losses": losses,
            "seconds": seconds,
            "settings": dataclasses.asdict(settings),
            **record,
        }
        torch.save(state, out / "state.tmp")
        (out / "state.tmp").replace(state_path)

    empty, n, b = len(text) - 1, len(latents), settings.batch
    branch.train()
    began = time.perf_counter()
    for step in range(start, settings.steps):
        rng = np.random.default_rng([settings.seed, step])
        rows = torch.from_numpy(rng.integers(n, size=b))
        dropped = torch.from_numpy(rng.random(b) < settings.text_dropout)
        which = torch.where(dropped, empty, prompt_ids[rows])
        generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        times = sample_time(b, generator=generator)
        clean = latents[rows].float()
        noise = torch.randn(clean.shape, generator=generator)
        steering = steer(rows)
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * min(1.0, (step + 1) / settings.warmup)

        def velocity(x_t, tt, which=which, steering=steering):
            return dit(x_t, tt, text[which], text_mask[which], **steering)

        loss = flow_loss(velocity, clean, t=times, noise=noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(branch.parameters(), 1.0)
        optimizer.step()
        losses.append((step + 1, round(loss.item(), 5)))
        if (step + 1) % 10 == 0:
            elapsed = seconds + time.perf_counter() - began
            recent = np.mean([v for _, v in losses[-50:]])
            say(f"step {step + 1}/{settings.steps} loss {recent:.4f} {elapsed:.0f} s")
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
            seconds, began = seconds + time.perf_counter() - began, time.perf_counter()
            save(step + 1, seconds)
    return branch


def run_card(run: Path) -> tuple[dict, dict]:
    """A run's last checkpoint (RUN/state.pt) and the card its exported branch carries:
    steps, seconds, the last 200 steps' mean loss, settings and command."""
    state = torch.load(run / "state.pt")
    tail = [v for _, v in state["losses"][-200:]]
    card = {
        "step": state["step"],
        "train_seconds": round(state["seconds"], 1),
        "final_loss": round(float(np.mean(tail)), 5) if tail else None,
        "settings": state["settings"],
        "command": state["command"],
    }
    return state, card
