"""Rights and consent: prompt screening, face detection, the consent registry and the
likeness check, and that every decision reaches the audit log."""

from __future__ import annotations

import datetime as dt
import json

import cv2
import numpy as np
import pytest

from kinema.errors import InputError
from kinema.governance import audit
from kinema.governance.policy import (
    DEFAULT_MARKS,
    DEFAULT_PEOPLE,
    PolicyError,
    add_consent,
    blocked_terms,
    check_likeness,
    consents_for,
    find_consent,
    find_faces,
    get_consent,
    image_hash,
    list_consents,
    revoke_consent,
    screen_prompt,
)
from kinema.io import Video, read_image, write_png
from kinema.state import kinema_home
from kinema.world import parse, render_frames

TODAY = dt.datetime.now(dt.timezone.utc).date()
NEXT_YEAR = TODAY + dt.timedelta(days=365)


def draw_face(size: int = 128, background=(70, 110, 150)) -> np.ndarray:
    """Our own cartoon face (no photo): skin oval, hair, brows, dark eyes, nose shadow,
    mouth, softened by a blur. OpenCV's frontal face cascade finds it at 32 px and up."""
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = background
    skin, shade = (225, 190, 160), (165, 130, 105)
    c = size // 2

    def s(f: float) -> int:
        return int(round(size * f))

    cv2.ellipse(img, (c, s(0.52)), (s(0.32), s(0.42)), 0, 0, 360, skin, -1)
    cv2.ellipse(img, (c, s(0.22)), (s(0.33), s(0.16)), 0, 180, 360, (50, 35, 25), -1)
    for side in (-1, 1):
        x = c + side * s(0.17)
        cv2.ellipse(img, (x, s(0.33)), (s(0.09), s(0.02)), 0, 0, 360, (95, 70, 50), -1)
        cv2.ellipse(img, (x, s(0.40)), (s(0.08), s(0.04)), 0, 0, 360, (30, 25, 25), -1)
    cv2.line(img, (c + s(0.03), s(0.45)), (c + s(0.04), s(0.62)), shade, max(1, s(0.012)))
    cv2.ellipse(img, (c, s(0.75)), (s(0.12), s(0.035)), 0, 0, 360, (150, 70, 70), -1)
    return cv2.GaussianBlur(img, (0, 0), max(0.5, size / 80))


def shapes_frame(size: int = 64) -> np.ndarray:
    scene = parse("a red circle moving down and a blue square moving up on a white background")
    return render_frames(scene, seed=3, frames=1, size=size)[0]


def events(name: str) -> list[dict]:
    return [r for r in audit.read_log() if r["event"] == name]


@pytest.fixture
def face_png(tmp_path):
    path = tmp_path / "face.png"
    write_png(draw_face(128), path)
    return path


# ----------------------------------------------------------------------------- prompts


def test_plain_prompt_passes_and_is_logged_by_hash():
    prompt = "a red circle moving right on a black background"
    screen_prompt(prompt)
    (entry,) = events("policy.screen")
    assert entry["fields"]["decision"] == "pass"
    assert prompt not in json.dumps(entry) and len(entry["fields"]["prompt_sha256"]) == 64


def test_default_lists_have_a_dozen_each():
    assert len(DEFAULT_PEOPLE) >= 12 and len(DEFAULT_MARKS) >= 12


@pytest.mark.parametrize(
    "prompt, term",
    [
        ("Taylor Swift dancing on a stage", "Taylor Swift"),
        ("taylor   swift's new video", "Taylor Swift"),
        ("TAYLOR-SWIFT singing", "Taylor Swift"),
        ("#TaylorSwift at night", "Taylor Swift"),
        ("a cat in a Coca Cola can", "Coca-Cola"),
        ("a pokemon fighting", "Pokémon"),
        ("beyonce on a horse", "Beyoncé"),
        ("McDonalds burger commercial", "McDonald's"),
        ("a mcdonald's sign", "McDonald's"),
        ("spiderman swinging", "Spider-Man"),
        ("two new NIKE shoes", "Nike"),
    ],
)
def test_named_people_and_marks_are_refused(prompt, term):
    with pytest.raises(PolicyError) as info:
        screen_prompt(prompt)
    assert str(info.value) == (f"prompt names a protected person or mark: '{term}' (rule: names-and-marks)")
    assert info.value.rule == "names-and-marks" and isinstance(info.value, InputError)
    (entry,) = events("policy.screen")
    assert entry["fields"]["decision"] == "refuse" and entry["fields"]["term"] == term


