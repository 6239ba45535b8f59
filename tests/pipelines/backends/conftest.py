import pytest

from tests.pipelines.backends import tiny


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory):
    """One tiny diffusers folder of each kind the backends serve."""
    root = tmp_path_factory.mktemp("diffusers-models")
    return {
        "wan": tiny.wan(root / "wan"),
        "wan-i2v": tiny.wan(root / "wan-i2v", image_to_video=True),
        "ltx": tiny.ltx(root / "ltx"),
        "cogvideox": tiny.cogvideox(root / "cogvideox"),
        "cogvideox-i2v": tiny.cogvideox(root / "cogvideox-i2v", image_to_video=True),
    }
