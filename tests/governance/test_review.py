"""The review gate: register, approve/reject, and export with the decision in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinema.errors import InputError
from kinema.governance import audit, review
from kinema.governance.review import ReviewError
from kinema.io import Video, VideoError, read_video
from kinema.provenance.c2pa import (
    Generation,
    ManifestSpec,
    SoftBinding,
    read_manifest,
    sidecar_path,
    sign_file,
)
from kinema.provenance.keys import ensure_keys
from kinema.state import kinema_home

PROMPT = "a red circle moving right on a black background"
ALICE, BOB = "token:a11ce000", "token:b0b00000"
SETTINGS = {"prompt": PROMPT, "seed": 7, "steps": 4, "frames": 4, "model": "kinema-shapes-tiny"}


@pytest.fixture
def keys():
    return ensure_keys(kinema_home())[0]


def spec(title: str = "clip.mp4", **changes) -> ManifestSpec:
    fields = dict(
        title=title,
        generation=Generation(
            model="kinema-shapes-tiny",
            model_hash="ab" * 32,
            seed=7,
            prompt=PROMPT,
            settings={"steps": 4},
        ),
        soft_binding=SoftBinding("org.kinema.watermark.v1", "00ff10ab00ff10ab"),
    )
    fields.update(changes)
    return ManifestSpec(**fields)


def working(tmp_path: Path, name: str, keys, seed: int = 0, **changes) -> Path:
    """A signed working file (as publish leaves it)."""
    rng = np.random.default_rng(seed)
    path = tmp_path / "work" / name
    path.parent.mkdir(exist_ok=True)
    Video(rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), fps=8).save(path)
    sign_file(path, spec(title=path.name, **changes), keys)
    return path


def approved_item(tmp_path, keys, name="clip.mp4"):
    path = working(tmp_path, name, keys)
    item = review.register(path, SETTINGS, "clip", manifest=spec(title=path.name))
    return review.approve(item.id, note="looks right", reviewer=ALICE)


def events() -> list[str]:
    """The log's events, one a change (its intent entry; done entries left out)."""
    return [r["event"] for r in audit.read_log() if r["fields"].get("phase") != "done"]


# ----------------------------------------------------------------------------- queue


def test_register_stores_a_pending_item(tmp_path, keys):
    path = working(tmp_path, "clip.mp4", keys)
    item = review.register(path, SETTINGS, "clip", manifest=spec(title=path.name))
    assert item.status == "pending" and len(item.id) == 8 and item.kind == "clip"
    assert item.path == path.resolve() and item.settings == SETTINGS
    assert item.sha256 == review.content_hash(path) and item.created.endswith("Z")
    assert item.spec["generation"]["prompt"] == PROMPT and item.spec["when"] == item.created
    assert review.get(item.id) == item
    assert review.list_items() == [item] and review.list_items("pending") == [item]
    assert review.list_items("approved") == []
    assert json.loads(json.dumps(item.to_dict()))["path"] == str(path.resolve())
    assert events() == ["review.register"]


def test_get_takes_a_unique_prefix_and_refuses_unknown_ids(tmp_path, keys):
    item = review.register(working(tmp_path, "a.gif", keys), SETTINGS, "clip")
    assert review.get(item.id[:4]) == item
    with pytest.raises(ReviewError, match="no review item with id 'nope'"):
        review.get("nope")
    with pytest.raises(ReviewError, match="no review item"):
        review.get(item.id[:3])  # too short to be a prefix
    assert issubclass(ReviewError, InputError)


def test_list_refuses_unknown_status():
    with pytest.raises(ReviewError, match="status must be one of"):
        review.list_items("done")


def test_register_refuses_missing_files_and_empty_kind(tmp_path, keys):
    with pytest.raises(ReviewError, match="does not exist"):
        review.register(tmp_path / "missing.mp4", SETTINGS, "clip")
    with pytest.raises(ReviewError, match="kind"):
        review.register(working(tmp_path, "a.mp4", keys), SETTINGS, " ")


def test_register_under_a_given_id_and_again(tmp_path, keys):
    # a rerun is a new item: an id in use is refused, never reset (issue 25)
    path = working(tmp_path, "a.mp4", keys)
    first = review.register(path, SETTINGS, "clip", item_id="abc123def456")
    review.approve(first.id, reviewer=ALICE)
    with pytest.raises(ReviewError, match="already used; every registration gets a fresh id"):
        review.register(path, SETTINGS, "clip", item_id="abc123def456")
    assert review.get(first.id).status == "approved" and len(review.list_items()) == 1


