"""Local signing keys and C2PA manifests: sign, read back, tamper, strip, distrust."""

from __future__ import annotations

import stat
import struct
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from kinema.io import Video, read_video, write_video
from kinema.provenance.c2pa import (
    ALGORITHMIC_MEDIA,
    TRAINED_ALGORITHMIC_MEDIA,
    Generation,
    ManifestSpec,
    ProvenanceError,
    Review,
    SoftBinding,
    read_manifest,
    sidecar_path,
    sign_file,
)
from kinema.provenance.keys import ensure_keys, init_keys, key_paths, watermark_key
from kinema.state import kinema_home

PROMPT = "a red circle moving right on a black background"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh KINEMA_HOME for each test."""
    folder = tmp_path / "home"
    monkeypatch.setenv("KINEMA_HOME", str(folder))
    return kinema_home()


@pytest.fixture
def keys(home):
    return ensure_keys(home)[0]


def clip(frames: int = 4, seed: int = 0) -> Video:
    """A small noisy clip (noise survives lossy codecs as visible change)."""
    rng = np.random.default_rng(seed)
    return Video(rng.integers(0, 256, (frames, 32, 32, 3), dtype=np.uint8), fps=8)


def spec(**changes) -> ManifestSpec:
    generation = Generation(
        model="kinema-shapes-tiny",
        model_hash="ab" * 32,
        seed=7,
        prompt=PROMPT,
        settings={"steps": 4, "guidance": 3.0},
    )
    fields = dict(
        title="out",
        generation=generation,
        soft_binding=SoftBinding("org.kinema.watermark.v1", "00ff10ab"),
    )
    fields.update(changes)
    return ManifestSpec(**fields)


def saved(tmp_path: Path, name: str, video: Video | None = None) -> Path:
    path = tmp_path / name
    (video or clip()).save(path)
    return path


# ----------------------------------------------------------------------------- keys


def test_state_home_follows_env(home, tmp_path):
    assert home == tmp_path / "home" and home.is_dir()


def test_keys_are_created_once_with_private_modes(home):
    paths, created = ensure_keys(home)
    assert created and paths.exist()
    assert stat.S_IMODE(paths.folder.stat().st_mode) == 0o700
    for key in (paths.signing_key, paths.intermediate_key, paths.root_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again, created_again = ensure_keys(home)
    assert again == paths and not created_again
    with pytest.raises(ProvenanceError):
        init_keys(home)


def test_force_replaces_keys_and_watermark_key_is_stable(home):
    paths, _ = ensure_keys(home)
    first = watermark_key(home)
    assert len(first) == 32 and watermark_key(home) == first
    old_root = paths.root_cert.read_bytes()
    init_keys(home, force=True)
    assert paths.root_cert.read_bytes() != old_root
    assert watermark_key(home) != first


def test_certificate_chain_extensions(keys):
    leaf, intermediate = x509.load_pem_x509_certificates(keys.signing_chain.read_bytes())
    root = x509.load_pem_x509_certificate(keys.root_cert.read_bytes())
    ext = leaf.extensions.get_extension_for_class
    assert ext(x509.BasicConstraints).value.ca is False
    assert ext(x509.KeyUsage).value.digital_signature
    assert list(ext(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert ext(x509.AuthorityKeyIdentifier).value.key_identifier == (
        intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.key_identifier
    )
    for ca in (intermediate, root):
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert leaf.issuer == intermediate.subject and intermediate.issuer == root.subject
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)


# ----------------------------------------------------------------------------- signing


@pytest.mark.parametrize("name", ["clip.mp4", "clip.gif"])
def test_embedded_manifest_reads_trusted_with_claims(tmp_path, keys, name):
    path = saved(tmp_path, name)
    assert sign_file(path, spec(title=name), keys) is None
    assert not sidecar_path(path).exists()
    result = read_manifest(path, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    assert result["source"] == "embedded"
    claims = result["active_manifest"]
    assert claims["title"] == name
    assert claims["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA
    assert claims["actions"][0]["action"] == "c2pa.created"
    assert claims["actions"][0]["software_agent"].startswith("kinema ")
    assert claims["generation"]["prompt"] == PROMPT
    assert claims["generation"]["seed"] == 7
    assert claims["soft_binding"] == {
        "algorithm": "org.kinema.watermark.v1",
        "payload_hex": "00ff10ab",
    }
    assert claims["signer"] == "kinema local signer"
    assert claims["time"]


def test_signed_mp4_still_decodes(tmp_path, keys):
    path = saved(tmp_path, "clip.mp4")
    before = read_video(path).frames
    sign_file(path, spec(), keys)
    assert np.array_equal(read_video(path).frames, before)


def test_webm_gets_a_sidecar(tmp_path, keys):
    path = saved(tmp_path, "clip.webm")
    sidecar = sign_file(path, spec(digital_source_type="algorithmicMedia"), keys)
    assert sidecar == tmp_path / "clip.webm.c2pa" and sidecar.is_file()
    result = read_manifest(path, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    assert result["source"] == "sidecar"
    assert result["active_manifest"]["digital_source_type"] == ALGORITHMIC_MEDIA


def test_webm_changed_after_signing_is_invalid(tmp_path, keys):
    path = saved(tmp_path, "clip.webm")
    sign_file(path, spec(), keys)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = read_manifest(path, keys.root_cert)
    assert result["state"] == "Invalid"
    assert "assertion.dataHash.mismatch" in result["reason"]


def test_webm_without_sidecar_is_absent(tmp_path, keys):
    path = saved(tmp_path, "clip.webm")
    assert read_manifest(path, keys.root_cert)["state"] == "Absent"


def test_frame_folder_signs_every_frame(tmp_path, keys):
    folder = saved(tmp_path, "frames/")
    assert sign_file(folder, spec(), keys) is None
    result = read_manifest(folder, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    assert result["active_manifest"]["frame"] == {"index": 0, "count": 4}
    for frame in sorted(folder.glob("frame_*.png")):
        assert read_manifest(frame, keys.root_cert)["state"] == "Trusted"


def test_frame_folder_with_a_changed_frame_is_invalid(tmp_path, keys):
    folder = saved(tmp_path, "frames/")
    sign_file(folder, spec(), keys)
    frame = folder / "frame_0002.png"
    flip_idat_byte(frame)
    assert read_manifest(frame, keys.root_cert)["state"] == "Invalid"
    result = read_manifest(folder, keys.root_cert)
    assert result["state"] == "Invalid" and "frame_0002.png" in result["reason"]


def test_frame_folder_with_a_resaved_frame_is_invalid(tmp_path, keys):
    folder = saved(tmp_path, "frames/")
    sign_file(folder, spec(), keys)
    video = read_video(folder)
    Video(video.frames[1:2], fps=8).save(tmp_path / "one/")
    (tmp_path / "one" / "frame_0000.png").replace(folder / "frame_0001.png")
    result = read_manifest(folder, keys.root_cert)
    assert result["state"] == "Invalid" and "frame_0001.png: Absent" in result["reason"]


def test_frame_folder_with_reordered_frames_is_invalid(tmp_path, keys):
    folder = saved(tmp_path, "frames/")
    sign_file(folder, spec(), keys)
    a, b = folder / "frame_0000.png", folder / "frame_0001.png"
    a.rename(tmp_path / "swap.png")
    b.rename(a)
    (tmp_path / "swap.png").rename(b)
    result = read_manifest(folder, keys.root_cert)
    assert result["state"] == "Invalid" and "recorded as frame 1" in result["reason"]


def test_mp4_with_changed_pixels_is_invalid(tmp_path, keys):
    path = saved(tmp_path, "clip.mp4")
    sign_file(path, spec(), keys)
    flip_mdat_byte(path)
    result = read_manifest(path, keys.root_cert)
    assert result["state"] == "Invalid"
    assert "mismatch" in result["reason"]


def test_gif_with_changed_bytes_is_invalid(tmp_path, keys):
    path = saved(tmp_path, "clip.gif")
    sign_file(path, spec(), keys)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # inside the last frame's image data, before the trailer
    path.write_bytes(bytes(data))
    assert read_manifest(path, keys.root_cert)["state"] == "Invalid"


@pytest.mark.parametrize("name", ["clip.mp4", "clip.gif"])
def test_reencoded_file_is_absent(tmp_path, keys, name):
    path = saved(tmp_path, name)
    sign_file(path, spec(), keys)
    copy = tmp_path / f"copy{path.suffix}"
    write_video(read_video(path), copy)
    result = read_manifest(copy, keys.root_cert)
    assert result["state"] == "Absent" and result["active_manifest"] is None


def test_other_home_root_gives_valid_not_trusted(tmp_path, keys):
    path = saved(tmp_path, "clip.mp4")
    sign_file(path, spec(), keys)
    other, _ = ensure_keys(tmp_path / "other-home")
    result = read_manifest(path, other.root_cert)
    assert result["state"] == "Valid", result["reason"]
    assert "signingCredential.untrusted" in result["codes"]
    assert read_manifest(path, None)["state"] == "Valid"


def test_hidden_prompt_is_recorded_as_hash_only(tmp_path, keys):
    path = saved(tmp_path, "clip.gif")
    generation = Generation(model="m", seed=1, prompt=PROMPT, hide_prompt=True)
    sign_file(path, spec(generation=generation), keys)
    recorded = read_manifest(path, keys.root_cert)["active_manifest"]["generation"]
    assert "prompt" not in recorded and len(recorded["prompt_sha256"]) == 64
    assert PROMPT.encode() not in path.read_bytes()


def test_edit_lists_its_source_as_parent_ingredient(tmp_path, keys):
    source = saved(tmp_path, "source.mp4")
    sign_file(source, spec(title="source"), keys)
    edited = saved(tmp_path, "extended.mp4", clip(6, seed=1))
    sign_file(edited, spec(title="extended", edit="extend"), keys, [source])
    result = read_manifest(edited, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    actions = [a["action"] for a in result["active_manifest"]["actions"]]
    assert actions == ["c2pa.opened", "c2pa.edited"]
    assert result["active_manifest"]["actions"][1]["description"] == "extend"
    (parent,) = result["ingredients"]
    assert parent["title"] == "source.mp4" and parent["relationship"] == "parentOf"
    assert parent["active_manifest"] and parent["validation_codes"] == []


def test_edit_of_a_webm_carries_its_sidecar_manifest(tmp_path, keys):
    source = saved(tmp_path, "source.webm")
    sign_file(source, spec(title="source"), keys)
    edited = saved(tmp_path, "remix.gif")
    sign_file(edited, spec(edit="remix"), keys, [source])
    (parent,) = read_manifest(edited, keys.root_cert)["ingredients"]
    assert parent["title"] == "source.webm" and parent["active_manifest"]


def test_edit_without_source_is_refused(tmp_path, keys):
    path = saved(tmp_path, "clip.gif")
    with pytest.raises(ProvenanceError, match="parent"):
        sign_file(path, spec(edit="inpaint"), keys)


def test_export_records_review_and_replaces_old_manifest(tmp_path, keys):
    path = saved(tmp_path, "clip.mp4")
    sign_file(path, spec(), keys)
    review = Review("approved", "alice", note="looks right", time="2025-01-02T03:04:05Z")
    sign_file(path, spec(review=review), keys)
    result = read_manifest(path, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    claims = result["active_manifest"]
    assert claims["review"]["decision"] == "approved" and claims["review"]["reviewer"] == "alice"
    assert claims["actions"][-1]["action"] == "c2pa.published"


def test_unknown_format_is_refused(tmp_path, keys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ProvenanceError, match="not supported"):
        sign_file(path, spec(), keys)
    assert read_manifest(path, keys.root_cert)["state"] == "Absent"


def test_missing_keys_are_refused(tmp_path):
    path = saved(tmp_path, "clip.gif")
    with pytest.raises(ProvenanceError, match="missing"):
        sign_file(path, spec(), key_paths(tmp_path / "nowhere"))


# ----------------------------------------------------------------------------- helpers


def flip_mdat_byte(path: Path) -> None:
    """Flip one byte in the middle of the mp4's media data (the coded pixels)."""
    data = bytearray(path.read_bytes())
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[offset + 8 : offset + 16])[0], 16
        if kind == b"mdat":
            data[offset + header + (size - header) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            return
        offset += size if size else len(data)
    raise AssertionError("no mdat box")


def flip_idat_byte(path: Path) -> None:
    """Flip one byte of a PNG's compressed pixels (the chunk CRC is left stale)."""
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 4] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_manifest_is_invalid(tmp_path, keys):
    path = saved(tmp_path, "clip.mp4")
    sign_file(path, spec(), keys)
    data = bytearray(path.read_bytes())
    start = data.index(b"c2pa") + 200
    data[start : start + 60] = bytes(b ^ 0x55 for b in data[start : start + 60])
    path.write_bytes(bytes(data))
    assert read_manifest(path, keys.root_cert)["state"] == "Invalid"


