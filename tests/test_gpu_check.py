"""tools/gpu_check.py on this CPU (--device cpu: no offload, fp32 unless the CPU has bf16
instructions): a few pairs run end to end and print one passing JSON line each, and its
list of pairs is exactly what the backends serve."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from kinema.pipelines.backends import detect
from tests.pipelines.backends import tiny_models

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gpu_check.py"
SUBSET = ["ltx/t2v", "ltx/extend", "ltx/lora", "cogvideox-i2v/i2v", "cogvideox-fun-control/control"]


def _tool():
    if "gpu_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_check", TOOL)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_check"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["gpu_check"]


def test_a_subset_runs_on_the_cpu_one_json_line_a_pair(tmp_path):
    done = subprocess.run(
        [sys.executable, TOOL, "--device", "cpu", "--steps", "2", "--workdir", tmp_path, "--only", *SUBSET],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["pair"] for r in records] == SUBSET
    for record in records:
        assert record["ok"] and record["device"] == "cpu" and not record["offload"], record
        assert record["seconds"] > 0 and record["peak_mb"] > 0 and all(record["checks"].values()), record
    assert records[1]["checks"]["exact"] and records[1]["shape"] == [13, 64, 64]
    assert records[2]["checks"]["changes"] and records[2]["checks"]["restored"]
    assert f"{len(SUBSET)} of {len(SUBSET)} pairs passed" in done.stderr


def test_the_pairs_are_what_each_folder_serves(tmp_path):
    gpu_check = _tool()
    listed = subprocess.run([sys.executable, TOOL, "--list"], capture_output=True, text=True, check=True)
    assert listed.stdout.split() == gpu_check.all_pairs()
    assert set(gpu_check.PAIRS) == set(tiny_models.MODELS)
    # what a folder serves that its own pairs leave out: the other LTX and CogVideoX T2V
    # classes share ltx's and cogvideox's pipelines, and Fun control's t2v is its control pair
    covered_elsewhere = {
        "ltx-condition": {"i2v", "loop", "extend", "remix", "lora"},
        "cogvideox-v2v": {"t2v", "lora"},
        "cogvideox-fun-control": {"t2v"},
    }
    for name, pairs in gpu_check.PAIRS.items():
        folder = tiny_models.build(name, tmp_path / name)
        class_name, family = detect(folder)
        served = family.modes(class_name) | family.steering(class_name)
        wanted = {p.removesuffix("-backward") for p in pairs}
        assert wanted <= served, (name, wanted - served)
        assert served - wanted == covered_elsewhere.get(name, set()), (name, served - wanted)


def test_an_unknown_pair_is_refused():
    unknown = subprocess.run([sys.executable, TOOL, "--only", "wan/zoom"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown pair 'wan/zoom'" in unknown.stderr