def test_approve_and_withdraw_record_the_decision(tmp_path, keys):
    item = review.register(working(tmp_path, "a.mp4", keys), SETTINGS, "clip")
    approved = review.approve(item.id, note="  fine ", reviewer=ALICE)
    assert approved.status == "approved" and approved.reviewer == ALICE
    assert approved.note == "fine" and approved.decided
    assert review.get(item.id) == approved
    with pytest.raises(ReviewError, match=f"item {item.id} is approved; only a pending item can be approved"):
        review.approve(item.id)
    with pytest.raises(ReviewError, match="is approved; only a pending item can be rejected"):
        review.reject(item.id)
    withdrawn = review.withdraw(item.id, note="on second thought", reviewer=BOB)
    assert withdrawn.status == "withdrawn" and withdrawn.reviewer == BOB
    with pytest.raises(ReviewError, match=r"is withdrawn \(final\); only a pending item can be approved"):
        review.approve(item.id)
    assert events() == ["review.register", "review.approve", "review.withdraw"]
    last = [r for r in audit.read_log() if r["event"] == "review.withdraw"][0]["fields"]
    assert last["previous"] == "approved" and last["reviewer"] == BOB and last["phase"] == "intent"
    assert audit.verify_log()[0]


def test_approve_refuses_a_changed_working_file(tmp_path, keys):
    path = working(tmp_path, "a.gif", keys)
    item = review.register(path, SETTINGS, "clip")
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ReviewError, match="changed since it was registered"):
        review.approve(item.id)


# ----------------------------------------------------------------------------- export