def test_swapped_sidecar_is_invalid(tmp_path, keys):
    first, second = saved(tmp_path, "a.webm"), saved(tmp_path, "b.webm", clip(seed=2))
    sign_file(first, spec(), keys)
    sidecar_path(first).replace(sidecar_path(second))
    result = read_manifest(second, keys.root_cert)
    assert result["state"] == "Invalid" and "dataHash.mismatch" in result["reason"]


def test_file_that_is_not_its_format_is_refused(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_text("not a video")
    with pytest.raises(ProvenanceError, match="cannot parse fake.mp4"):
        read_manifest(path)


def test_input_image_is_listed_as_input(tmp_path, keys):
    image = saved(tmp_path, "first/") / "frame_0000.png"
    path = saved(tmp_path, "clip.mp4")
    sign_file(path, spec(), keys, [image])
    result = read_manifest(path, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    (ingredient,) = result["ingredients"]
    assert ingredient["relationship"] == "inputTo"


def test_frame_folder_edit_puts_parent_in_frame_zero(tmp_path, keys):
    source = saved(tmp_path, "source.gif")
    folder = saved(tmp_path, "inpainted/")
    sign_file(folder, spec(edit="inpaint"), keys, [source])
    result = read_manifest(folder, keys.root_cert)
    assert result["state"] == "Trusted", result["reason"]
    assert [i["relationship"] for i in result["ingredients"]] == ["parentOf"]
    last = read_manifest(folder / "frame_0003.png", keys.root_cert)
    assert last["ingredients"] == [] and last["active_manifest"]["frame"]["index"] == 3
