"""DESIGN.md's layers, held by import-linter's contracts in pyproject.toml: the tree as it
is keeps them, and a wrong-way import added to a copy of it breaks them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kinema

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(kinema.__file__).resolve().parent  # the tree these tests import


def lint_imports(config_dir: Path, source_dir: Path) -> subprocess.CompletedProcess:
    """lint-imports with config_dir's pyproject.toml over the kinema package in source_dir."""
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    assert command, "lint-imports is not installed (pip install -e '.[dev]')"
    env = {**os.environ, "PYTHONPATH": str(source_dir)}
    return subprocess.run(
        [command, "--no-logo", "--no-cache"],
        cwd=config_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_its_layers():
    result = lint_imports(ROOT, PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_way_import_breaks_the_contracts(tmp_path):
    # a copy of the sources (Python files only) with two imports the contracts forbid:
    # pipelines drawing from the world renderer, and a model reaching up into a pipeline
    source = tmp_path / "src"
    shutil.copytree(
        PACKAGE, source / "kinema", ignore=shutil.ignore_patterns("__pycache__", "weights", "*.pyc")
    )
    for module, line in [
        ("pipelines/conditioning.py", "from kinema.world import parse"),
        ("models/vae.py", "from kinema.pipelines.t2v import TextToVideo"),
    ]:
        path = source / "kinema" / module
        path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = lint_imports(tmp_path, source)
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    assert "pipelines never import world (generation never draws from the renderer) BROKEN" in report
    assert "kinema.pipelines.conditioning -> kinema.world" in report
    assert "kinema.models is not allowed to import kinema.pipelines" in report
    assert "kinema.models.vae -> kinema.pipelines.t2v" in report
