import pytest
import torch
from safetensors.torch import save_file

from kinema.models.checkpoint import CheckpointError, load_config, load_weights


def test_weights_read_back_in_float32_and_other_dtypes_kept(tmp_path):
    save_file(
        {"w": torch.ones(2, 3, dtype=torch.float16), "n": torch.arange(3)}, tmp_path / "model.safetensors"
    )
    weights = load_weights(tmp_path)
    assert weights["w"].dtype == torch.float32 and torch.equal(weights["w"], torch.ones(2, 3))
    assert weights["n"].dtype == torch.int64


def test_refuses_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_config(tmp_path)
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        load_weights(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_weights(tmp_path)


def test_training_reads_checkpoints_with_the_same_functions():
    from kinema.train import checkpoint

    assert checkpoint.load_weights is load_weights and checkpoint.load_config is load_config
    assert checkpoint.CheckpointError is CheckpointError
