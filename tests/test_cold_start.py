"""What a cold `kinema` process imports: the commands that need no model never pay for
torch, and the built-in model never imports transformers (the timings are `kinema bench`'s)."""

import json
import subprocess
import sys

HEAVY = ("torch", "numpy", "transformers", "av", "c2pa", "cv2")


def _imported_after(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_nothing_heavy():
    assert _imported_after("import kinema.cli") == []


def test_help_and_a_refused_request_import_no_torch():
    run = "from kinema.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert _imported_after(run.format(argv=["--help"])) == []
    # refused before the model loads: an output folder that does not exist
    refused = ["generate", "a red circle moving right on a black background", "-o", "/nonexistent/x.mp4"]
    assert "torch" not in _imported_after(run.format(argv=refused))


def test_loading_the_built_in_text_encoder_imports_no_transformers():
    imported = _imported_after("from kinema.models.text import MiniLMTextEncoder\nMiniLMTextEncoder()")
    assert "torch" in imported and "transformers" not in imported
