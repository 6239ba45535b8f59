import os

import numpy as np
import pytest

import kinema.publish as publish_module
from kinema.governance import review
from kinema.io import Video, read_video
from kinema.provenance.verify import verify_file
from kinema.publish import Origin, publish, watermark_payload
from kinema.world import parse, render_frames

MODEL = Origin("kinema-test-model", model_hash="ab" * 32)
PROMPT = "a red circle moving right on a black background"


def _video():
    return Video(render_frames(parse(PROMPT), seed=2), 8)


@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm", "frames"])
def test_model_output_is_watermarked_signed_and_pending(tmp_path, name):
    settings = {"prompt": PROMPT, "seed": 2, "frames": 16}
    record = publish(_video(), tmp_path / name, settings, MODEL)
    report = verify_file(tmp_path / name)
    assert report["c2pa"]["state"] == "Trusted"
    assert report["c2pa"]["claims"]["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert (
        report["watermark"]["detected"] and report["watermark"]["payload"] == record["watermark"]["payload"]
    )
    assert review.get(record["id"]).status == "pending"
    assert np.abs(read_video(tmp_path / name).frames.astype(int) - _video().frames).mean() < 3


def test_payload_is_a_function_of_the_command():
    key = b"k" * 32
    settings = {"prompt": PROMPT, "seed": 2, "frames": 16}
    assert watermark_payload(key, MODEL, settings) == watermark_payload(key, MODEL, dict(settings))
    assert watermark_payload(key, MODEL, settings) != watermark_payload(key, MODEL, {**settings, "seed": 3})
    assert watermark_payload(key, MODEL, settings) != watermark_payload(b"j" * 32, MODEL, settings)


def test_hidden_prompt_stays_out_of_sidecar_and_manifest(tmp_path):
    publish(_video(), tmp_path / "c.mp4", {"prompt": PROMPT, "seed": 2}, MODEL, hide_prompt=True)
    assert PROMPT.encode() not in (tmp_path / "c.mp4").read_bytes()
    assert PROMPT not in (tmp_path / "c.mp4.json").read_text()
    assert "prompt_sha256" in (tmp_path / "c.mp4.json").read_text()


def test_a_failed_publish_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("signer unplugged")

    monkeypatch.setattr(publish_module, "sign_file", broken)
    with pytest.raises(RuntimeError):
        publish(_video(), tmp_path / "c.mp4", {"prompt": PROMPT, "seed": 2}, MODEL)
    assert os.listdir(tmp_path) == []