@pytest.mark.parametrize(
    "prompt",
    ["a bird flying swiftly over a lake", "a legolas statue", "the disneyland-free park of mice"],
)
def test_words_containing_terms_pass(prompt):
    screen_prompt(prompt)


def test_home_terms_file_extends_the_list():
    (kinema_home() / "blocked_terms.txt").write_text(
        "# our own list\nAcme Rocket Co   # a client's mark\n\n  Jane Q. Public\n"
    )
    assert "Acme Rocket Co" in blocked_terms() and "Jane Q. Public" in blocked_terms()
    with pytest.raises(PolicyError, match="'Jane Q. Public'"):
        screen_prompt("jane q public walking a dog")
    with pytest.raises(PolicyError, match="'Acme Rocket Co'"):
        screen_prompt("an ACME rocket co. launch")
    screen_prompt("an acme of design")


def test_env_terms_file_extends_the_list(tmp_path, monkeypatch):
    extra = tmp_path / "terms.txt"
    extra.write_text("Zorblax Industries\n")
    monkeypatch.setenv("KINEMA_BLOCKED_TERMS_FILE", str(extra))
    with pytest.raises(PolicyError, match="Zorblax Industries"):
        screen_prompt("a zorblax industries factory")


def test_missing_env_terms_file_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("KINEMA_BLOCKED_TERMS_FILE", str(tmp_path / "nope.txt"))
    with pytest.raises(PolicyError, match="does not exist"):
        screen_prompt("a red circle")


# ----------------------------------------------------------------------------- faces


@pytest.mark.parametrize("size", [48, 64, 128, 256, 640])
def test_drawn_face_is_found(size):
    faces = find_faces(draw_face(size))
    assert len(faces) == 1
    x, y, w, h = faces[0]
    assert all(isinstance(v, int) for v in faces[0])
    assert 0 <= x < size and 0 <= y < size and size * 0.3 < w <= size


def test_face_is_found_in_grey_and_in_a_larger_scene():
    canvas = np.full((240, 320, 3), 200, np.uint8)
    canvas[60:188, 150:278] = draw_face(128)
    (box,) = find_faces(canvas)
    assert 120 <= box[0] + box[2] // 2 <= 300
    assert len(find_faces(cv2.cvtColor(draw_face(128), cv2.COLOR_RGB2GRAY))) == 1


@pytest.mark.parametrize("size", [64, 256])
def test_shapes_world_has_no_face(size):
    assert find_faces(shapes_frame(size)) == []
    assert find_faces(np.zeros((size, size, 3), np.uint8)) == []


def test_shapes_world_frames_pass_without_consent():
    scene = parse("a green triangle moving up on a white background")
    clip = render_frames(scene, seed=1, frames=8, size=64)
    assert check_likeness(clip) is None
    (entry,) = events("policy.likeness")
    assert entry["fields"]["decision"] == "pass" and entry["fields"]["faces"] == 0


# ----------------------------------------------------------------------------- image hash


