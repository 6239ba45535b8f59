import dataclasses
import json
import shutil

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


@pytest.fixture(scope="session")
def controlled_model(tiny_model, tmp_path_factory):
    """The tiny model as a shapes-world model, with a control branch trained for 3 steps and
    a reference branch for 2."""
    from kinema.train.control import ControlSettings, export_branch, train_control
    from kinema.train.reference import ReferenceSettings, export_reference, train_reference

    root = tmp_path_factory.mktemp("controlled")
    folder = root / "model"
    shutil.copytree(tiny_model, folder)
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "world": "shapes-v1"}))
    settings = ControlSettings(depth=1, steps=3, batch=2, clips=8, checkpoint_every=2)
    train_control(str(folder), root / "run", settings, resume=False, command="test", say=lambda s: None)
    export_branch(root / "run", folder, say=lambda s: None)
    quick = ReferenceSettings(steps=2, batch=2, clips=8, frames=9, checkpoint_every=2)
    train_reference(
        str(folder), root / "reference-run", quick, resume=False, command="test", say=lambda s: None
    )
    export_reference(root / "reference-run", folder, say=lambda s: None)
    return folder
