"""The few-step adapter: the teacher's couples, reflow training and its resume, the file it
exports beside a model's DiT, and `--fast` through the request layer (its steps, no
guidance, mixed with a user's adapter, recorded in the sidecar and the manifest)."""

import json
import shutil

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.io import read_video
from kinema.pipelines.adapters import FORMAT, read_adapter
from kinema.pipelines.facts import ModelFacts
from kinema.pipelines.loading import load
from kinema.pipelines.lora import dit_sha256
from kinema.train.fast import FastSettings, export, fast_schedule, teacher_couples, train_fast, world_prompt

QUICK = FastSettings(couples=3, teacher_batch=2, fast_steps=2, steps=4, batch=2, rank=2, checkpoint_every=2)


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture(scope="module")
def fast_model(tiny_model, tmp_path_factory):
    """The tiny model with a few-step adapter trained for 4 steps on 3 couples."""
    root = tmp_path_factory.mktemp("fast")
    folder = root / "model"
    shutil.copytree(tiny_model, folder)
    run_folder = root / "run"
    run_folder.mkdir()
    data = teacher_couples(load(folder), QUICK, run_folder / "couples.pt", say=lambda s: None)
    train_fast(load(folder), data, QUICK, run_folder, False, "test", say=lambda s: None)
    export(run_folder, folder, say=lambda s: None)
    return folder, run_folder, data


def test_couples_are_the_teachers_own_noise_and_clips_and_resume(fast_model, tmp_path):
    folder, _, data = fast_model
    assert len(data["prompts"]) == 3 and data["prompts"][0] == world_prompt(QUICK.seed, 0)
    noise, clean = torch.cat(data["noise"]), torch.cat(data["clean"])
    assert noise.shape == clean.shape == (3, *noise.shape[1:]) and not torch.equal(noise, clean)
    # a run killed after its first batch makes the rest, and the same couples
    pipe = load(folder)
    first = teacher_couples(pipe, FastSettings(**{**QUICK.__dict__, "couples": 2}), tmp_path / "c.pt")
    assert len(first["prompts"]) == 2
    again = teacher_couples(pipe, QUICK, tmp_path / "c.pt", say=lambda s: None)
    assert torch.equal(torch.cat(again["clean"]), clean)


def test_a_killed_run_resumes_onto_the_same_adapter(fast_model, tmp_path):
    folder, run_folder, data = fast_model
    train_fast(load(folder), data, QUICK, tmp_path, False, "test", say=lambda s: None, until=2)
    train_fast(load(folder), data, QUICK, tmp_path, True, "test", say=lambda s: None)
    whole, halves = torch.load(run_folder / "state.pt"), torch.load(tmp_path / "state.pt")
    assert whole["step"] == halves["step"] == 4
    for key, value in whole["lora"].items():
        assert torch.equal(value, halves["lora"][key]), key


def test_the_adapter_is_a_lora_bound_to_the_dit_with_its_card(fast_model, tmp_path):
    folder, run_folder, _ = fast_model
    from kinema.train.fast import main

    shutil.copytree(folder, tmp_path / "again")
    (tmp_path / "again" / "fast" / "fast.safetensors").unlink()
    main(["--out", str(run_folder), "--export", str(tmp_path / "again")])  # the command line's export
    from safetensors.torch import load_file

    again, first = (load_file(str(f / "fast" / "fast.safetensors")) for f in (tmp_path / "again", folder))
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)
    adapter = read_adapter(str(folder / "fast" / "fast.safetensors"))
    assert adapter.metadata["format"] == FORMAT and adapter.metadata["base_dit_sha256"] == dit_sha256(folder)
    card = adapter.metadata["card"]
    assert card["fast_steps"] == 2 and card["step"] == 4 and card["command"] == "test"
    assert ModelFacts.read(folder).adapters == ("lora", "fast")
    assert len(fast_schedule(4, 2.0)) == 5


