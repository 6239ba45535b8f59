"""Train the built-in model on one lent GPU inside a fixed time, and pack what it made.

    python tools/gpu_train.py --out DIR --seconds 540 --runs dit,dit-p1,vae-decoder \
        [--init dit=/tmp/dit-init] [--later 200]

The parent copies the VAE into the work folder, renders the DiT presets' latent cache on
every core and encodes it on the GPU. A VAE run starts from that VAE, a run named in
`--init` from the checkpoint given there (`tools/carry_weights.py` carries one), the
others from scratch. Then each run trains in its own process, all on
the one GPU (small models leave most of it idle, so they share it well): a run measures
its steps/s after a warm-up and sets its preset's steps so that the cosine schedule ends
at the deadline (recorded as `--set steps=N` in its config's command), saves its
checkpoint and exports fp16 weights. The parent packs the exports and logs into OUT as
pieces of at most 15 MB (the device tool brings back files of up to 16 MB):

    cat DIR/results.tar.* | tar x
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SAVE_MARGIN = 30.0  # seconds a run keeps for its final save and export
PIECE = 15 * 2**20
# GPU_TRAIN_DEVICE=cpu and small GPU_TRAIN_SET changes ("dit:cache_clips=64 dit:batch=4")
# rehearse the whole script on a CPU before it spends GPU time
DEVICE = os.environ.get("GPU_TRAIN_DEVICE", "cuda")
WARMUP, PROBE = (10, 30) if DEVICE == "cuda" else (1, 2)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_preset(name: str, work: Path):
    from kinema.train.presets import get_preset, override

    changes = [
        s.split(":", 1)[1] for s in os.environ.get("GPU_TRAIN_SET", "").split() if s.startswith(name + ":")
    ]
    preset = override(get_preset(name), changes)
    if preset.stage == "dit":
        preset = dataclasses.replace(preset, vae=str(work / "vae"))
    return preset


def build_cache(work: Path, runs: list[str]) -> None:
    """The latent cache every DiT run reads (one build: they draw the same clips)."""
    import torch

    from kinema.train.latent_cache import LatentCache, build_cache, cache_folder
    from kinema.train.stages import load_vae

    presets = [p for p in (run_preset(n, work) for n in runs) if p.stage == "dit"]
    if not presets:
        return
    folders = {cache_folder(p) for p in presets}
    if len(folders) != 1:
        raise SystemExit(f"the DiT runs want different caches: {sorted(map(str, folders))}")
    preset = max(presets, key=lambda p: p.cache_clips)
    vae = load_vae(preset.vae).to(DEVICE)
    start = time.time()
    build_cache(
        vae, preset, cache_folder(preset), preset.cache_clips, workers=max(1, (os.cpu_count() or 2) - 1)
    )
    log(f"latent cache of {preset.cache_clips} clips built in {time.time() - start:.0f} s")
    sys.path.insert(0, str(Path(__file__).parent))
    from pack_text_encoder import check_prompts

    check_prompts(sorted(set(LatentCache(cache_folder(preset), preset.cache_clips).prompts)))
    del vae
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def worker(name: str, work: Path, deadline: float, init_from: str | None, later: float) -> None:
    """One run: warm up, measure, fit the schedule to the deadline (and `later` seconds of
    a call still to come, which resumes it), train, save, export."""
    import torch

    from kinema.train.export import export_checkpoint
    from kinema.train.trainer import Trainer

    torch.set_num_threads(2)
    out = work / name
    compile_step = os.environ.get("GPU_TRAIN_COMPILE", "") == "1"
    trainer = Trainer(run_preset(name, work), out, init_from=init_from, device=DEVICE, compile=compile_step)
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    start = time.time()
    for _ in range(WARMUP):  # kernels chosen (and compiled), caches warm
        trainer.train_step()
    sync()
    log(f"{name}: {WARMUP} warm-up steps in {time.time() - start:.1f} s (compile {compile_step})")
    start = time.time()
    for _ in range(PROBE):
        trainer.train_step()
    sync()
    rate = PROBE / (time.time() - start)
    left = deadline - SAVE_MARGIN - time.time()
    steps = trainer.step + int(0.97 * rate * (left + later))
    trainer.preset = dataclasses.replace(trainer.preset, steps=steps)
    log(
        f"{name}: {rate:.1f} steps/s × batch {trainer.preset.batch}; training to step {steps} in {left:.0f} s"
    )
    result = trainer.run(max_minutes=left / 60, progress=False, validate=False)
    export_checkpoint(out, work / "export" / name, half=True)
    lines = out.with_suffix(".log.jsonl").read_text().splitlines()
    log(f"{name}: done {json.dumps(result)}; last log {lines[-1] if lines else 'none'}")


def pack(work: Path, out: Path, runs: list[str]) -> None:
    tar_path = work / "results.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in runs:
            for path in (work / "export" / name, work / f"{name}.log.jsonl", work / f"{name}.stdout"):
                if path.exists():
                    tar.add(path, arcname=path.relative_to(work))
    out.mkdir(parents=True, exist_ok=True)
    with open(tar_path, "rb") as f:
        for i, piece in enumerate(iter(lambda: f.read(PIECE), b"")):
            (out / f"results.tar.{i:02d}").write_bytes(piece)
    log(f"packed {tar_path.stat().st_size / 2**20:.1f} MB into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--seconds", type=float, required=True, help="wall time for everything, packing included"
    )
    parser.add_argument("--runs", default="dit,dit-p1,vae-decoder")
    parser.add_argument(
        "--later",
        type=float,
        default=0.0,
        help="training seconds a later call (which resumes these runs) will add: the "
        "schedule is planned to end there, so its learning rate does not jump back up",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/kinema-runs"))
    parser.add_argument("--vae", type=Path, default=Path("src/kinema/weights/builtin/vae"))
    parser.add_argument(
        "--init", action="append", default=[], help="NAME=FOLDER: start run NAME from that checkpoint"
    )
    args = parser.parse_args()
    begin = time.time()
    deadline = begin + args.seconds - 15  # the parent's packing comes after
    runs = args.runs.split(",")
    inits = dict(item.split("=", 1) for item in args.init)
    if set(inits) - set(runs):
        raise SystemExit(f"--init names runs that are not run: {sorted(set(inits) - set(runs))}")
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / "vae").exists():
        shutil.copytree(args.vae, args.work / "vae")
    build_cache(args.work, runs)
    children = {}
    for name in runs:
        init_from = inits.get(name) or (str(args.work / "vae") if name.startswith("vae") else None)
        command = [sys.executable, __file__, "--worker", name, str(args.work), str(deadline)]
        command += [init_from or "", str(args.later)]
        stdout = open(args.work / f"{name}.stdout", "w")
        children[name] = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT)
    for name, child in children.items():
        code = child.wait()
        log(f"{name} exited with {code}")
        print((args.work / f"{name}.stdout").read_text()[-3000:], flush=True)
    pack(args.work, args.out, runs)
    log(f"all done in {time.time() - begin:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--worker":
        worker(sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]), sys.argv[5] or None, float(sys.argv[6]))
    else:
        main()
