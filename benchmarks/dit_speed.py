"""DiT speed on this machine: which config can train tens of thousands of steps on a CPU?

For each config: parameters, training samples/s (forward + backward, batch 16), seconds per
sampling step (forward, batch 2 = one CFG pair), forward FLOPs (counted by torch), and the
achieved GFLOP/s against an fp32 matmul peak measured in the same run (the machine may be
shared, so the peak is the fair yardstick). Latents are (8, 5, 8, 8): 17 frames at 64x64
through the VAE (time /4, space /8). Prints JSON on stdout and a table on stderr.

    python benchmarks/dit_speed.py [--seconds 3] [--threads N]

When another job holds a core (a training run), --threads 1 measures the model rather than
the fight between two thread pools: with two threads each step then waits on the busy core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from kinema.diffusion.flow import flow_loss
from kinema.models.dit import DiT, DiTConfig

LATENT = (8, 5, 8, 8)  # (C, T, H, W)
TEXT_TOKENS = 16  # a shapes-world prompt is 11-20 MiniLM tokens
CONFIGS = [  # (width, depth, heads, patch)
    (192, 6, 3, (1, 2, 2)),
    (256, 8, 4, (1, 2, 2)),
    (384, 8, 6, (1, 2, 2)),
    (384, 12, 6, (1, 2, 2)),
    (192, 6, 3, (1, 1, 1)),
    (256, 8, 4, (1, 1, 1)),
]


def timed(fn, seconds: float) -> float:
    """Seconds per call: one warm-up call, then calls until `seconds` have passed (at least 2)."""
    fn()
    n, start = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def matmul_peak_gflops(seconds: float, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    for _ in range(3):  # best of three: another process may take the cores for a moment
        best = max(best, 2 * n**3 / timed(lambda: a @ b, seconds / 3) / 1e9)
    return best


def forward_flops(model: DiT, batch: int, text: torch.Tensor) -> int:
    x = torch.randn(batch, *LATENT)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, torch.rand(batch), text[:batch])
    return counter.get_total_flops()


def bench(width: int, depth: int, heads: int, patch: tuple, seconds: float) -> dict:
    torch.manual_seed(0)
    config = DiTConfig(width=width, depth=depth, heads=heads, patch=patch)
    model = DiT(config)
    text = torch.randn(16, TEXT_TOKENS, config.text_dim)
    tokens = (LATENT[1] // patch[0]) * (LATENT[2] // patch[1]) * (LATENT[3] // patch[2])

    x0 = torch.randn(16, *LATENT)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        flow_loss(lambda x, t: model(x, t, text), x0).backward()
        optimizer.step()

    train_s = timed(train_step, seconds)

    x2 = torch.randn(2, *LATENT)
    with torch.inference_mode():
        step_s = timed(lambda: model(x2, 0.5, text[:2]), seconds)

    flops_1 = forward_flops(model, 1, text)
    return {
        "width": width,
        "depth": depth,
        "heads": heads,
        "patch": list(patch),
        "tokens": tokens,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "forward_GFLOP_per_sample": round(flops_1 / 1e9, 3),
        "train_samples_per_s": round(16 / train_s, 1),
        "train_step_s_batch16": round(train_s, 3),
        # backward costs about twice the forward
        "train_GFLOPs": round(3 * 16 * flops_1 / train_s / 1e9, 1),
        "sample_step_s_batch2": round(step_s, 4),
        "sample_GFLOPs": round(2 * flops_1 / step_s / 1e9, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on each measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for config in CONFIGS:
        # the peak is measured beside each config, so a neighbour's load changes both alike
        peak = matmul_peak_gflops(args.seconds)
        row = bench(*config, seconds=args.seconds)
        row["matmul_peak_GFLOPs"] = round(peak, 1)
        row["train_pct_of_peak"] = round(100 * row["train_GFLOPs"] / peak, 1)
        row["sample_pct_of_peak"] = round(100 * row["sample_GFLOPs"] / peak, 1)
        rows.append(row)
        print(f"measured {config}", file=sys.stderr)
    report = {
        "latent_shape": list(LATENT),
        "text_tokens": TEXT_TOKENS,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "configs": rows,
    }
    print(json.dumps(report, indent=2))
    head = f"{'width':>5} {'depth':>5} {'patch':>7} {'tokens':>6} {'params':>7} {'train/s':>8} {'step_s':>7} {'peak':>6} {'%peak':>6}"
    print(head, file=sys.stderr)
    for r in rows:
        patch = "x".join(map(str, r["patch"]))
        print(
            f"{r['width']:>5} {r['depth']:>5} {patch:>7} {r['tokens']:>6} {r['params_M']:>6}M "
            f"{r['train_samples_per_s']:>8} {r['sample_step_s_batch2']:>7} {r['matmul_peak_GFLOPs']:>6} {r['train_pct_of_peak']:>6}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
