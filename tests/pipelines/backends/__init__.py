"""The diffusers backends' tests. tools/ is not a package, so its tiny-model builder is
loaded here by path once, for every test that needs a tiny folder."""

import importlib.util
import sys
from pathlib import Path

_TOOL = Path(__file__).resolve().parents[3] / "tools" / "tiny_models.py"


def _load_tiny_models():
    if "tiny_models" not in sys.modules:
        spec = importlib.util.spec_from_file_location("tiny_models", _TOOL)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["tiny_models"] = module
    return sys.modules["tiny_models"]


tiny_models = _load_tiny_models()
