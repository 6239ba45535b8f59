"""The authenticity report: verify's evidence plus triage, review and a weighed verdict, on
real files (model output published, stripped, exported; a world render; plain pixels) and
on the rule table itself."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import kinema
from kinema.authenticity import report, verdict
from kinema.governance import review
from kinema.governance.review_store import REVIEW_DB
from kinema.io import Audio, Video, read_video, write_video
from kinema.io.wav import write_wav
from kinema.provenance.keys import ensure_keys
from kinema.provenance.triage import CAVEAT, MAX_FRAMES
from kinema.provenance.verify import VerifyError, verify_file
from kinema.publish import WORLD_RENDERER, publish, publish_rendered
from kinema.render import check, render
from kinema.state import kinema_home
from kinema.world import parse, render_frames

PROMPT = "a red circle moving right on a black background"
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ALGORITHMIC = "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The built-in model's clip (8 steps, seed 0) as render makes it, before any mark:
    each test publishes it under its own KINEMA_HOME, as the command line would."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KINEMA_HOME", str(tmp_path_factory.mktemp("model-home")))
        model = kinema.load()
        return render(model.pipeline, check(model.request(PROMPT, seed=0, steps=8), model.facts))


def world_clip(frames: int = 16, size: int = 64) -> Video:
    return Video(render_frames(parse(PROMPT), seed=0, frames=frames, size=size), fps=8)


def test_report_keeps_every_verify_key_and_adds_three(tmp_path):
    path = write_video(world_clip(), tmp_path / "plain.mp4")
    full, plain = report(path), verify_file(path)
    assert set(full) == set(plain) | {"triage", "review", "verdict"}
    assert {k: full[k] for k in plain} == plain


def test_model_clip_published_then_exported(rendered, tmp_path):
    working = tmp_path / "take.mp4"
    record = publish_rendered(rendered, working)
    made = report(working)
    assert made["c2pa"]["state"] == "Trusted" and made["watermark"]["matches_manifest"] is True
    assert made["triage"]["checked"] and made["triage"]["caveat"] == CAVEAT
    assert made["review"]["decision"] == "pending"
    assert (
        made["review"]["database"]["id"] == record["id"] and made["review"]["database"]["match"] == "content"
    )
    line = made["verdict"]["line"]
    assert made["verdict"]["basis"] == "trusted manifest" and made["verdict"]["origin"] == "model"
    assert line.startswith("manifest Trusted (trainedAlgorithmicMedia, model output of")
    assert "watermark agrees" in line and f"review pending (item {record['id']})" in line
    assert made["verdict"]["disagreements"] == []

    review.approve(record["id"], note="fine", reviewer="token:ana")
    out = tmp_path / "published.mp4"
    review.export(record["id"], out)
    exported = report(out)
    assert exported["c2pa"]["state"] == "Trusted"
    assert exported["review"]["manifest"]["decision"] == "approved"
    assert exported["review"]["manifest"]["reviewer"] == "token:ana"
    assert exported["review"]["database"]["match"] == "export"
    assert exported["review"]["decision"] == "approved"
    assert f"review approved (exported copy of item {record['id']})" in exported["verdict"]["line"]
    assert exported["verdict"]["disagreements"] == []


def test_stripped_manifest_leaves_the_watermark_as_the_evidence(rendered, tmp_path):
    working = tmp_path / "take.mp4"
    publish_rendered(rendered, working)
    stripped = write_video(read_video(working), tmp_path / "copy.mp4")
    found = report(stripped)
    assert found["c2pa"]["state"] == "Absent" and found["watermark"]["detected"]
    assert found["verdict"]["basis"] == "watermark" and found["verdict"]["origin"] == "model"
    assert found["verdict"]["line"].startswith(
        "manifest absent; watermark found (kinema model output whose manifest was stripped); triage"
    )
    assert not found["review"]["found"] and "no review decision found" in found["verdict"]["line"]


def test_unmarked_model_pixels_get_only_a_triage_hint(rendered, tmp_path):
    """Plain pixels of a model (no manifest, no mark): the detector may point at the model,
    and the line says that alone is not evidence."""
    ensure_keys(kinema_home())
    path = write_video(rendered.video, tmp_path / "bare.mp4")
    bare = report(path)
    assert bare["verdict"]["basis"] == "none" and bare["verdict"]["origin"] == "unknown"
    score = bare["triage"]["score"]
    assert bare["triage"]["label"] == "likely kinema model", score
    assert bare["verdict"]["line"] == (
        f"manifest absent; no watermark; triage score {score:.2f} suggests kinema's model, "
        "but the detector alone is not evidence"
    )


def test_world_render_is_algorithmic_without_a_watermark(tmp_path):
    path = tmp_path / "world.mp4"
    record = publish(world_clip(), path, {"prompt": PROMPT, "seed": 0}, WORLD_RENDERER)
    rendered_file = report(path)
    assert rendered_file["c2pa"]["claims"]["digital_source_type"] == ALGORITHMIC
    assert not rendered_file["watermark"]["detected"]
    result = rendered_file["verdict"]
    assert result["origin"] == "algorithmic" and result["basis"] == "trusted manifest"
    assert result["line"].startswith(
        "manifest Trusted (algorithmicMedia by kinema world renderer (WORLD.md v1), not a trained "
        "model's output); no watermark, as expected; triage"
    )
    assert f"review pending (item {record['id']})" in result["line"]
    assert not any("watermark" in d for d in result["disagreements"])


def test_no_manifest_no_mark_is_no_evidence(tmp_path):
    path = write_video(world_clip(), tmp_path / "plain.mp4")
    keyless = report(path)["verdict"]["line"]  # a fresh home has no keys to look for a mark with
    assert keyless.startswith("manifest absent; watermark not checked (no local keys); triage score")
    ensure_keys(kinema_home())
    plain = report(path)
    assert plain["triage"]["caveat"] == CAVEAT and plain["triage"]["checked"]
    assert plain["verdict"]["basis"] == "none" and plain["verdict"]["origin"] == "unknown"
    assert plain["verdict"]["line"].startswith("manifest absent; no watermark; triage score")
    assert plain["verdict"]["line"].endswith("but the detector alone is not evidence")
    assert plain["review"] == {
        "found": False,
        "decision": None,
        "manifest": None,
        "database": None,
        "reason": "no review database here",
    }
    assert not (kinema_home() / REVIEW_DB).exists()  # verify creates no state


def test_a_changed_working_file_is_named(tmp_path):
    path = tmp_path / "world.mp4"
    record = publish(world_clip(), path, {"prompt": PROMPT, "seed": 0}, WORLD_RENDERER)
    write_video(world_clip(frames=12), path)  # over the working file, unsigned
    changed = report(path)
    assert changed["review"]["database"] == {
        "id": record["id"],
        "status": "pending",
        "match": "path",
        "changed": True,
        "decided": None,
        "reviewer": None,
        "note": None,
    }
    assert changed["review"]["decision"] is None
    assert "changed since it was registered" in changed["verdict"]["disagreements"][0]
    hidden = report(path, show_reviewer=False)["review"]["database"]
    assert "reviewer" not in hidden and "note" not in hidden


def test_triage_reads_a_bounded_number_of_frames_and_loads_no_model(tmp_path):
    path = tmp_path / "long.mp4"
    write_video(world_clip(frames=600, size=32), path)
    assert report(path)["triage"]["frames_checked"] == MAX_FRAMES
    probe = (
        "import sys; from kinema.authenticity import report; r = report(sys.argv[1]); "
        "assert r['triage']['checked']; print(sorted(m for m in ('torch', 'kinema.models', "
        "'kinema.pipelines') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, env=os.environ, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_audio_only_and_non_media(tmp_path):
    wav = tmp_path / "tone.wav"
    samples = 0.2 * np.sin(np.linspace(0, 2000, 16000 * 2, dtype=np.float32))[None]
    write_wav(Audio(samples, 16000), wav)
    sound = report(wav)
    assert sound["triage"]["checked"] is False and sound["triage"]["reason"] == "no video to score"
    assert sound["verdict"]["line"].startswith("manifest absent; no audio watermark")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(VerifyError):
        report(text)


# ------------------------------------------------------------------- the rule table


def c2pa(state="Absent", source=None, binding=None, reviewed=None, model="kinema-shapes-2"):
    claims = None
    if state != "Absent":
        claims = {
            "digital_source_type": source,
            "generation": {"model": model} if model else None,
            "soft_binding": {"payload_hex": binding} if binding else None,
            "review": reviewed,
            "signer": "someone",
        }
    return {"state": state, "reason": "validation failed: assertion.dataHash.mismatch", "claims": claims}


def mark(state):
    return {
        "match": {"detected": True, "payload_valid": True, "matches_manifest": True, "checked": True},
        "found": {"detected": True, "payload_valid": True, "matches_manifest": None, "checked": True},
        "mismatch": {"detected": True, "payload_valid": True, "matches_manifest": False, "checked": True},
        "unreadable": {"detected": True, "payload_valid": False, "matches_manifest": None, "checked": True},
        "absent": {"detected": False, "checked": True},
        "unchecked": {"detected": False, "checked": False, "reason": "no local keys"},
    }[state]


def triage_says(score):
    if score is None:
        return {"checked": False, "reason": "frames unreadable"}
    label = (
        "likely kinema model" if score >= 0.8 else "likely not kinema model" if score <= 0.2 else "uncertain"
    )
    return {"checked": True, "score": score, "label": label}


@pytest.mark.parametrize(
    ("provenance", "watermark", "score", "basis", "origin", "line", "disagree"),
    [
        (c2pa("Trusted", TRAINED, "ab"), "match", 0.95, "trusted manifest", "model",
         "manifest Trusted (trainedAlgorithmicMedia, model output of kinema-shapes-2); watermark agrees "
         "(payload matches the manifest's soft binding); triage agrees (score 0.95)", 0),
        (c2pa("Trusted", TRAINED, "ab"), "match", 0.05, "trusted manifest", "model",
         "manifest Trusted (trainedAlgorithmicMedia, model output of kinema-shapes-2); watermark agrees "
         "(payload matches the manifest's soft binding); triage disagrees (score 0.05), outweighed by "
         "the trusted manifest", 1),
        (c2pa("Trusted", TRAINED, "ab"), "absent", 0.5, "trusted manifest", "model",
         "manifest Trusted (trainedAlgorithmicMedia, model output of kinema-shapes-2); no watermark "
         "found, though the manifest declares one (a weak or damaged mark); triage uncertain (score 0.50)", 1),
        (c2pa("Trusted", TRAINED, "ab"), "mismatch", 0.9, "trusted manifest", "model",
         "manifest Trusted (trainedAlgorithmicMedia, model output of kinema-shapes-2); watermark found, "
         "but its payload differs from the manifest's soft binding; triage agrees (score 0.90)", 1),
        (c2pa("Valid", TRAINED, "ab"), "unreadable", 0.9, "valid manifest", "model",
         "manifest Valid but its signer someone is not trusted here (trainedAlgorithmicMedia, model "
         "output of kinema-shapes-2); watermark agrees (payload unreadable); triage agrees (score 0.90)", 0),
        (c2pa("Trusted", ALGORITHMIC, model="renderer"), "absent", 0.1, "trusted manifest", "algorithmic",
         "manifest Trusted (algorithmicMedia by renderer, not a trained model's output); no watermark, "
         "as expected; triage agrees (score 0.10)", 0),
        (c2pa("Trusted", ALGORITHMIC, model=None), "found", 0.9, "trusted manifest", "algorithmic",
         "manifest Trusted (algorithmicMedia, not a trained model's output); watermark found, though the "
         "manifest says algorithmicMedia, not a trained model's output; triage disagrees (score 0.90), "
         "outweighed by the trusted manifest", 2),
        (c2pa("Invalid", TRAINED, "ab"), "match", 0.9, "watermark", "model",
         "manifest Invalid (validation failed: assertion.dataHash.mismatch); watermark found (kinema "
         "model output altered after signing); triage agrees (score 0.90)", 0),
        (c2pa("Invalid", TRAINED), "absent", 0.9, "none", "unknown",
         "manifest Invalid (validation failed: assertion.dataHash.mismatch); no watermark; triage score "
         "0.90 suggests kinema's model, but the detector alone is not evidence", 0),
        (c2pa(), "found", 0.9, "watermark", "model",
         "manifest absent; watermark found (kinema model output whose manifest was stripped); triage "
         "agrees (score 0.90)", 0),
        (c2pa(), "unreadable", 0.1, "watermark", "model",
         "manifest absent; watermark found but its payload unreadable (likely kinema model output whose "
         "manifest was stripped); triage disagrees (score 0.10), outweighed by the watermark", 1),
        (c2pa(), "absent", 0.93, "none", "unknown",
         "manifest absent; no watermark; triage score 0.93 suggests kinema's model, but the detector "
         "alone is not evidence", 0),
        (c2pa(), "absent", 0.5, "none", "unknown",
         "manifest absent; no watermark; triage score 0.50 is inconclusive, and the detector alone is "
         "not evidence", 0),
        (c2pa(), "unchecked", None, "none", "unknown",
         "manifest absent; watermark not checked (no local keys); triage not scored (frames unreadable)", 0),
    ],
)  # fmt: skip
def test_verdict_rules(provenance, watermark, score, basis, origin, line, disagree):
    result = verdict(provenance, mark(watermark), triage_says(score))
    assert result == {
        "line": line,
        "basis": basis,
        "origin": origin,
        "disagreements": result["disagreements"],
    }
    assert len(result["disagreements"]) == disagree


def test_verdict_review_clauses():
    signed = c2pa("Trusted", TRAINED, "ab", reviewed={"decision": "approved"})
    approved = {"decision": "approved", "reviewer": "ana"}
    pending = {"id": "1a2b", "status": "pending", "match": "content", "changed": False}
    withdrawn = {"id": "1a2b", "status": "withdrawn", "match": "export", "changed": False}
    cases = [
        ({"manifest": None, "database": pending}, "review pending (item 1a2b)", 0),
        ({"manifest": approved, "database": None}, "review approved by ana (recorded in the manifest)", 0),
        (
            {"manifest": approved, "database": withdrawn},
            "review: withdrawn in review.db (item 1a2b), though the manifest records approved",
            1,
        ),
        (
            {"manifest": None, "database": None},
            "no review decision found (not a working file here, and no signed record)",
            0,
        ),
    ]
    for part, clause, disagree in cases:
        result = verdict(signed, mark("match"), triage_says(0.9), part)
        assert result["line"].endswith("; " + clause) and len(result["disagreements"]) == disagree
    rendered = verdict(c2pa("Trusted", ALGORITHMIC), mark("absent"), triage_says(0.1), {"database": None})
    assert "review" not in rendered["line"]  # only a model's output is expected in the queue