def test_fast_runs_the_adapters_steps_without_guidance_and_records_it(fast_model, tmp_path, capsys):
    folder, _, _ = fast_model
    common = ["--model", str(folder), "--seed", "3", "--frames", "5"]
    prompt = "a red circle moving right on a black background"
    code, _, err = run(capsys, "generate", prompt, "-o", str(tmp_path / "fast.mp4"), *common, "--fast")
    assert code == 0, err
    sidecar = json.loads((tmp_path / "fast.mp4.json").read_text())
    assert sidecar["steps"] == 2 and sidecar["guidance"] == 1.0
    assert [a["name"] for a in sidecar["adapters"]] == ["fast"]
    code, _, err = run(capsys, "generate", prompt, "-o", str(tmp_path / "full.mp4"), *common, "--steps", "2")
    assert code == 0, err
    assert not np.array_equal(
        read_video(tmp_path / "fast.mp4").frames, read_video(tmp_path / "full.mp4").frames
    )
    # --steps keeps its meaning under --fast
    code, _, err = run(
        capsys, "generate", prompt, "-o", str(tmp_path / "three.mp4"), *common, "--fast", "--steps", "3"
    )
    assert code == 0, err
    assert json.loads((tmp_path / "three.mp4.json").read_text())["steps"] == 3
    code, out, _ = run(capsys, "verify", str(tmp_path / "fast.mp4"))
    assert "fast.safetensors" in [i["title"] for i in json.loads(out)["c2pa"]["ingredients"]]
    # a user's adapter mixes with it: both recorded, another clip than either alone
    from tests.adapters import random_adapter

    mine = random_adapter(folder, tmp_path / "mine.safetensors")
    code, _, err = run(
        capsys, "generate", prompt, "-o", str(tmp_path / "both.mp4"), *common, "--fast", "--lora", str(mine)
    )
    assert code == 0, err
    both = json.loads((tmp_path / "both.mp4.json").read_text())
    assert [a["name"] for a in both["adapters"]] == ["mine", "fast"] and both["steps"] == 2
    assert not np.array_equal(
        read_video(tmp_path / "both.mp4").frames, read_video(tmp_path / "fast.mp4").frames
    )


def test_fast_is_refused_on_a_model_without_the_adapter_and_on_a_stale_one(
    fast_model, tiny_model, tmp_path, capsys
):
    folder, _, _ = fast_model
    prompt = "a red circle moving right on a black background"
    code, _, err = run(
        capsys, "generate", prompt, "-o", str(tmp_path / "x.mp4"), "--model", str(tiny_model), "--fast"
    )
    assert code == 2 and "has no few-step adapter" in err and not (tmp_path / "x.mp4").exists()
    code, _, err = run(
        capsys, "generate", prompt, "-o", str(tmp_path / "x.mp4"), "--model", str(folder), "--fast", "--int8"
    )
    assert code == 2 and "int8 and fast do not combine" in err and not (tmp_path / "x.mp4").exists()
    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    shutil.copytree(folder / "fast", other / "fast")
    # the same adapter beside a DiT whose weights changed
    from safetensors.torch import load_file, save_file

    weights = load_file(str(other / "dit" / "model.safetensors"))
    first = next(iter(weights))
    weights[first] = weights[first] + 1
    save_file(weights, str(other / "dit" / "model.safetensors"))
    code, _, err = run(
        capsys, "generate", prompt, "-o", str(tmp_path / "y.mp4"), "--model", str(other), "--fast"
    )
    assert code == 2 and "y.mp4" not in str(list(tmp_path.iterdir())), err


def test_the_web_offers_fast_where_the_model_has_it(fast_model, tiny_model, tmp_path):
    from fastapi.testclient import TestClient

    from kinema.web import create_app
    from kinema.web.tokens import TokenStore

    folder, _, _ = fast_model
    for model, has in ((folder, True), (tiny_model, False)):
        home = tmp_path / f"home-{has}"
        _, secret = TokenStore(home).create("alice")
        auth = {"Authorization": f"Bearer {secret}"}
        with TestClient(create_app(home, model=model, workers=0)) as client:
            assert client.get("/api/me", headers=auth).json()["model"]["fast"] is has
            job = client.post(
                "/api/jobs", headers=auth, json={"prompt": "a red circle", "frames": 5, "fast": True}
            )
            if has:
                assert job.status_code == 201 and job.json()["params"]["fast"] is True, job.text
            else:
                assert job.status_code == 400 and "has no few-step adapter" in job.json()["detail"], job.text


