"""Training on several processes, with the same `kinema train` options as one:

    torchrun --standalone --nproc_per_node 2 -m kinema.cli train --preset vae       # CPUs, gloo
    torchrun --standalone --nproc_per_node 8 -m kinema.cli train --preset dit --device cuda
    accelerate launch --multi_gpu --num_processes 8 -m kinema.cli train --preset dit --device cuda

torchrun starts N copies of the command with WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR
and MASTER_PORT in their environment; `accelerate launch` (for users who configured
accelerate) sets the same variables, so it works the same way. The trainer sees
WORLD_SIZE > 1 and joins the process group here: gloo on CPUs, nccl on GPUs, each process
on the GPU of its LOCAL_RANK. The preset's batch is the global batch and must split
evenly between the processes.

Every process takes a contiguous slice of the SAME global batch (the preset's `batch`),
and DistributedDataParallel averages the gradients, so a step's gradient is the one a
single process computes on the whole batch. Per-batch random draws (noise, timesteps,
condition kinds) are drawn for the whole batch on every process and sliced, which keeps
every process's random state where a single process's would be: a checkpoint written by
rank 0 resumes on any number of processes.
"""

from __future__ import annotations

import atexit
import gc
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from kinema.errors import InputError

# Barriers wait while rank 0 alone builds a latent cache, validates or writes a
# checkpoint: hours for a large cache, far past the collectives' default timeout.
WAIT = timedelta(hours=6)
LEAVE_WAIT = timedelta(seconds=60)  # how long a finished rank waits for the others at exit

_control = None  # the gloo group for barriers and agreements, made once a process


@dataclass(frozen=True)
class Shard:
    """Which process this is among how many; one process is Shard(0, 1), where every
    method is a no-op that returns its input."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and plots, and validates."""
        return self.rank == 0

    def rows(self, batch: int) -> slice:
        """This process's rows of a global batch of `batch` items."""
        per = batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(group=_control)

    def agree(self, flag: bool) -> bool:
        """Rank 0's flag, on every process: time-based decisions (stop, save) must fall
        on the same step everywhere, or one process waits for the others forever."""
        if self.world == 1:
            return flag
        value = torch.tensor([int(flag)])
        dist.broadcast(value, src=0, group=_control)
        return bool(value.item())

    def mean(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each metric averaged over the processes (each holds its slice's mean)."""
        if self.world == 1:
            return metrics
        values = torch.tensor(list(metrics.values()), dtype=torch.float64)
        dist.all_reduce(values, group=_control)
        return dict(zip(metrics, (values / self.world).tolist(), strict=True))

    def gather(self, items: list) -> list:
        """Every process's `items`, concatenated in rank order (the global batch's order)."""
        if self.world == 1:
            return items
        parts: list = [None] * self.world
        dist.all_gather_object(parts, items, group=_control)
        return [x for part in parts for x in part]

    def broadcast(self, obj):
        """Rank 0's `obj`, on every process."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=_control)
        return box[0]


def join(device: torch.device) -> tuple[Shard, torch.device]:
    """This process's shard and device: Shard(0, 1) and `device` unless started by torchrun
    (or accelerate) with WORLD_SIZE > 1, or inside a process group made elsewhere; then it
    joins the group, and a bare "cuda" becomes the GPU of LOCAL_RANK."""
    global _control
    if not dist.is_initialized():
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return Shard(), device
        missing = [v for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise InputError(
                f"WORLD_SIZE is {world} but {', '.join(missing)} is not set: start training with torchrun"
            )
    elif dist.get_world_size() == 1:
        return Shard(), device
    if device.type == "cuda":
        if device.index is not None:
            raise InputError(
                f"--device {device}: with several processes give 'cuda', and each takes the GPU of its LOCAL_RANK"
            )
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    if _control is None:
        # a CPU group beside nccl: agreeing on a flag each step then costs no GPU sync
        _control = dist.new_group(backend="gloo", timeout=WAIT)
    return Shard(dist.get_rank(), dist.get_world_size()), device


def _leave() -> None:
    # A DDP wrapper's reducer holds the group: left to interpreter shutdown, the group's
    # threads are torn down out of order and the process aborts ("terminate called
    # without an active exception") after training finished. Free the wrappers first.
    gc.collect()
    try:
        # leave together: a rank that tears the group down while its peer is still in the
        # last collective (the final checkpoint's barrier) made gloo abort the peer, once
        # in the test suite
        dist.monitored_barrier(group=_control, timeout=LEAVE_WAIT)
    except RuntimeError:
        pass  # a peer already gone (killed, crashed): there is nobody to wait for
    dist.destroy_process_group()


def wrap(module: torch.nn.Module, shard: Shard, device: torch.device) -> torch.nn.Module:
    """`module` in DistributedDataParallel when there are several processes, else as it is."""
    if shard.world == 1:
        return module
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )
