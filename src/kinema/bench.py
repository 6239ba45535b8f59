"""`kinema bench`: speed and memory of the default clip on this machine, as JSON.

A CPU's model varies between machines, so the run measures its own fp32 matmul peak
and reports the DiT's achieved GFLOP/s against it. `bench --memory` measures peak
memory per configuration (int8 off/on; each diffusers memory saver off/on), each in a
fresh process: a process's peak resident size only ever grows, and torch allocates
outside Python's heap, where tracemalloc cannot see. `run` is the whole command: which
bench its flags ask for, and the combinations it refuses. `cold_start` times `kinema
generate` from the shell, phase by phase, in fresh processes.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from kinema.diffusion.samplers import timesteps
from kinema.errors import InputError
from kinema.io import Video
from kinema.pipelines.loading import SAVERS, load, resolve_model
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
    """Forward FLOPs of one DiT call as the sampler makes it (the prompt's states and its
    modulations made before, once a run), counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(latent_shape)
    text, mask = pipe.text_encoder.encode(["a red circle moving right on a black background"])
    with torch.inference_mode():
        states = _run_states(pipe.dit, text, mask, [0.5], 0.5)
        with FlopCounterMode(display=False) as counter:
            pipe.dit(x, 0.5, states)
    return float(counter.get_total_flops())


def _run_states(dit, text, mask, schedule, t: float):
    """The TextStates a sampler run makes once, with all of it made now (a run makes its
    keys, folded text and modulations on its first step): so that a timed or counted call
    is a step's own work, and the making can be timed apart."""
    states = dit.text_states(text, mask, times=schedule)
    states.modulation_at(dit, t)
    for block in dit.blocks:
        states.folded_for_layer(block.cross)
    return states


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux's VmHWM first: ru_maxrss survives fork and execve, so a child measured with it
    reports at least its parent's peak (the pytest or web process that started it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


LENGTH_PROMPT = "a red circle moving right on a black background"


