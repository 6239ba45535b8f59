import numpy as np
import pytest

from kinema.io import Video, write_video
from tests.pipelines.backends import tiny_models

# the folder names the tests use (a folder's name is its model's name) → the tool's names
FOLDERS = {
    "wan": "wan-t2v",
    "wan-i2v": "wan-i2v",
    "wan-vace": "wan-vace",
    "ltx": "ltx",
    "ltx-condition": "ltx-condition",
    "cogvideox": "cogvideox",
    "cogvideox-i2v": "cogvideox-i2v",
    "cogvideox-v2v": "cogvideox-v2v",
    "cogvideox-fun-control": "cogvideox-fun-control",
}


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory):
    """One tiny diffusers folder of each kind the backends serve, built on first use."""
    root = tmp_path_factory.mktemp("diffusers-models")

    class Folders(dict):
        def __missing__(self, key):
            self[key] = tiny_models.build(FOLDERS[key], root / key)
            return self[key]

    return Folders()


@pytest.fixture(scope="session")
def tiny_loras(tmp_path_factory, tiny_folders):
    """A diffusers-format LoRA file for each tiny folder's transformer, made on first use."""
    root = tmp_path_factory.mktemp("diffusers-loras")

    class Loras(dict):
        def __missing__(self, key):
            self[key] = tiny_models.lora(tiny_folders[key], root / f"{key}.safetensors")
            return self[key]

    return Loras()


@pytest.fixture(scope="session")
def control_clip(tmp_path_factory):
    """A 12-frame 64x64 control clip (a bright bar sweeping down) as mp4."""
    frames = np.zeros((12, 64, 64, 3), np.uint8)
    for t in range(12):
        frames[t, 4 * t : 4 * t + 12] = 255
    return write_video(Video(frames, 8.0), tmp_path_factory.mktemp("control") / "control.mp4")
