"""Training on two gloo processes on the CPU, against one process on the same global batch."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kinema.errors import InputError
from kinema.train.checkpoint import load_train_state, load_weights
from kinema.train.distributed import join
from kinema.train.presets import get_preset
from kinema.train.trainer import Trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cases(vae) -> dict:
    """The presets each process trains a step of: the VAE, and the DiT (its weighted loss and
    per-item random draws) on rendered clips and on a latent cache that rank 0 builds."""
    dit = dataclasses.replace(get_preset("dit-tiny"), vae=str(vae), batch=4)
    return {
        "vae": dataclasses.replace(get_preset("vae-tiny"), batch=4),
        "dit": dit,
        "dit-cache": dataclasses.replace(dit, cache_clips=6, render_workers=1),
    }


def _one_step_each(rank: int, world: int, port: int, vae, root) -> None:
    """A spawned process: one training step and a checkpoint of each case, its gradients saved."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    import kinema.train.trainer as trainer_module

    writes, write = [], trainer_module.save_checkpoint
    trainer_module.save_checkpoint = lambda *a, **k: writes.append(rank) or write(*a, **k)
    results = {}
    for name, preset in _cases(vae).items():
        trainer = Trainer(preset, root / name)
        metrics = trainer.train_step()
        trainer.save()
        results[name] = {
            "grads": {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None},
            "grad_norm": float(metrics["grad_norm"]),
            "loss": trainer.shard.mean({"loss": float(metrics["loss"])})["loss"],
        }
    torch.save({"results": results, "writes": writes}, root / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae") / "vae"
    Trainer(get_preset("vae-tiny"), folder).run(max_steps=1, progress=False, validate=False)
    return folder


@pytest.fixture(scope="module")
def two_processes(vae, tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    mp.spawn(_one_step_each, args=(2, _free_port(), vae, root), nprocs=2)
    return [torch.load(root / f"rank{r}.pt") for r in range(2)], root


@pytest.mark.slow
@pytest.mark.parametrize("case", ["vae", "dit", "dit-cache"])
def test_two_processes_take_the_gradient_of_the_whole_batch(case, two_processes, vae, tmp_path):
    ranks, _ = two_processes
    one = Trainer(_cases(vae)[case], tmp_path / case)
    metrics = one.train_step()
    for rank in ranks:  # DDP leaves every process with the same, whole-batch gradient
        two = rank["results"][case]
        assert two["loss"] == pytest.approx(float(metrics["loss"]), rel=1e-5)
        assert two["grad_norm"] == pytest.approx(float(metrics["grad_norm"]), rel=1e-5)
        grads = {n: p.grad for n, p in one.model.named_parameters() if p.grad is not None}
        assert grads.keys() == two["grads"].keys()
        for name, grad in grads.items():
            torch.testing.assert_close(two["grads"][name], grad, rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.slow
def test_only_rank_zero_writes_checkpoints(two_processes):
    (rank0, rank1), root = two_processes
    assert rank0["writes"] == [0, 0, 0] and rank1["writes"] == []
    assert load_train_state(root / "dit")[1]["step"] == 1


def _torchrun(out, *args) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "kinema.cli", "train", "--preset", "vae-tiny", "--out", str(out), "--no-progress"]
    # a checkpoint after every step, so the kill below lands between two of them
    command += ["--set", "steps=8", "--set", "checkpoint_minutes=0", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(run: subprocess.Popen) -> None:
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output[-8000:]


def _step(folder) -> int:
    """The step of a checkpoint folder; -1 while it has none (or is between two)."""
    try:
        return json.loads((folder / "train_state.json").read_text())["step"]
    except FileNotFoundError:
        return -1


@pytest.mark.slow
def test_a_killed_torchrun_run_resumes_exactly(tmp_path):
    killed = _torchrun(tmp_path / "killed")
    deadline = time.monotonic() + 120
    while _step(tmp_path / "killed") < 2:
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before its kill"
        time.sleep(0.05)
    killed.send_signal(signal.SIGTERM)  # torchrun passes it on to both processes
    killed.communicate(timeout=60)
    assert _step(tmp_path / "killed") < 8, "the kill came after the run's end"
    _finish(_torchrun(tmp_path / "killed"))
    _finish(_torchrun(tmp_path / "straight"))

    resumed, straight = load_train_state(tmp_path / "killed"), load_train_state(tmp_path / "straight")
    assert resumed[1]["step"] == straight[1]["step"] == 8
    for name, tensor in straight[0].items():
        assert torch.equal(resumed[0][name], tensor), name
    ema = load_weights(tmp_path / "killed")
    assert all(torch.equal(ema[k], v) for k, v in load_weights(tmp_path / "straight").items())
    # rank 0 alone logs: each step once
    logged = [json.loads(x) for x in (tmp_path / "straight.log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logged if "loss" in x] == list(range(1, 9))


def test_a_world_without_torchrun_variables_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InputError, match="start training with torchrun"):
        join(torch.device("cpu"))