def bench(model: str | None = None, repeats: int = 2) -> dict:
    """Seconds per default clip end to end (text encoding and writing included), seconds
    per DiT step, achieved GFLOP/s against the matmul peak, and peak RSS."""
    peak = matmul_peak_gflops()
    start = time.perf_counter()
    pipe = load(model)
    load_seconds = time.perf_counter() - start
    prompt = "a red circle moving right on a black background"
    clip_seconds = [made + published for made, published in _timed_clips(pipe, prompt, repeats)]
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
    text, mask = pipe.text_encoder.encode([prompt, ""])
    wan, wan_inputs = _diffusers_reference(shape)
    # As the sampler calls it: the prompt's keys, folded text and modulation at every time
    # of the schedule made once for the run; that making is timed too, and a step is
    # charged its share of it (1 / steps).
    schedule = timesteps(d["steps"], d["shift"])
    t = schedule[d["steps"] // 2].item()

    def states(rows: int):
        return _run_states(pipe.dit, text[:rows], mask[:rows], schedule, t)

    with torch.inference_mode():
        both_rows, prompt_row = states(2), states(1)
        seconds = _interleaved_seconds(
            {
                "step": lambda: pipe.dit(x, t, prompt_row),
                # a guided step: the prompt and the negative in one batch of two
                "guided": lambda: pipe.dit(torch.cat([x, x]), t, both_rows),
                "states_batch1": lambda: states(1),
                "states_batch2": lambda: states(2),
                "diffusers_batch1": lambda: wan(**wan_inputs(1)),
                "diffusers_batch2": lambda: wan(**wan_inputs(2)),
            }
        )
    step = seconds["step"] + seconds["states_batch1"] / d["steps"]
    guided = seconds["guided"] + seconds["states_batch2"] / d["steps"]
    flops = _dit_flops(pipe, shape)
    reference = {
        "model": "diffusers WanTransformer3DModel (12 layers, 4x64 heads, ffn 1024), random weights",
        "latents": list(shape),
        "text_tokens": 20,
        "seconds_batch1": round(seconds["diffusers_batch1"], 4),
        "seconds_batch2": round(seconds["diffusers_batch2"], 4),
    }
    vae = _vae_decode(pipe, shape)
    fast = _fast_clip(model, pipe, prompt)
    return {
        **({"fast": fast} if fast else {}),
        "model": pipe.name,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflops": round(peak, 1),
        "load_seconds": round(load_seconds, 2),
        "seconds_per_clip": round(min(clip_seconds), 2),
        "clip": {"frames": d["frames"], "size": d["size"], "steps": d["steps"], "guidance": d["guidance"]},
        "seconds_per_dit_call": round(step, 4),
        "seconds_per_step_with_guidance": round(guided, 4),
        "seconds_per_run_states_with_guidance": round(seconds["states_batch2"], 4),
        "dit_gflops_per_call": round(flops / 1e9, 3),
        "dit_achieved_gflops": round(flops / step / 1e9, 1),
        "dit_fraction_of_peak": round(flops / step / 1e9 / peak, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "diffusers_reference": reference,
        "dit_call_vs_diffusers_batch1": round(step / reference["seconds_batch1"], 3),
        "guided_step_vs_diffusers_batch2": round(guided / reference["seconds_batch2"], 3),
        "vae_decode": vae,
    }


def _vae_decode(pipe, shape: tuple[int, ...]) -> dict:
    """Seconds to decode the default clip's latents (SHAPE) to pixels, beside diffusers'
    AutoencoderKLWan (base_dim 32, z_dim 16, dim_mult 1-2-4-4, one residual block, random
    weights) decoding latents of the same frames and size, taken in turns."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    wan = AutoencoderKLWan(base_dim=32, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1).eval()
    latents, wan_latents = torch.randn(shape), torch.randn(1, 16, *shape[2:])
    with torch.inference_mode():
        seconds = _interleaved_seconds(
            {"kinema": lambda: pipe.vae.decode(latents), "diffusers": lambda: wan.decode(wan_latents)},
            rounds=5,
            per_round=2,
        )
    return {
        "latents": list(shape),
        "seconds": round(seconds["kinema"], 4),
        "diffusers_reference": {
            "model": "diffusers AutoencoderKLWan (base_dim 32, z_dim 16, dim_mult 1-2-4-4), random weights",
            "latents": list(wan_latents.shape),
            "seconds": round(seconds["diffusers"], 4),
        },
        "vs_diffusers": round(seconds["kinema"] / seconds["diffusers"], 3),
    }


def _timed_clips(pipe, prompt: str, repeats: int, **options) -> list[tuple[float, float]]:
    """(seconds to make, seconds to publish) of REPEATS clips of PROMPT (seeds 0, 1, …;
    OPTIONS go to the pipeline), each published to a temporary file as generate does."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            start = time.perf_counter()
            video = pipe(prompt, seed=i, **options)
            made = time.perf_counter() - start
            start = time.perf_counter()
            publish(
                video,
                Path(tmp) / f"clip{i}.mp4",
                {"prompt": prompt, "seed": i},
                Origin(pipe.name, pipe.model_hash),
            )
            times.append((made, time.perf_counter() - start))
    return times


def _fast_clip(model: str | None, pipe, prompt: str, repeats: int = 5) -> dict | None:
    """With the model's few-step adapter (None when it has none): the median seconds of a
    default clip in process over REPEATS (prompt encoding, sampling and VAE decoding: the
    pipeline call), and beside it the median seconds of publishing it (watermark,
    writing, signing)."""
    from kinema.pipelines.facts import ModelFacts
    from kinema.render import fast_adapter, fast_steps

    facts = ModelFacts.read(model)
    if "fast" not in facts.adapters:
        return None
    few = fast_adapter(facts)
    steps = fast_steps(few)
    with pipe.adapted((few,)):
        made, published = zip(*_timed_clips(pipe, prompt, repeats, steps=steps, guidance=1.0), strict=True)
    return {
        "steps": steps,
        "guidance": 1.0,
        "seconds_per_clip_in_process": round(statistics.median(made), 3),
        "publish_seconds": round(statistics.median(published), 3),
        "repeats": repeats,
    }


def _interleaved_seconds(
    calls: dict[str, Callable[[], object]], rounds: int = 15, per_round: int = 5
) -> dict:
    """The fastest round's mean seconds of each call, rounds taken in turn (all calls in
    round 1, then all in round 2, …), after two warm-up calls each: a shared machine's
    speed drifts by a quarter from minute to minute, and taking turns puts every call
    under the same drift, so their ratios hold where their seconds do not."""
    for call in calls.values():
        call()
        call()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(per_round):
                call()
            best[name] = min(best[name], (time.perf_counter() - start) / per_round)
    return best


def _diffusers_reference(shape: tuple[int, ...]):
    """The yardstick issue 23 names: diffusers' own Wan transformer at kinema's DiT's size
    (12 layers, 4 heads of 64, FFN 1024, 8 latent channels, 1×2×2 patches), random weights,
    with latents of SHAPE and 20 text tokens: the model and its inputs at a batch size."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    wan = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=4,
        attention_head_dim=64,
        in_channels=shape[1],
        out_channels=shape[1],
        text_dim=384,
        freq_dim=256,
        ffn_dim=1024,
        num_layers=12,
    ).eval()
    x, text = torch.randn(shape), torch.randn(1, 20, 384)

    def inputs(batch: int) -> dict:
        return {
            "hidden_states": x.expand(batch, *shape[1:]),
            "timestep": torch.full((batch,), 500),
            "encoder_hidden_states": text.expand(batch, -1, -1),
            "return_dict": False,
        }

    return wan, inputs


def measure(
    model: str | None = None,
    device: str = "cpu",
    *,
    int8: bool = False,
    savers: list[str] | tuple[str, ...] = (),
    steps: int | None = 2,
    generate: bool = True,
    frames: int | None = None,
) -> dict:
    """Load a model as configured and make the default clip (with `steps` sampler steps:
    the peak does not grow with their number; None: the model's), or one of `frames`
    frames with the checker's identity over it; this process's peak RSS (and CUDA peak).
    Meant to run alone in a fresh process; with generate=False it only imports."""
    start = time.perf_counter()
    result: dict = {}
    if generate:
        pipe = load(model, device, savers=savers, int8=int8)
        made = time.perf_counter()
        video = pipe(LENGTH_PROMPT, seed=0, steps=steps, frames=frames)
        result.update(
            model=pipe.name,
            frames=video.num_frames,
            size=[video.width, video.height],
            generate_seconds=round(time.perf_counter() - made, 2),
        )
        if frames is not None:
            from kinema.world import check

            identity = check(video.frames, LENGTH_PROMPT)["identity"]["frames_with_every_object"]
            result["identity_fraction"] = round(identity / video.num_frames, 3)
    result.update(seconds=round(time.perf_counter() - start, 2), peak_rss_mb=round(peak_rss_mb(), 1))
    if device == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def lengths(model: str | None = None, frames: tuple[int, ...] = (32, 64, 128, 256)) -> dict:
    """Long clips at the model's default steps, each in a fresh process: seconds, seconds
    per frame and peak RSS against length (windowed generation keeps the peak flat), and
    the share of frames where the checker finds the object (identity over the clip)."""
    runs = [
        {"frames": n, **_measure_in_subprocess({"model": model, "steps": None, "frames": n})} for n in frames
    ]
    for run in runs:
        if "generate_seconds" in run:
            run["seconds_per_frame"] = round(run["generate_seconds"] / run["frames"], 3)
    base = runs[0].get("peak_rss_mb")
    return {
        "prompt": LENGTH_PROMPT,
        "runs": runs,
        "peak_rss_ratio_longest_to_shortest": round(runs[-1]["peak_rss_mb"] / base, 3)
        if base and "peak_rss_mb" in runs[-1]
        else None,
    }


def _measure_in_subprocess(config: dict) -> dict:
    code = "import json, sys; from kinema.bench import measure; print(json.dumps(measure(**json.loads(sys.argv[1]))))"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(config)], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(model: str | None = None, device: str = "cpu", steps: int = 2) -> dict:
    """Peak memory of loading the model and making the default clip, one row a
    configuration, each measured in a fresh process: "imports only" (the floor every row
    includes), then kinema's model in fp32 and int8, or a diffusers model with no saver
    and with each saver alone (cpu_offload only where CUDA is)."""
    if steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    folder = resolve_model(model)
    base = {"model": str(folder), "device": device, "steps": steps}
    configs: list[tuple[str, dict]] = [("imports only", {"generate": False})]
    if (folder / "model.json").is_file():
        configs += [("fp32", {"int8": False}), ("int8", {"int8": True})]
    else:
        configs.append(("no saver", {}))
        configs += [(name, {"savers": [name]}) for name in SAVERS]
    rows = []
    for name, config in configs:
        if config.get("savers") == ["cpu_offload"] and not torch.cuda.is_available():
            rows.append({"config": name, "skipped": "cpu offload needs a CUDA device"})
            continue
        rows.append({"config": name, **_measure_in_subprocess({**base, **config})})
    names = [row["model"] for row in rows if "model" in row]
    return {"model": names[0] if names else folder.name, "device": device, "steps": steps, "memory": rows}


# ---------------------------------------------------------------------- cold start

# What `kinema generate` does, as (phase, module, attribute) timed in the child process:
# a phase's seconds are the sum of its calls. Nested phases (text encoder inside load,
# sampling inside render, ...) leave the rest of their parent as "<parent>: other".
COLD_PHASES = (
    ("check request", "kinema.studio.produce", "prepare"),
    ("load", "kinema.pipelines.loading", "load"),
    ("load: text encoder", "kinema.pipelines.loading", "_text_encoder"),
    ("load: weights read", "kinema.pipelines.loading", "load_weights"),
    ("load: models built", "kinema.pipelines.loading", "build_with_weights"),
    ("load: weights hash", "kinema.pipelines.loading", "model_hash"),
    ("render", "kinema.studio.produce", "render"),
    ("render: prompt encoding", "kinema.models.text", "MiniLMTextEncoder.encode"),
    ("render: sampling", "kinema.pipelines.t2v", "TextToVideo._sample"),
    ("render: decoding", "kinema.models.vae", "VideoVAE.decode"),
    ("publish", "kinema.publish", "publish_rendered"),
    ("publish: audit check", "kinema.governance.review", "check_gate"),
    ("publish: keys", "kinema.publish", "ensure_keys"),
    ("publish: watermark", "kinema.publish", "mark"),
    ("publish: writing", "kinema.publish", "write_video"),
    ("publish: signing", "kinema.publish", "sign_file"),
    ("publish: review", "kinema.governance.review", "register"),
)
# prompts no run has encoded before it (runs cycle through them)
COLD_PROMPTS = (
    "a red circle moving right on a black background",
    "a blue square moving left on a white background",
    "a green triangle moving up on a gray background",
    "a yellow star moving down on a black background",
    "a purple circle growing on a white background",
    "an orange square shrinking on a gray background",
)
# The child: stdlib only before it imports kinema, so "imports" is what the command imports.
_COLD_CHILD = """
import time
start = time.perf_counter()
import importlib, json, sys
config = json.loads(sys.argv[1])
import kinema.cli
cli_imported = time.perf_counter()
totals, missing = {}, []
def timed(phase, function):
    def wrapper(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[phase] = totals.get(phase, 0.0) + time.perf_counter() - begun
    return wrapper
for phase, module, path in config["phases"]:
    try:
        owner = importlib.import_module(module)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, timed(phase, getattr(owner, name)))
    except (ImportError, AttributeError):
        missing.append(phase)
imported = time.perf_counter()
sys.argv = ["kinema", *config["argv"]]
try:
    kinema.cli.main()  # as the console script calls it: the process's own command line
except SystemExit as e:
    code = e.code
end = time.perf_counter()
print(json.dumps({"start": start, "cli_imported": cli_imported, "imported": imported, "end": end,
                  "phases": totals, "missing": missing, "code": code}))
"""


def _cold_run(argv: list[str], env: dict, instrumented: bool) -> dict:
    """One fresh process of `kinema ARGV`: its wall-clock seconds and, instrumented, its
    marks and phase totals (perf_counter is CLOCK_MONOTONIC, one clock for both processes)."""
    if instrumented:
        command = [sys.executable, "-c", _COLD_CHILD, json.dumps({"phases": COLD_PHASES, "argv": argv})]
    else:
        command = [sys.executable, "-m", "kinema.cli", *argv]
    spawned = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    ended = time.perf_counter()
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(f"`kinema {' '.join(argv)}` failed: {lines[-1] if lines else proc.returncode}")
    run = {"wall": ended - spawned}
    if instrumented:
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        run.update(child, spawned=spawned, ended=ended)
    return run


def _cold_phases(run: dict) -> dict[str, float]:
    """A run's seconds per phase. The top-level phases (no ':') add up to its wall clock;
    "cli" is what the command line does around the library (parsing, progress, the
    closing line) and "exit" the interpreter's shutdown."""
    p = run["phases"]
    seconds = {
        "interpreter": run["start"] - run["spawned"],
        "imports": run["imported"] - run["start"],
        "imports: cli": run["cli_imported"] - run["start"],
        "imports: library": run["imported"] - run["cli_imported"],
    }
    parents = [name for name, _, _ in COLD_PHASES if ":" not in name]
    for parent in parents:
        seconds[parent] = p.get(parent, 0.0)
        parts = {name: v for name, v in p.items() if name.startswith(parent + ":")}
        seconds.update(parts)
        if parts:
            seconds[f"{parent}: other"] = seconds[parent] - sum(parts.values())
    seconds["cli"] = run["end"] - run["imported"] - sum(p.get(name, 0.0) for name in parents)
    seconds["exit"] = run["ended"] - run["end"]
    seconds["total"] = run["wall"]
    return seconds


def cold_start(
    model: str | None = None,
    runs: int = 3,
    steps: int | None = None,
    extra: tuple[str, ...] = (),
    src: str | os.PathLike | None = None,
) -> dict:
    """`kinema generate PROMPT -o out.mp4` from the shell, cold: a new process each run, a
    prompt that run has not encoded, the files in the page cache (one run first warms it
    and creates the signing keys in a temporary KINEMA_HOME). Median seconds per phase
    over RUNS instrumented runs (interpreter start, imports, request check, loading:
    weights, models, hash, text encoder; rendering: prompt encoding, sampling, decoding;
    publishing: watermark, writing, signing, review; exit: one run's top-level phases add
    up to its total, the medians of several need not), and the median wall clock of RUNS
    plain runs of the same command beside them. STEPS and EXTRA (more generate
    options) change the command; SRC runs another source tree's kinema (a folder holding
    the kinema package), to compare before and after on the same machine."""
    if runs < 1:
        raise InputError(f"--runs must be at least 1, got {runs}")
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([os.fspath(src), env.get("PYTHONPATH", "")])
    options = [*(["--model", model] if model else []), *(["--steps", str(steps)] if steps else []), *extra]
    with tempfile.TemporaryDirectory() as tmp:
        env["KINEMA_HOME"] = str(Path(tmp) / "home")

        def argv(i: int) -> list[str]:
            prompt = COLD_PROMPTS[i % len(COLD_PROMPTS)]
            return ["generate", prompt, "-o", str(Path(tmp) / f"clip{i}.mp4"), "--seed", str(i), *options]

        _cold_run(argv(0), env, instrumented=False)  # page cache, keys
        instrumented = [_cold_run(argv(1 + i), env, True) for i in range(runs)]
        plain = [_cold_run(argv(1 + runs + i), env, False)["wall"] for i in range(runs)]
    measured = [_cold_phases(run) for run in instrumented]
    phases = {name: round(statistics.median(run[name] for run in measured), 3) for name in measured[0]}
    return {
        "command": "kinema generate PROMPT -o OUT.mp4 " + " ".join(options),
        "runs": runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "seconds": phases,
        "total_plain_seconds": round(statistics.median(plain), 3),
        # phases whose function this source tree does not have (another tree's): not timed
        "not_found": instrumented[0]["missing"],
    }


WATERMARK_CLIPS = 50  # model clips per background and size when --clips is not given


def run(
    model: str | None = None,
    *,
    peak_memory: bool = False,
    device: str = "cpu",
    long_clips: bool = False,
    web: bool = False,
    watermark: bool = False,
    clips: int | None = None,
    cold: bool = False,
    curve: str | os.PathLike | None = None,
    prompts: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """`kinema bench` with its flags, as a JSON-ready dict: the speed bench (`bench`) by
    default, peak memory per configuration on DEVICE (--memory: `memory`), long clips
    (--lengths: `lengths`), a real server's API latency (--web), watermark visibility and
    robustness over CLIPS built-in model clips per background and size, cached in
    KINEMA_HOME/cache/watermark-bench (`ModelClips`), and false positives over world
    renders (--watermark, default WATERMARK_CLIPS; PROGRESS follows it clip by clip) or
    the cold start of `kinema generate` (--cold: `cold_start`), or the world checker's
    pass rate against sampler steps with the seconds a clip took, drawn as a PNG at CURVE
    (--curve, PROMPTS a set, default 20: kinema.train.quality_curve; PROGRESS follows it
    clip by clip). Refuses (InputError) combinations that mean nothing: --watermark takes
    only --clips, --clips goes only with --watermark, --curve takes only --model and
    --prompts (and --prompts only goes with it), --device only with --memory, --web and
    --lengths take neither --memory nor --device, and --cold takes only --model."""
    if curve is not None:
        if watermark or peak_memory or long_clips or web or cold or clips is not None or device != "cpu":
            raise InputError("bench --curve takes only --model and --prompts")
        return _quality_curve(model, curve, 20 if prompts is None else prompts, progress)
    if prompts is not None:
        raise InputError("--prompts applies to bench --curve")
    if watermark:
        if peak_memory or long_clips or web or model is not None or device != "cpu":
            raise InputError("bench --watermark takes only --clips (no model, --memory or --device)")
        clips = WATERMARK_CLIPS if clips is None else clips
        if clips < 1:
            raise InputError(f"--clips must be at least 1, got {clips}")
        from kinema.provenance import watermark_bench

        return watermark_bench.run(ModelClips(), world_clip, clips, progress=progress)
    if clips is not None:
        raise InputError("--clips applies to bench --watermark")
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device must be cpu or cuda, got {device}")
    if device != "cpu" and not peak_memory:
        raise InputError("--device applies to bench --memory; the speed bench runs on the CPU")
    if web:
        if peak_memory or long_clips or cold or device != "cpu":
            raise InputError("bench --web takes only --model (no --memory, --lengths, --cold or --device)")
        from kinema.web.loadbench import run_loadbench

        return run_loadbench(model=model)
    if cold:
        if peak_memory or long_clips or device != "cpu":
            raise InputError("bench --cold takes only --model (no --memory, --lengths, --web or --device)")
        from kinema.pipelines.facts import ModelFacts

        result = cold_start(model)
        if "fast" in ModelFacts.read(model).adapters:  # and the same with the few-step adapter
            result["fast"] = cold_start(model, extra=("--fast",))
        return result
    if long_clips and (peak_memory or device != "cpu"):
        raise InputError("bench --lengths runs on the CPU alone (no --memory or --device)")
    if long_clips:
        return lengths(model)
    if peak_memory:
        return memory(model, device)
    return bench(model)


def _quality_curve(model: str | None, path: str | os.PathLike, prompts: int, progress) -> dict:
    """`kinema bench --curve PATH`: the checks first (nothing is loaded for a bad path)."""
    from kinema.io import check_output_path
    from kinema.train.quality_curve import draw_curve, quality_curve

    if prompts < 1:
        raise InputError(f"--prompts must be at least 1, got {prompts}")
    if Path(path).suffix.lower() != ".png":
        raise InputError(f"--curve draws a PNG: the path must end in .png, got '{path}'")
    check_output_path(path)
    from kinema.pipelines.facts import ModelFacts
    from kinema.render import fast_adapter

    facts = ModelFacts.read(model)
    fast = fast_adapter(facts) if "fast" in facts.adapters else None  # its line joins the curve
    pipe = load(model)
    result = quality_curve(pipe, prompts, progress=progress, fast=fast)
    draw_curve(result, path, f"{pipe.name}: world checker pass rate against steps ({prompts} a set)")
    return {"curve": {"model": pipe.name, "model_hash": pipe.model_hash, "png": str(path), **result}}


WATERMARK_SEED = 10**6  # generation seeds of the bench's model clips start here, far from training's


def watermark_prompt(index: int, background: str) -> str:
    """Shapes-world prompt number INDEX on BACKGROUND: a scene drawn from the index (one or
    two objects, any motion), its background set to the one asked for."""
    import dataclasses

    import numpy as np

    from kinema.world.dataset import sample_scene
    from kinema.world.grammar import format_prompt

    scene = sample_scene(np.random.default_rng([0x3A7E, index]))
    return format_prompt(dataclasses.replace(scene, background=background))


class ModelClips:
    """The watermark bench's clips: the built-in model's own output (unmarked pixels), one
    per (index, background, size), generated once and cached as .npy under FOLDER
    (default KINEMA_HOME/cache/watermark-bench/<model hash>), so a rerun costs only the
    measurement. Clip INDEX is the prompt `watermark_prompt(index, background)` at seed
    WATERMARK_SEED + index, 16 frames at 8 fps, the model's default steps and guidance."""

    def __init__(self, folder: Path | None = None, model: str | None = None):
        self.model_name, self._model, self._folder = model, None, folder

    def _load(self):
        if self._model is None:
            from kinema.render.handle import Model

            # the pipeline's own pixels: attach returns the render unmarked
            self._model = Model.load(self.model_name, "cpu", lambda rendered: rendered.video)
        return self._model

    @property
    def folder(self) -> Path:
        if self._folder is None:
            from kinema.state import kinema_home

            digest = (self._load().model_hash or "unknown")[:16]
            self._folder = kinema_home() / "cache" / "watermark-bench" / digest
        return self._folder

    def __call__(self, index: int, background: str, size: int) -> Video:
        import numpy as np

        path = self.folder / f"{background}-{size}-{WATERMARK_SEED + index}.npy"
        if path.exists():
            return Video(np.load(path), 8.0)
        model = self._load()
        video = model(watermark_prompt(index, background), seed=WATERMARK_SEED + index, size=size, frames=16)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, video.frames)
        tmp.replace(path)
        return Video(video.frames, 8.0)


def world_clip(index: int, size: int) -> Video:
    """Shapes-world clip number INDEX for the watermark bench: a scene and layout drawn from
    the index, 16 frames (2 s at 8 fps) of SIZE×SIZE."""
    import numpy as np

    from kinema.world import render_frames
    from kinema.world.dataset import sample_scene

    scene = sample_scene(np.random.default_rng([0x3A7E, index]))
    return Video(render_frames(scene, seed=index, frames=16, size=size), 8.0)
