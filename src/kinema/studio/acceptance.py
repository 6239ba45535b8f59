"""The studio's acceptance numbers (issue 10), measured on a model; rerun with

    python -m kinema.studio.acceptance [--model NAME_OR_DIR] [--per-set 8] [--candidates 4]

Two measurements, printed as one JSON object:

- continue boards: 4-shot boards of one object going round the frame (right, down,
  left, up), each shot continuing from the last; every seam is judged by the extension
  seam rule (storyboard.seam_check) and every frame of the finished clip by whether the
  object keeps its identity (identity_fraction).
- best-of-N: the world-checker pass rate of single samples against best-of-N on the
  prompt sets `kinema eval` uses (seen pairs, held-out pairs, two objects). The single
  sample is candidate 0, the clip `kinema eval` makes for the prompt; the mean over all
  candidates is reported too. The same takes then run as auto-retake (1 candidate, N-1
  retakes), which makes only as many as it needs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from kinema.render import ClipRequest
from kinema.studio.bestof import best_of
from kinema.studio.storyboard import load_board, run_board
from kinema.world import parse
from kinema.world.checker import border_colour, find_regions
from kinema.world.scene import WorldObject

ROUND_TRIP = ("moving right", "moving down", "moving left", "moving up")
BOARD_SUBJECTS = (
    ("red circle", "black"),
    ("blue square", "white"),
    ("yellow triangle", "gray"),
    ("green circle", "black"),
)
IDENTITY_MIN = 0.95


def identity_fraction(frames: np.ndarray, obj: WorldObject) -> float:
    """Share of frames in which the object is there as itself: a region of its colour
    (the largest one) whose shape, where it is wide enough to judge, is its shape."""
    kept = 0
    for frame in frames:
        regions = [r for r in find_regions(frame, border_colour(frame)) if r.colour == obj.colour]
        if regions and (not regions[0].measurable or regions[0].shape == obj.shape):
            kept += 1
    return kept / max(len(frames), 1)


def continue_board(
    pipe, folder: Path, subject: str, background: str, candidates: int = 1, steps=None
) -> dict:
    """Write and run a 4-shot continue board of `subject` on `background` in `folder`;
    returns its seams, identity fraction and per-shot world verdicts."""
    shots = [
        {
            "prompt": f"a {subject} {motion} on a {background} background",
            "seed": 11 + k,
            **({"transition": "continue"} if k else {}),  # each shot continues the one before
        }
        for k, motion in enumerate(ROUND_TRIP)
    ]
    board = folder / "board.yaml"
    board.write_text(yaml.safe_dump({"candidates": candidates, "shots": shots}, sort_keys=False))
    run = run_board(pipe, load_board(board), folder, 8.0, ClipRequest("", steps=steps))
    obj = parse(shots[0]["prompt"]).objects[0]
    identity = identity_fraction(run.video.frames, obj)
    seams = [s for s in run.seams if s["ok"] is not None]
    return {
        "subject": f"{subject} on {background}",
        "frames": run.video.num_frames,
        "seam_ratios": [s["ratio"] for s in seams],
        "seams_ok": sum(s["ok"] for s in seams),
        "seams": len(seams),
        "identity_fraction": round(identity, 3),
        "identity_ok": identity >= IDENTITY_MIN,
        "shots_world_pass": [r.choice.best.qa["world_pass"] for r in run.shots],
    }


def continue_boards(pipe, candidates: int = 1, boards: int = len(BOARD_SUBJECTS), steps=None) -> dict:
    """continue_board for the first `boards` subjects, with totals."""
    results = []
    for subject, background in BOARD_SUBJECTS[:boards]:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(continue_board(pipe, Path(tmp), subject, background, candidates, steps))
    return {
        "candidates": candidates,
        "boards": results,
        "seams_ok": sum(r["seams_ok"] for r in results),
        "seams": sum(r["seams"] for r in results),
        "boards_identity_ok": sum(r["identity_ok"] for r in results),
        "identity_fraction_min": min(r["identity_fraction"] for r in results),
        "seam_ratio_max": max(max(r["seam_ratios"]) for r in results),
    }


def best_of_rates(pipe, per_set: int = 8, candidates: int = 4, steps=None, progress=None) -> dict:
    """World-checker pass rates of single samples and of best-of-`candidates` (and of
    auto-retake with the same budget) on `kinema eval`'s prompt sets, `per_set` each."""
    from kinema.train.evaluate import prompt_sets

    sets = prompt_sets(per_set)
    out: dict = {"candidates": candidates, "per_set": per_set, "sets": {}}
    totals = {"prompts": 0, "single": 0, "any_sample": 0.0, "best": 0, "retake": 0, "retake_takes": 0}
    for name, prompts in sets.items():
        tally = dict.fromkeys(totals, 0)
        for prompt, seed in prompts:
            made: dict[int, object] = {}

            def make(s: int, prompt: str = prompt, made: dict = made):
                if s not in made:
                    made[s] = pipe(prompt, seed=s, frames=16, steps=steps)
                return made[s], False

            seed = seed % 2**31
            choice = best_of(make, prompt, seed, candidates=candidates)
            retake = best_of(
                make, prompt, seed, candidates=1, retakes=candidates - 1
            )  # same takes, no new work
            worlds = [t.qa["world_pass"] for t in choice.takes]
            tally["prompts"] += 1
            tally["single"] += bool(worlds[0])
            tally["any_sample"] += sum(map(bool, worlds)) / len(worlds)
            tally["best"] += bool(choice.best.qa["world_pass"])
            tally["retake"] += bool(retake.best.qa["world_pass"])
            tally["retake_takes"] += len(retake.takes)
            if progress:
                progress(name, prompt, worlds, choice.best.seed)
        out["sets"][name] = _rates(tally)
        for k in totals:
            totals[k] += tally[k]
    out["all"] = _rates(totals)
    return out


def _rates(t: dict) -> dict:
    n = max(t["prompts"], 1)
    return {
        "prompts": t["prompts"],
        "single_sample_pass_rate": round(t["single"] / n, 3),
        "mean_sample_pass_rate": round(t["any_sample"] / n, 3),
        "best_of_n_pass_rate": round(t["best"] / n, 3),
        "auto_retake_pass_rate": round(t["retake"] / n, 3),
        "auto_retake_mean_takes": round(t["retake_takes"] / n, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kinema.studio.acceptance", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default=None, help="model name or folder (default: the built-in model)")
    parser.add_argument("--per-set", type=int, default=8, help="prompts per eval set for best-of-N (3 sets)")
    parser.add_argument("--candidates", type=int, default=4, help="N of best-of-N")
    parser.add_argument("--boards", type=int, default=len(BOARD_SUBJECTS), help="continue boards to run")
    parser.add_argument("--board-candidates", type=int, default=1, help="candidates per shot on the boards")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    parser.add_argument("--skip", choices=("boards", "best-of"), default=None)
    args = parser.parse_args(argv)

    from kinema.pipelines.loading import load

    pipe = load(args.model)
    result: dict = {"model": pipe.name, "model_hash": pipe.model_hash, "steps": args.steps}
    start = time.monotonic()
    if args.skip != "boards":
        result["continue_boards"] = continue_boards(pipe, args.board_candidates, args.boards, args.steps)
    if args.skip != "best-of":

        def say(name, prompt, worlds, kept):
            marks = "".join("P" if w else "." for w in worlds)
            print(f"[{name}] {marks} kept seed {kept}: {prompt}", file=sys.stderr, flush=True)

        result["best_of"] = best_of_rates(pipe, args.per_set, args.candidates, args.steps, say)
    result["seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
