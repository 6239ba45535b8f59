"""`kinema bench`: speed and memory of the default clip on this machine, as JSON.

A CPU's model varies between machines, so the run measures its own fp32 matmul peak
and reports the DiT's achieved GFLOP/s against it.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import torch

from kinema.pipelines.loading import load
from kinema.publish import Origin, publish


def matmul_peak_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """Achieved fp32 GFLOP/s of a square matmul: the ceiling for this run's other numbers."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def _dit_flops(pipe, latent_shape) -> float:
    """Forward FLOPs of one DiT call, counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(latent_shape)
    text, mask = pipe.text_encoder.encode(["a red circle moving right on a black background"])
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        pipe.dit(x, 0.5, text, mask)
    return float(counter.get_total_flops())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(model: str | None = None, repeats: int = 2) -> dict:
    """Seconds per default clip end to end (text encoding and writing included), seconds
    per DiT step, achieved GFLOP/s against the matmul peak, and peak RSS."""
    peak = matmul_peak_gflops()
    start = time.perf_counter()
    pipe = load(model)
    load_seconds = time.perf_counter() - start
    prompt = "a red circle moving right on a black background"
    clip_seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            start = time.perf_counter()
            video = pipe(prompt, seed=i)
            publish(
                video,
                Path(tmp) / f"clip{i}.mp4",
                {"prompt": prompt, "seed": i},
                Origin(pipe.name, pipe.model_hash),
            )
            clip_seconds.append(time.perf_counter() - start)
    d = pipe.defaults
    f = pipe.vae.config.spatial_factor
    shape = (
        1,
        pipe.vae.config.latent_channels,
        pipe.latent_frames(d["frames"]),
        d["size"] // f,
        d["size"] // f,
    )
    x = torch.randn(shape)
    text, mask = pipe.text_encoder.encode([prompt])
    with torch.inference_mode():
        pipe.dit(x, 0.5, text, mask)
        start = time.perf_counter()
        for _ in range(5):
            pipe.dit(x, 0.5, text, mask)
        step = (time.perf_counter() - start) / 5
    flops = _dit_flops(pipe, shape)
    return {
        "model": pipe.name,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflops": round(peak, 1),
        "load_seconds": round(load_seconds, 2),
        "seconds_per_clip": round(min(clip_seconds), 2),
        "clip": {"frames": d["frames"], "size": d["size"], "steps": d["steps"], "guidance": d["guidance"]},
        "seconds_per_dit_call": round(step, 4),
        "seconds_per_step_with_guidance": round(2 * step, 4),
        "dit_gflops_per_call": round(flops / 1e9, 3),
        "dit_achieved_gflops": round(flops / step / 1e9, 1),
        "dit_fraction_of_peak": round(flops / step / 1e9 / peak, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
