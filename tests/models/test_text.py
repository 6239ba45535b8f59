import shutil
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from kinema.models.text import HFTextEncoder, MiniLMTextEncoder, minilm_path

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def minilm():
    return MiniLMTextEncoder()


def test_minilm_token_states_mask_and_padding(minilm):
    prompts = ["a red circle moving right on a black background", "", "ein Hund 🐕 läuft über die Brücke"]
    tokens, mask = minilm.encode(prompts)
    assert tokens.dtype == torch.float32 and mask.dtype == torch.bool
    assert tokens.shape[0] == 3 and tokens.shape[2] == minilm.dim == 384
    assert mask.sum(1).tolist() == [11, 2, mask.shape[1]]  # [CLS] ... [SEP]; "" is [CLS][SEP]
    assert torch.isfinite(tokens).all() and (tokens[~mask] == 0).all()
    assert not any(p.requires_grad for p in minilm.model.parameters()) and not minilm.model.training


def test_minilm_cache_gives_the_batch_independent_states(minilm, monkeypatch):
    alone, _ = minilm.encode(["a blue square moving up on a white background"])
    calls = []
    encode_one = minilm._encode_one
    monkeypatch.setattr(minilm, "_encode_one", lambda p: calls.append(p) or encode_one(p))
    prompts = [
        "a much longer prompt about a green triangle growing slowly",
        "a blue square moving up on a white background",
    ]
    both, mask = minilm.encode(prompts)
    assert len(calls) == 1  # the repeated prompt came from the cache
    n = alone.shape[1]
    assert torch.equal(both[1, :n], alone[0]) and not mask[1, n:].any()
    # the cached states can feed a model that is being trained
    layer = torch.nn.Linear(384, 1)
    layer(both).sum().backward()
    assert layer.weight.grad is not None


# what the built-in model's prompts look like, and what it must survive: case, punctuation,
# accents, other scripts, emoji, words outside the vocabulary, special-token text, and
# prompts past the 128-token limit
REFERENCE_PROMPTS = [
    "a red circle moving right on a black background",
    "",
    "ein Hund 🐕 läuft über die Brücke",
    "A BIG Blue SQUARE, moving LEFT!!! on a white background.",
    "日本語のテキスト and café naïve résumé",
    "a green triangle growing and a yellow star shrinking on a gray background",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a    spaced\tprompt\nwith newlines",
    "<b>markup</b> [CLS] [SEP] [MASK] [PAD] 1234567890 3.14159 $%^&*()",
    "x " * 300,
    "the quick brown fox jumps over the lazy dog " * 20,
    "a small purple square staying still on a white background",
]


@pytest.fixture(scope="module")
def reference():
    """transformers' BertModel and tokenizer on the same MiniLM files: what the model was trained with."""
    folder = minilm_path()
    model = transformers.BertModel.from_pretrained(folder, local_files_only=True).eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)


def test_minilm_gives_transformers_token_states(minilm, reference):
    model, tokenizer = reference
    worst = 0.0
    for prompt in REFERENCE_PROMPTS:
        want = tokenizer(prompt, max_length=128, truncation=True, return_tensors="pt")
        assert minilm.tokenizer.encode(prompt).ids == want["input_ids"][0].tolist(), prompt
        with torch.no_grad():
            states = model(**want).last_hidden_state[0]
        tokens, mask = minilm.encode([prompt])
        assert mask[0].sum() == states.shape[0] <= 128
        worst = max(worst, (tokens[0, : states.shape[0]] - states).abs().max().item())
    assert worst <= 1e-5


def test_minilm_batches_give_transformers_padded_states(minilm, reference):
    model, tokenizer = reference
    batch = tokenizer(REFERENCE_PROMPTS, max_length=128, truncation=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    tokens, mask = minilm.encode_many(REFERENCE_PROMPTS, batch=5)  # batches of mixed lengths: padding
    assert torch.equal(mask[:, : real.shape[1]], real) and not mask[:, real.shape[1] :].any()
    assert (tokens[:, : real.shape[1]][real] - states[real]).abs().max() <= 1e-5
    assert (tokens[~mask] == 0).all()


def test_minilm_runs_without_transformers():
    code = (
        "import sys; from kinema.models.text import MiniLMTextEncoder; "
        "MiniLMTextEncoder().encode(['a red circle']); print('transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_cache_is_bounded(minilm, monkeypatch):
    monkeypatch.setattr(minilm, "cache_size", 2)
    monkeypatch.setattr(minilm, "_cache", OrderedDict())
    minilm.encode(["one", "two", "three", "two"])
    assert list(minilm._cache) == ["three", "two"]


def _tiny_folder(tmp_path, model):
    """A random tiny encoder saved beside MiniLM's (BERT WordPiece) tokenizer files."""
    model.save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path() / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("kind", ["t5", "clip"])
def test_hf_encoder_loads_a_local_t5_or_clip_folder(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "t5":
        config = transformers.T5Config(
            vocab_size=30522, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0
        )
        model = transformers.T5EncoderModel(config)
    else:
        config = transformers.CLIPTextConfig(
            vocab_size=30522,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
        )
        model = transformers.CLIPTextModel(config)
    encoder = HFTextEncoder(_tiny_folder(tmp_path, model))
    assert type(encoder.model).__name__ == ("T5EncoderModel" if kind == "t5" else "CLIPTextModel")
    tokens, mask = encoder.encode(["a red circle", "", "x " * 500])
    assert encoder.dim == 32 and tokens.shape == (3, encoder.max_length, 32)
    assert mask[0].sum() == 5 and mask[1].sum() == 2 and mask[2].all()  # the long one is truncated
    assert torch.isfinite(tokens).all()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        HFTextEncoder(tmp_path)
