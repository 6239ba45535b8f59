"""A resumable training run's log: the progress line, the atomic checkpoint and the
resume, shared by the loops that train a part beside the frozen DiT (branches, the
picture refiner, the few-step adapter)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


class RunLog:
    """A resumable run's losses and seconds: the progress line every EVERY steps and the
    checkpoint OUT/state.pt (written atomically, settings.checkpoint_every steps apart and
    at the last step) holding what `weights()` gives (weights, optimizer, records) with
    the step, losses, seconds and settings."""

    def __init__(self, out: Path, settings, say: Callable[[str], None] = print, every: int = 10):
        self.out, self.settings, self.say, self.every = out, settings, say, every
        self.start, self.losses, self.seconds = 0, [], 0.0
        self.began = time.perf_counter()

    def resume(self) -> dict | None:
        """The last checkpoint (None when there is none), its step, losses and seconds
        taken up by this log."""
        path = self.out / "state.pt"
        if not path.exists():
            return None
        state = torch.load(path)
        self.start, self.losses, self.seconds = state["step"], state["losses"], state["seconds"]
        self.say(f"resumed at step {self.start}")
        return state

    def done(self, step: int, loss: float, weights: Callable[[], dict]) -> None:
        """Step STEP (counted from 1) ended with LOSS."""
        self.losses.append((step, round(loss, 5)))
        if step % self.every == 0:
            elapsed = self.seconds + time.perf_counter() - self.began
            recent = np.mean([v for _, v in self.losses[-50:]])
            self.say(f"step {step}/{self.settings.steps} loss {recent:.4f} {elapsed:.0f} s")
        if step % self.settings.checkpoint_every == 0 or step == self.settings.steps:
            self.seconds, self.began = self.seconds + time.perf_counter() - self.began, time.perf_counter()
            state = {
                **weights(),
                "step": step,
                "losses": self.losses,
                "seconds": self.seconds,
                "settings": dataclasses.asdict(self.settings),
            }
            torch.save(state, self.out / "state.tmp")
            (self.out / "state.tmp").replace(self.out / "state.pt")