def test_export_signs_the_copy_with_the_review(tmp_path, keys):
    item = approved_item(tmp_path, keys)
    out = review.export(item.id, tmp_path / "published.mp4")
    assert out == tmp_path / "published.mp4"
    result = read_manifest(out, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    claims = result["active_manifest"]
    assert claims["review"]["decision"] == "approved"
    assert claims["review"]["reviewer"] == ALICE and claims["review"]["note"] == "looks right"
    assert claims["review"]["item"] == item.id and claims["review"]["self_review"] is False
    assert claims["actions"][-1]["action"] == "c2pa.published"
    assert claims["generation"]["prompt"] == PROMPT and claims["title"] == "published.mp4"
    assert claims["soft_binding"]["payload_hex"] == "00ff10ab00ff10ab"
    assert np.array_equal(read_video(out).frames, read_video(item.path).frames)
    sidecar = json.loads((tmp_path / "published.mp4.json").read_text())
    assert sidecar["prompt"] == PROMPT and sidecar["review"]["id"] == item.id
    assert sidecar["review"]["decision"] == "approved"
    # the working file still carries its own manifest, without a review
    assert read_manifest(item.path, keys.root_cert)["active_manifest"]["review"] is None
    exported = review.get(item.id).exports
    assert exported[0]["path"] == str(out.resolve())
    assert exported[0]["sha256"] == review.content_hash(out)
    assert events()[-1] == "review.export"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_export_replaces_an_existing_output(tmp_path, keys):
    item = approved_item(tmp_path, keys)
    out = tmp_path / "published.mp4"
    out.write_bytes(b"old")
    review.export(item.id, out)
    assert read_manifest(out, keys.root_cert)["state"] == "Trusted"


def test_pending_and_rejected_items_are_not_exported(tmp_path, keys):
    item = review.register(working(tmp_path, "a.mp4", keys), SETTINGS, "clip")
    out = tmp_path / "out.mp4"
    with pytest.raises(ReviewError) as info:
        review.export(item.id, out)
    assert str(info.value) == (f"item {item.id} is pending; only approved items can be exported")
    review.reject(item.id, reviewer=ALICE)
    with pytest.raises(ReviewError, match=r"is rejected \(final\); only approved items"):
        review.export(item.id, out)
    assert not out.exists() and not (tmp_path / "out.mp4.json").exists()


def test_export_refuses_a_changed_working_file(tmp_path, keys):
    item = approved_item(tmp_path, keys)
    Video(np.zeros((4, 32, 32, 3), np.uint8), fps=8).save(item.path)
    with pytest.raises(ReviewError, match="changed since it was registered"):
        review.export(item.id, tmp_path / "out.mp4")
    item.path.unlink()
    with pytest.raises(ReviewError, match="is gone"):
        review.export(item.id, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_export_keeps_the_format_and_needs_a_new_path(tmp_path, keys):
    item = approved_item(tmp_path, keys)
    with pytest.raises(ReviewError, match="ending in .mp4"):
        review.export(item.id, tmp_path / "out.webm")
    with pytest.raises(ReviewError, match="ending in .mp4"):
        review.export(item.id, tmp_path / "frames")
    with pytest.raises(ReviewError, match="new path"):
        review.export(item.id, item.path)
    with pytest.raises(VideoError, match="does not exist"):
        review.export(item.id, tmp_path / "nowhere" / "out.mp4")


def test_webm_export_gets_its_own_manifest_sidecar(tmp_path, keys):
    item = approved_item(tmp_path, keys, "clip.webm")
    out = review.export(item.id, tmp_path / "out.webm")
    assert sidecar_path(out).is_file()
    result = read_manifest(out, keys.root_cert)
    assert result["state"] == "Trusted" and result["source"] == "sidecar"
    assert result["active_manifest"]["review"]["decision"] == "approved"


def test_frame_folder_export(tmp_path, keys):
    folder = tmp_path / "work" / "frames"
    folder.parent.mkdir()
    Video(np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)).save(folder)
    sign_file(folder, spec(title="frames"), keys)
    item = review.register(folder, SETTINGS, "clip")
    assert item.spec["generation"]["prompt"] == PROMPT  # rebuilt from the frames' manifest
    review.approve(item.id, reviewer=ALICE)
    out = tmp_path / "published"
    out.mkdir()
    (out / "frame_0000.png").write_bytes(b"stale")  # kinema's own name: replaced
    review.export(item.id, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "frame_0000.png",
        "frame_0001.png",
        "frame_0002.png",
        "settings.json",
    ]
    result = read_manifest(out, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    assert result["active_manifest"]["review"]["reviewer"] == ALICE
    assert json.loads((out / "settings.json").read_text())["review"]["id"] == item.id
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_frame_folder_export_refuses_foreign_files(tmp_path, keys):
    folder = tmp_path / "work" / "frames"
    folder.parent.mkdir()
    Video(np.zeros((2, 16, 16, 3), np.uint8)).save(folder)
    sign_file(folder, spec(title="frames"), keys)
    item = review.register(folder, SETTINGS, "clip")
    review.approve(item.id)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(VideoError, match="did not write"):
        review.export(item.id, out)
    assert (out / "holiday.jpg").exists()


def test_spec_is_rebuilt_from_the_manifest_with_a_hidden_prompt(tmp_path, keys):
    generation = Generation(model="m", seed=3, prompt=PROMPT, hide_prompt=True)
    path = working(tmp_path, "a.gif", keys, generation=generation)
    item = review.register(path, {"seed": 3}, "clip")
    review.approve(item.id)
    out = review.export(item.id, tmp_path / "out.gif")
    recorded = read_manifest(out, keys.root_cert)["active_manifest"]["generation"]
    assert "prompt" not in recorded and PROMPT.encode() not in out.read_bytes()
    assert recorded["prompt_sha256"] == generation.to_assertion()["prompt_sha256"]


def test_unsigned_working_file_gets_a_spec_from_its_sidecar(tmp_path, keys):
    path = tmp_path / "plain.gif"
    Video(np.zeros((2, 16, 16, 3), np.uint8)).save(path)
    item = review.register(path, SETTINGS, "clip")
    assert item.spec["generation"]["model"] == "kinema-shapes-tiny"
    review.approve(item.id)
    out = review.export(item.id, tmp_path / "out.gif")
    claims = read_manifest(out, keys.root_cert)["active_manifest"]
    assert claims["generation"]["seed"] == 7 and claims["review"]["decision"] == "approved"


def test_invalid_working_manifest_is_refused(tmp_path, keys):
    path = working(tmp_path, "a.gif", keys)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ReviewError, match="manifest is invalid"):
        review.register(path, SETTINGS, "clip")


def test_edit_export_names_its_source(tmp_path, keys):
    source = working(tmp_path, "source.mp4", keys, seed=5)
    edited = tmp_path / "work" / "extended.mp4"
    Video(np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)).save(edited)
    edit_spec = spec(title="extended.mp4", edit="extend")
    sign_file(edited, edit_spec, keys, [source])
    item = review.register(edited, SETTINGS, "clip", manifest=edit_spec, ingredients=[source])
    review.approve(item.id)
    out = review.export(item.id, tmp_path / "out.mp4")
    result = read_manifest(out, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    assert [i["title"] for i in result["ingredients"]] == ["source.mp4"]
    assert [a["action"] for a in result["active_manifest"]["actions"]] == [
        "c2pa.opened",
        "c2pa.edited",
        "c2pa.published",
    ]
    source.unlink()  # source gone: the working file stands in as the parent
    out2 = review.export(item.id, tmp_path / "out2.mp4")
    result = read_manifest(out2, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    assert [i["title"] for i in result["ingredients"]] == ["extended.mp4"]
    exported = [r for r in audit.read_log() if r["event"] == "review.export"][-2]["fields"]
    assert exported["phase"] == "intent" and exported["dropped_ingredients"] == [str(source.resolve())]
