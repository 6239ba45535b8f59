import json

import pytest

from kinema.errors import InputError
from kinema.train.triage_corpus import MIN_PROMPTS, retrain_command, retrain_triage


@pytest.mark.parametrize(
    "name, prompts, message",
    [("w.txt", 150, ".json"), ("missing/w.json", 150, "does not exist"), ("w.json", 4, "at least 5")],
)
def test_refuses_before_loading_a_model(tmp_path, name, prompts, message):
    with pytest.raises(InputError, match=message):
        retrain_triage(tmp_path / name, prompts=prompts, model=str(tmp_path / "no-model"))
    assert not (tmp_path / "w.json").exists()


def test_retrains_from_the_models_clips_and_the_renderers(tiny_model, tmp_path):
    out, cache = tmp_path / "triage.json", tmp_path / "cache"
    seen = []
    report = retrain_triage(
        out,
        prompts=MIN_PROMPTS,
        seed=2,
        cache=cache,
        model=str(tiny_model),
        progress=lambda *a: seen.append(a),
    )
    assert seen[-1] == (MIN_PROMPTS, MIN_PROMPTS) and report["path"] == str(out)
    assert report["command"] == retrain_command(out, MIN_PROMPTS, 2, str(tiny_model))
    assert report["command"].endswith(f"--clips {MIN_PROMPTS} --seed 2 --model {tiny_model}")
    assert report["trained_on"]["prompts"] == MIN_PROMPTS and "tiny-test" in report["trained_on"]["generated"]
    assert json.loads(out.read_text())["command"] == report["command"]
    assert len(list(cache.glob("*-s2-*.npz"))) == MIN_PROMPTS  # the generated clips, kept for a rerun
