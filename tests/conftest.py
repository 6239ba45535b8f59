import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own KINEMA_HOME, never the user's."""
    monkeypatch.setenv("KINEMA_HOME", str(tmp_path_factory.mktemp("kinema-home")))
