import pytest

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