def test_eval_fast_runs_the_sets_with_the_adapter_at_its_steps(fast_model, tiny_model, capsys):
    folder, _, _ = fast_model
    code, out, err = run(capsys, "eval", "--model", str(folder), "--prompts", "1", "--fast")
    assert code == 0, err
    results = json.loads(out)
    assert results["steps"] == 2 and results["guidance"] == 1.0
    assert [a["name"] for a in results["adapters"]] == ["fast"]
    assert set(results["sets"]) == {"seen_single", "held_out", "two_object"}
    code, _, err = run(capsys, "eval", "--model", str(tiny_model), "--prompts", "1", "--fast")
    assert code == 2 and "has no few-step adapter" in err
    code, _, err = run(capsys, "eval", "--model", str(folder), "--fast", "--modes")
    assert code == 2 and "--fast evaluates the text-to-video sets" in err


def test_the_quality_curve_draws_the_few_step_line_beside_the_full_model(fast_model, tmp_path, capsys):
    folder, _, _ = fast_model
    png = tmp_path / "curve.png"
    code, out, err = run(capsys, "bench", "--curve", str(png), "--model", str(folder), "--prompts", "1")
    assert code == 0, err
    curve = json.loads(out)["curve"]
    assert [p["steps"] for p in curve["fast_points"]] == [1, 2, 4, 8]
    assert [p["steps"] for p in curve["points"]] == [1, 2, 4, 8, 16, 24]
    assert png.stat().st_size > 0


def test_the_bench_times_a_fast_clip_where_the_model_has_the_adapter(fast_model, tiny_model):
    from kinema.bench import _fast_clip

    folder, _, _ = fast_model
    timed = _fast_clip(str(folder), load(folder), "a red circle moving right", repeats=2)
    assert timed["steps"] == 2 and timed["guidance"] == 1.0 and timed["repeats"] == 2
    assert timed["seconds_per_clip_in_process"] > 0 and timed["publish_seconds"] > 0
    assert _fast_clip(str(tiny_model), load(tiny_model), "a red circle") is None


def test_an_adapter_is_checked_against_the_dits_shapes_read_from_its_file_header(tiny_model):
    from kinema.pipelines.lora import dit_shapes, linear_shapes

    assert dit_shapes(tiny_model) == linear_shapes(load(tiny_model).dit)


def test_fast_composes_with_the_built_in_models_control_branch(capsys, tmp_path):
    """The built-in model ships both the few-step adapter and the control branch: --fast
    with --path runs the adapter's steps while the branch steers, and records both."""
    path = tmp_path / "path.json"
    path.write_text(json.dumps({"points": [[0, 0.2, 0.3], [15, 0.8, 0.6]]}))
    common = ["generate", "a red circle on a black background", "--seed", "3", "--fast"]
    code, _, err = run(capsys, *common, "-o", str(tmp_path / "fast.mp4"))
    assert code == 0, err
    code, _, err = run(capsys, *common, "--path", str(path), "-o", str(tmp_path / "steered.mp4"))
    assert code == 0, err
    sidecar = json.loads((tmp_path / "steered.mp4.json").read_text())
    assert [a["name"] for a in sidecar["adapters"]] == ["fast"] and sidecar["guidance"] == 1.0
    assert sidecar["steps"] == json.loads((tmp_path / "fast.mp4.json").read_text())["steps"]
    assert sidecar["path_sha256"] and len(sidecar["control_branch_sha256"]) == 64
    assert not np.array_equal(
        read_video(tmp_path / "steered.mp4").frames, read_video(tmp_path / "fast.mp4").frames
    )
