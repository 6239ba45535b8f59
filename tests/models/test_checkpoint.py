import pytest
import torch
from safetensors.torch import save_file

from kinema.models.checkpoint import CheckpointError, build_with_weights, cast, load_config, load_weights


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


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.proj = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)
        self.register_buffer("scale", torch.ones(3))


def _weights(dtype=torch.float32):
    torch.manual_seed(1)
    return {k: torch.randn_like(v).to(dtype) for k, v in _Net().state_dict().items()}


def test_a_model_built_with_its_weights_equals_one_built_and_loaded():
    weights = _weights(torch.float16)
    built = build_with_weights(_Net, weights)
    reference = _Net()
    reference.load_state_dict(weights)
    for (name, got), want in zip(built.state_dict().items(), reference.state_dict().values(), strict=True):
        assert got.dtype == torch.float32 and torch.equal(got, want), name
    assert all(p.requires_grad for p in built.parameters())


def test_weights_are_copied_unless_kept_mapped(tmp_path):
    save_file(_weights(), tmp_path / "model.safetensors")
    mapped = load_weights(tmp_path, widen=False)
    copied = build_with_weights(_Net, mapped)
    kept = build_with_weights(_Net, mapped, keep_mapped=True)
    assert copied.proj.weight.data_ptr() != mapped["proj.weight"].data_ptr()
    assert kept.proj.weight.data_ptr() == mapped["proj.weight"].data_ptr()


def test_a_model_with_state_outside_its_state_dict_is_initialised_as_usual():
    class Scaled(_Net):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", torch.full((2,), 7.0), persistent=False)
            self.offsets = torch.zeros(2).fill_(3.0)

    built = build_with_weights(Scaled, _weights())
    assert torch.equal(built.table, torch.full((2,), 7.0)) and torch.equal(
        built.offsets, torch.full((2,), 3.0)
    )


def test_missing_or_misshapen_weights_are_refused():
    weights = _weights()
    with pytest.raises(RuntimeError, match="Missing key"):
        build_with_weights(_Net, {k: v for k, v in weights.items() if k != "proj.bias"})
    with pytest.raises(RuntimeError, match="size mismatch"):
        build_with_weights(_Net, {**weights, "proj.bias": torch.zeros(5)})


def test_fp16_widening_is_exact():
    values = torch.randn(1000).half()
    assert torch.equal(cast(values, torch.float32), values.to(torch.float32))
