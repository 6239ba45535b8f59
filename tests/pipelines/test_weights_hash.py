import hashlib
import json
import os

import pytest

from kinema.pipelines import weights_hash
from kinema.pipelines.weights_hash import cached_hash, sha256_files


@pytest.fixture
def settled(monkeypatch):
    """Files written by a test are younger than RACY_SECONDS; let them count as settled."""
    monkeypatch.setattr(weights_hash, "RACY_SECONDS", 0.0)


def _counting(files):
    calls = []

    def compute():
        calls.append(1)
        return sha256_files(files)

    return compute, calls


def test_hash_is_computed_once_then_read_from_the_cache(tmp_path, settled):
    files = [tmp_path / "a.bin", tmp_path / "b.bin"]
    files[0].write_bytes(b"vae weights")
    files[1].write_bytes(b"dit weights")
    compute, calls = _counting(files)
    first = cached_hash(files, compute, home=tmp_path)
    assert first == hashlib.sha256(b"vae weightsdit weights").hexdigest()
    assert cached_hash(files, compute, home=tmp_path) == first and len(calls) == 1


def test_a_changed_file_is_hashed_again_even_with_its_size_and_mtime_restored(tmp_path, settled):
    files = [tmp_path / "model.safetensors"]
    files[0].write_bytes(b"A" * 64)
    compute, calls = _counting(files)
    before = cached_hash(files, compute, home=tmp_path)
    stat = files[0].stat()
    files[0].write_bytes(b"B" * 64)  # same size
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only ctime tells
    after = cached_hash(files, compute, home=tmp_path)
    assert len(calls) == 2 and after != before and after == hashlib.sha256(b"B" * 64).hexdigest()


def test_a_replaced_file_is_hashed_again(tmp_path, settled):
    files = [tmp_path / "model.safetensors"]
    files[0].write_bytes(b"old")
    compute, calls = _counting(files)
    cached_hash(files, compute, home=tmp_path)
    (tmp_path / "new").write_bytes(b"new")
    os.replace(tmp_path / "new", files[0])
    assert cached_hash(files, compute, home=tmp_path) == hashlib.sha256(b"new").hexdigest()


def test_a_file_changed_moments_ago_is_not_cached(tmp_path):
    # two writes within one tick of the filesystem's clock could leave the same stat
    files = [tmp_path / "model.safetensors"]
    files[0].write_bytes(b"fresh")
    compute, calls = _counting(files)
    cached_hash(files, compute, home=tmp_path)
    cached_hash(files, compute, home=tmp_path)
    assert len(calls) == 2


def test_a_broken_or_unwritable_cache_only_costs_a_hash(tmp_path, settled):
    files = [tmp_path / "model.safetensors"]
    files[0].write_bytes(b"weights")
    want = hashlib.sha256(b"weights").hexdigest()
    cache = tmp_path / weights_hash.CACHE_FILE
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    assert cached_hash(files, lambda: sha256_files(files), home=tmp_path) == want
    cache.write_text(json.dumps({json.dumps([str(files[0].resolve())]): "not an entry"}))
    assert cached_hash(files, lambda: sha256_files(files), home=tmp_path) == want
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    assert cached_hash(files, lambda: sha256_files(files), home=blocked) == want


def test_the_builtin_model_hash_is_the_hash_of_its_weights(settled):
    from kinema.pipelines.loading import builtin_folder, model_hash

    folder = builtin_folder()
    if not (folder / "model.json").is_file():
        pytest.skip("the built-in model is not installed")
    digest = hashlib.sha256()
    for part in ("vae", "dit"):
        digest.update((folder / part / "model.safetensors").read_bytes())
    assert model_hash(folder) == digest.hexdigest() == model_hash(folder)  # computed, then cached


def test_a_diffusers_folder_is_hashed_once_until_a_weight_file_changes(settled, tmp_path, monkeypatch):
    from kinema.pipelines.backends import base

    folder = tmp_path / "model"
    for part, data in (("transformer", b"t" * 1000), ("vae", b"v" * 500)):
        (folder / part).mkdir(parents=True)
        (folder / part / "diffusion_pytorch_model.safetensors").write_bytes(data)
    (folder / "model_index.json").write_text("{}")  # not a weight file: not hashed
    first = base.model_hash(folder)
    opened = []
    real_open = type(folder).open
    monkeypatch.setattr(
        type(folder), "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k)
    )
    assert base.model_hash(folder) == first
    assert not [p for p in opened if p.suffix == ".safetensors"]  # from the cache: no weights read
    monkeypatch.undo()
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"w" * 500)  # same size, new bytes
    assert base.model_hash(folder) != first
    # moving a file between components changes the hash too
    moved = tmp_path / "moved"
    (moved / "a").mkdir(parents=True)
    (moved / "b").mkdir()
    (moved / "a" / "x.safetensors").write_bytes(b"same")
    other = tmp_path / "other"
    (other / "a").mkdir(parents=True)
    (other / "b").mkdir()
    (other / "b" / "x.safetensors").write_bytes(b"same")
    assert base.model_hash(moved) != base.model_hash(other)