def test_image_hash_is_of_pixels_not_file_bytes(tmp_path, face_png):
    image = read_image(face_png)
    again = tmp_path / "again.png"
    cv2.imwrite(str(again), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert again.read_bytes() != face_png.read_bytes()
    assert image_hash(read_image(again)) == image_hash(image)
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert image_hash(changed) != image_hash(image)
    assert image_hash(image.reshape(64, 256, 3)) != image_hash(image)  # shape counts


# ----------------------------------------------------------------------------- registry


def test_add_list_find_and_revoke(face_png):
    record = add_consent(face_png, "Ada Example", "kinema demo", NEXT_YEAR)
    assert record.owner == "Ada Example" and record.expires == NEXT_YEAR
    assert record.faces == 1 and record.source == "face.png" and record.status() == "valid"
    assert record.image_sha256 == image_hash(read_image(face_png))
    assert list_consents() == [record]
    assert find_consent(record.image_sha256) == record
    assert find_consent(record.image_sha256, scope="kinema demo") == record
    assert find_consent(record.image_sha256, scope="advertising") is None
    assert get_consent(record.id) == record
    revoked = revoke_consent(record.id, reason="owner asked")
    assert revoked.revoked and revoked.status() == "revoked"
    assert find_consent(record.image_sha256) is None
    assert list_consents(include_revoked=False) == []
    assert consents_for(record.image_sha256) == [revoked]
    logged = [r["event"] for r in audit.read_log()]
    assert logged == ["consent.add", "consent.revoke"]
    assert audit.verify_log()[0]


def test_expiry_as_text_and_today_is_allowed(face_png):
    assert add_consent(face_png, "A", "s", TODAY.isoformat()).expires == TODAY


@pytest.mark.parametrize(
    "owner, scope, expires, message",
    [
        ("", "demo", NEXT_YEAR, "owner"),
        ("  ", "demo", NEXT_YEAR, "owner"),
        ("Ada", "", NEXT_YEAR, "scope"),
        ("Ada", "demo", TODAY - dt.timedelta(days=1), "in the past"),
        ("Ada", "demo", "2020-01-01", "in the past"),
        ("Ada", "demo", "next year", "YYYY-MM-DD"),
    ],
)
def test_add_refuses_bad_records(face_png, owner, scope, expires, message):
    with pytest.raises(PolicyError, match=message):
        add_consent(face_png, owner, scope, expires)
    assert list_consents() == []


def test_add_refuses_files_that_are_not_images(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(PolicyError, match="not an image"):
        add_consent(text, "Ada", "demo", NEXT_YEAR)
    with pytest.raises(PolicyError, match="does not exist"):
        add_consent(tmp_path / "missing.png", "Ada", "demo", NEXT_YEAR)


def test_revoke_refuses_unknown_and_repeated(face_png):
    with pytest.raises(PolicyError, match="no consent record"):
        revoke_consent("cdeadbeef00")
    record = add_consent(face_png, "Ada", "demo", NEXT_YEAR)
    revoke_consent(record.id)
    with pytest.raises(PolicyError, match="already revoked"):
        revoke_consent(record.id)


def test_consent_for_a_clip(tmp_path):
    frames = np.stack([draw_face(96)] * 3)
    Video(frames, fps=8).save(tmp_path / "clip")
    record = add_consent(tmp_path / "clip", "Ada", "demo", NEXT_YEAR)
    assert record.image_sha256 == image_hash(frames)
    assert check_likeness(frames).id == record.id


# ----------------------------------------------------------------------------- likeness


def test_face_without_consent_is_refused(face_png):
    with pytest.raises(PolicyError) as info:
        check_likeness(read_image(face_png))
    assert str(info.value) == (
        "image shows a face and has no consent record (rule: likeness-consent); "
        "register it with `kinema consent add`"
    )
    assert info.value.rule == "likeness-consent"
    (entry,) = events("policy.likeness")
    assert entry["fields"]["decision"] == "refuse" and entry["fields"]["faces"] == 1


def test_face_with_consent_passes_even_after_resaving(tmp_path, face_png):
    record = add_consent(face_png, "Ada", "kinema demo, training", NEXT_YEAR)
    resaved = tmp_path / "resaved.png"
    write_png(read_image(face_png), resaved)
    assert check_likeness(read_image(resaved), source="resaved.png") == record
    assert check_likeness(read_image(face_png), scope="Training") == record
    entry = events("policy.likeness")[-1]
    assert entry["fields"]["decision"] == "pass" and entry["fields"]["consent_id"] == record.id


def test_wrong_scope_is_refused(face_png):
    add_consent(face_png, "Ada", "kinema demo", NEXT_YEAR)
    with pytest.raises(PolicyError, match="covers 'kinema demo', not 'advertising'"):
        check_likeness(read_image(face_png), scope="advertising")


def test_any_scope_covers_everything(face_png):
    add_consent(face_png, "Ada", "*", NEXT_YEAR)
    assert check_likeness(read_image(face_png), scope="advertising") is not None


def test_expired_consent_is_refused_naming_the_date(face_png):
    record = add_consent(face_png, "Ada", "demo", NEXT_YEAR)
    past = TODAY - dt.timedelta(days=3)
    _set_expiry(record.id, past)
    with pytest.raises(PolicyError) as info:
        check_likeness(read_image(face_png), source="face.png")
    message = str(info.value)
    assert f"expired on {past.isoformat()}" in message and record.id in message
    assert message.startswith("face.png shows a face") and "likeness-consent" in message
    assert get_consent(record.id).status() == "expired"


def test_revoked_consent_is_refused(face_png):
    record = add_consent(face_png, "Ada", "demo", NEXT_YEAR)
    revoke_consent(record.id)
    with pytest.raises(PolicyError, match="was revoked"):
        check_likeness(read_image(face_png))


def test_other_face_is_not_covered(face_png):
    add_consent(face_png, "Ada", "demo", NEXT_YEAR)
    other = draw_face(128, background=(40, 160, 90))
    with pytest.raises(PolicyError, match="no consent record"):
        check_likeness(other)


def _set_expiry(consent_id: str, when: dt.date) -> None:
    import sqlite3

    with sqlite3.connect(kinema_home() / "consent.db") as db:
        db.execute("UPDATE consents SET expires = ? WHERE id = ?", (when.isoformat(), consent_id))
