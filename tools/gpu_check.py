"""Every (family, mode) pair of kinema's diffusers backends, run on tiny random folders on
a GPU (bfloat16, model CPU offload, VAE tiling) or on this CPU, each output checked.

    python tools/gpu_check.py                       # CUDA: bf16, offload, tiling
    python tools/gpu_check.py --device cpu          # no offload; bf16 where the CPU has
                                                    # bf16 instructions, else fp32
    python tools/gpu_check.py --only wan-vace/inpaint ltx/loop
    python tools/gpu_check.py --list                # the pairs, one a line

It builds every tiny folder (tools/tiny_models.py) and a LoRA file for each, then prints
ONE JSON line per pair on stdout: the pair, whether it passed, the seconds of the call and
of loading its folder, the peak memory (CUDA: the most allocated during the pair; CPU: the
process's peak resident size so far), the output's shape and each check:
shape (frames, height, width as asked), varies (not one constant value), exact (the kept
pixels or frames equal the input's, where the mode keeps any) and, for lora, changes (the
adapter changes the output) and restored (after it the model is the base model exactly).
The exit status is 1 when any pair failed. tools/gpu_check.md says how to run it on the
device machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_models  # noqa: E402  (a sibling tool, not a package)

PROMPT = "a red ball rolls across a table"
FRAMES, SIZE, ADDED = 9, 64, 4


@dataclass(frozen=True)
class Inputs:
    """The inputs every pair draws on: two images, a source clip, a mask, a control clip."""

    image: np.ndarray
    other: np.ndarray
    source: object  # kinema.io.Video
    region: np.ndarray
    control: object  # kinema.io.Video
    lora: Path | None = None


def make_inputs() -> Inputs:
    from kinema.io import Video

    rng = np.random.default_rng(0)
    image = np.full((SIZE, SIZE, 3), 40, np.uint8)
    image[16:48, 16:48] = (220, 40, 40)
    region = np.zeros((SIZE, SIZE), bool)
    region[16:48, 8:40] = True
    source = Video(rng.integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8), 8.0)
    control = Video(rng.integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8), 8.0)
    return Inputs(image, image[::-1].copy(), source, region, control)


def _needs(backend, x: Inputs) -> dict:
    """What the folder needs to make a clip at all: a first image or a control clip."""
    if "t2v" not in backend.modes:
        return {"keyframes": {0: x.image}}
    if backend.class_name == "CogVideoXFunControlPipeline":
        return {"control": x.control}
    return {}


def _vace(backend) -> bool:
    return backend.class_name == "WanVACEPipeline"


# each mode: (backend, inputs, options) → (frames, expected (T, H, W), checks that apply)
def t2v(b, x, o):
    return b(PROMPT, frames=FRAMES, size=SIZE, **_needs(b, x), **o).frames, (FRAMES, SIZE, SIZE), {}


def i2v(b, x, o):
    v = b(PROMPT, frames=FRAMES, size=SIZE, keyframes={0: x.image}, **o).frames
    return v, (FRAMES, SIZE, SIZE), {"exact": np.array_equal(v[0], x.image)} if _vace(b) else {}


def keyframes(b, x, o):
    v = b(PROMPT, frames=FRAMES, size=SIZE, keyframes={0: x.image}, last_image=x.other, **o).frames
    exact = np.array_equal(v[0], x.image) and np.array_equal(v[-1], x.other)
    return v, (FRAMES, SIZE, SIZE), {"exact": exact} if _vace(b) else {}


def loop(b, x, o):
    v = b(PROMPT, frames=FRAMES, size=SIZE, keyframes={0: x.image}, loop=True, **o).frames
    return v, (FRAMES, SIZE, SIZE), {"exact": np.array_equal(v[0], x.image)} if _vace(b) else {}


def extend(b, x, o):
    v = b.extend(x.source, PROMPT, ADDED, **o).frames
    return v, (FRAMES + ADDED, SIZE, SIZE), {"exact": np.array_equal(v[:FRAMES], x.source.frames)}


def extend_backward(b, x, o):
    v = b.extend(x.source, PROMPT, ADDED, backward=True, **o).frames
    return v, (FRAMES + ADDED, SIZE, SIZE), {"exact": np.array_equal(v[ADDED:], x.source.frames)}


def remix(b, x, o):
    return b.remix(x.source, PROMPT, strength=0.5, **o).frames, (FRAMES, SIZE, SIZE), {}


def inpaint(b, x, o):
    v = b.inpaint(x.source, PROMPT, x.region, **o).frames
    return v, (FRAMES, SIZE, SIZE), {"exact": np.array_equal(v[:, ~x.region], x.source.frames[:, ~x.region])}


def outpaint(b, x, o):
    v = b.outpaint(x.source, PROMPT, 16, 0, 16, 0, **o).frames
    return v, (FRAMES, SIZE, SIZE + 32), {"exact": np.array_equal(v[:, :, 16:-16], x.source.frames)}


def control(b, x, o):
    scale = {"control_scale": 0.5} if _vace(b) else {}
    return (
        b(PROMPT, frames=FRAMES, size=SIZE, control=x.control, **scale, **o).frames,
        (FRAMES, SIZE, SIZE),
        {},
    )


def reference(b, x, o):
    return b(PROMPT, frames=FRAMES, size=SIZE, reference=x.other, **o).frames, (FRAMES, SIZE, SIZE), {}


def lora(b, x, o):
    from kinema.pipelines.adapters import read_adapter

    make = lambda: b(PROMPT, frames=FRAMES, size=SIZE, **_needs(b, x), **o).frames  # noqa: E731
    base = make()
    with b.adapted((read_adapter(str(x.lora), 1.0),)):
        adapted = make()
    after = make()
    checks = {"changes": not np.array_equal(adapted, base), "restored": np.array_equal(after, base)}
    return adapted, (FRAMES, SIZE, SIZE), checks


MODES: dict[str, Callable] = {
    "t2v": t2v,
    "i2v": i2v,
    "keyframes": keyframes,
    "loop": loop,
    "extend": extend,
    "extend-backward": extend_backward,
    "remix": remix,
    "inpaint": inpaint,
    "outpaint": outpaint,
    "control": control,
    "reference": reference,
    "lora": lora,
}
# every pair the backends serve, by tiny folder (tools/tiny_models.py's names)
PAIRS: dict[str, tuple[str, ...]] = {
    "wan-t2v": ("t2v", "remix", "lora"),
    "wan-i2v": ("i2v", "keyframes", "loop", "lora"),
    "wan-vace": ("t2v", "i2v", "keyframes", "loop", "extend", "extend-backward", "inpaint", "outpaint")
    + ("control", "reference", "lora"),
    "ltx": ("t2v", "i2v", "keyframes", "loop", "extend", "extend-backward", "remix", "lora"),
    "ltx-condition": ("t2v", "keyframes"),
    "cogvideox": ("t2v", "remix", "lora"),
    "cogvideox-v2v": ("remix",),
    "cogvideox-i2v": ("i2v", "lora"),
    "cogvideox-fun-control": ("control", "lora"),
}


def all_pairs() -> list[str]:
    return [f"{folder}/{mode}" for folder, modes in PAIRS.items() for mode in modes]


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); emulated bf16 is slower than fp32."""
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return bool(native or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def small_tiles(backend) -> None:
    """Tiles smaller than the tiny clips, so that tiled decoding really runs at 64x64.

    Not for CogVideoX: its tiled code misplaces tiles this small (a 64x64 clip comes back
    70x68, and encoding fails), so it keeps its default tiles, which 64x64 does not reach."""
    import inspect

    vae = backend.pipe.vae
    if backend.family.name == "CogVideoX":
        return
    wanted = {
        "tile_sample_min_height": 32,
        "tile_sample_min_width": 32,
        "tile_sample_stride_height": 16,
        "tile_sample_stride_width": 16,
    }
    accepted = inspect.signature(vae.enable_tiling).parameters
    vae.enable_tiling(**{k: v for k, v in wanted.items() if k in accepted})


def peak_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run(pairs: list[str], device: str, steps: int, workdir: Path, emit: Callable[[dict], None]) -> int:
    """Run PAIRS ("folder/mode") on DEVICE, building folders under WORKDIR; emit one record
    a pair; returns how many failed."""
    from kinema.pipelines.backends import load_backend

    dtype = torch.bfloat16 if device == "cuda" or cpu_has_bf16() else torch.float32
    offload = device == "cuda"
    x0 = make_inputs()
    failed, loaded = 0, {}
    for pair in pairs:
        folder_name, mode = pair.split("/")
        record = {
            "pair": pair,
            "device": device,
            "dtype": str(dtype).removeprefix("torch."),
            "offload": offload,
        }
        try:
            if folder_name not in loaded:
                folder = tiny_models.build(folder_name, workdir / folder_name)
                start = time.perf_counter()
                backend = load_backend(
                    folder, "cpu" if offload else device, cpu_offload=offload, vae_tiling=True, dtype=dtype
                )
                small_tiles(backend)
                made_lora = tiny_models.lora(folder, workdir / f"{folder_name}.safetensors")
                loaded[folder_name] = (backend, made_lora, time.perf_counter() - start)
            backend, made_lora, load_s = loaded[folder_name]
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            x = Inputs(x0.image, x0.other, x0.source, x0.region, x0.control, made_lora)
            start = time.perf_counter()
            frames, shape, checks = MODES[mode](backend, x, {"steps": steps, "seed": 1})
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            checks = {"shape": tuple(frames.shape[:3]) == shape, "varies": bool(np.ptp(frames) > 0), **checks}
            checks = {k: bool(v) for k, v in checks.items()}
            record.update(
                ok=all(checks.values()),
                seconds=round(seconds, 3),
                load_seconds=round(load_s, 3),
                peak_mb=round(peak_mb(device), 1),
                shape=list(frames.shape[:3]),
                checks=checks,
            )
        except Exception as e:  # a pair that breaks is reported and the rest still run
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            record.update(ok=False, error=f"{type(e).__name__}: {first}"[:300])
        failed += not record["ok"]
        emit(record)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--only", nargs="+", metavar="FOLDER/MODE", help="run these pairs only (see --list)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps a clip (default 4)")
    parser.add_argument("--workdir", type=Path, help="where the tiny folders go (default: a temporary one)")
    parser.add_argument("--list", action="store_true", help="print the pairs, one a line")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(all_pairs()))
        return 0
    pairs = args.only or all_pairs()
    unknown = [p for p in pairs if p not in all_pairs()]
    if unknown:
        parser.error(f"unknown pair {unknown[0]!r}: see --list")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: use --device cpu")
    with tempfile.TemporaryDirectory(prefix="kinema-gpu-check-") as scratch:
        workdir = args.workdir or Path(scratch)
        failed = run(pairs, args.device, args.steps, workdir, lambda r: print(json.dumps(r), flush=True))
    print(f"{len(pairs) - failed} of {len(pairs)} pairs passed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
