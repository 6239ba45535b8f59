import dataclasses

import pytest

from kinema.train.export import assemble_model
from kinema.train.presets import get_preset
from kinema.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own KINEMA_HOME, never the user's."""
    monkeypatch.setenv("KINEMA_HOME", str(tmp_path_factory.mktemp("kinema-home")))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny model trained for a few steps and assembled as users get one."""
    root = tmp_path_factory.mktemp("tiny-model")
    Trainer(get_preset("vae-tiny"), root / "vae").run(progress=False)
    dit = dataclasses.replace(get_preset("dit-tiny"), vae=str(root / "vae"))
    Trainer(dit, root / "dit").run(progress=False)
    return assemble_model(
        root / "vae",
        root / "dit",
        root / "model",
        "tiny-test",
        defaults={"frames": 16, "size": 64, "steps": 3},
        card="# tiny test model\n",
        world=None,  # prompts as typed: the reading tests mark their own copy as shapes-world
    )
