"""A BERT encoder in plain torch: the forward of all-MiniLM-L6-v2, kinema's default text
encoder, without the transformers package (whose import alone costs seconds at every
start of `kinema generate`, for a model of twenty lines).

    token ids ─► word + position + type-0 embeddings ─► LayerNorm
              ─► depth × [self-attention ─► add & LayerNorm ─► GELU MLP ─► add & LayerNorm]
              ─► token states (B, L, width)

The weights are a Hugging Face BertModel checkpoint's, read under its own key names
(`HF_KEYS`), so the states are the ones the model was trained to give: tests compare
them with transformers' BertModel on the same checkpoint.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kinema.models.checkpoint import CheckpointError, build_with_weights, load_weights


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    width: int = 384  # hidden_size
    depth: int = 6  # num_hidden_layers
    heads: int = 12
    mlp_width: int = 1536  # intermediate_size
    max_positions: int = 512
    type_vocab_size: int = 2
    norm_eps: float = 1e-12

    @classmethod
    def from_hf(cls, config: dict) -> BertConfig:
        """The config of a Hugging Face BertModel's config.json; refuses (CheckpointError)
        the variants this forward does not compute (other activations, relative positions)."""
        kind = (config.get("model_type"), config.get("hidden_act"), config.get("position_embedding_type"))
        if kind[0] != "bert" or kind[1] != "gelu" or kind[2] not in (None, "absolute"):
            raise CheckpointError(
                f"not a BERT encoder this forward computes (type, activation, positions: {kind})"
            )
        return cls(
            vocab_size=config["vocab_size"],
            width=config["hidden_size"],
            depth=config["num_hidden_layers"],
            heads=config["num_attention_heads"],
            mlp_width=config["intermediate_size"],
            max_positions=config["max_position_embeddings"],
            type_vocab_size=config["type_vocab_size"],
            norm_eps=config["layer_norm_eps"],
        )


class BertLayer(nn.Module):
    """Post-norm transformer layer: attention, add & norm, GELU MLP, add & norm."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads = c.heads
        self.query, self.key, self.value = (nn.Linear(c.width, c.width) for _ in range(3))
        self.attention_out = nn.Linear(c.width, c.width)
        self.attention_norm = nn.LayerNorm(c.width, eps=c.norm_eps)
        self.mlp_in = nn.Linear(c.width, c.mlp_width)
        self.mlp_out = nn.Linear(c.mlp_width, c.width)
        self.mlp_norm = nn.LayerNorm(c.width, eps=c.norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, L, width); mask (B, 1, 1, L) bool, True where a key is a real token."""
        b, n, w = x.shape
        q, k, v = (
            p(x).view(b, n, self.heads, w // self.heads).transpose(1, 2)
            for p in (self.query, self.key, self.value)
        )
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, w)
        x = self.attention_norm(x + self.attention_out(attended))
        return self.mlp_norm(x + self.mlp_out(F.gelu(self.mlp_in(x))))


class BertEncoder(nn.Module):
    """Token ids (B, L) → last hidden states (B, L, width); every token has type 0."""

    def __init__(self, config: BertConfig):
        super().__init__()
        c = self.config = config
        self.word_embeddings = nn.Embedding(c.vocab_size, c.width)
        self.position_embeddings = nn.Embedding(c.max_positions, c.width)
        self.type_embeddings = nn.Embedding(c.type_vocab_size, c.width)
        self.embedding_norm = nn.LayerNorm(c.width, eps=c.norm_eps)
        self.layers = nn.ModuleList(BertLayer(c) for _ in range(c.depth))

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, L) int; attention_mask (B, L), 1 for real tokens, 0 for padding (None:
        all real). Padded positions get states too; they mean nothing."""
        n = ids.shape[1]
        if n > self.config.max_positions:
            raise ValueError(f"{n} tokens; the model has {self.config.max_positions} positions")
        # summed in transformers' order (word + type, then + position): the same rounding
        x = self.word_embeddings(ids) + self.type_embeddings.weight[0]
        x = self.embedding_norm(x + self.position_embeddings.weight[:n])
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        return x


# A Hugging Face BertModel's key names → this module's. The pooler (a sentence head) and
# the position_ids buffer are not part of the token states and are left out.
HF_KEYS = {
    r"embeddings\.word_embeddings\.": "word_embeddings.",
    r"embeddings\.position_embeddings\.": "position_embeddings.",
    r"embeddings\.token_type_embeddings\.": "type_embeddings.",
    r"embeddings\.LayerNorm\.": "embedding_norm.",
    r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.": r"layers.\1.\2.",
    r"encoder\.layer\.(\d+)\.attention\.output\.dense\.": r"layers.\1.attention_out.",
    r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.": r"layers.\1.attention_norm.",
    r"encoder\.layer\.(\d+)\.intermediate\.dense\.": r"layers.\1.mlp_in.",
    r"encoder\.layer\.(\d+)\.output\.dense\.": r"layers.\1.mlp_out.",
    r"encoder\.layer\.(\d+)\.output\.LayerNorm\.": r"layers.\1.mlp_norm.",
}
_UNUSED = re.compile(r"embeddings\.position_ids$|pooler\.")


def from_hf_keys(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A BertModel state dict under this module's names; a key it does not know is left as
    it is, so a strict load refuses it by name."""
    renamed = {}
    for key, tensor in tensors.items():
        if _UNUSED.match(key):
            continue
        for pattern, name in HF_KEYS.items():
            new, hits = re.subn(f"^{pattern}", name, key)
            if hits:
                key = new
                break
        renamed[key] = tensor
    return renamed


def load_bert(folder: str | os.PathLike, *, keep_mapped: bool = False) -> BertEncoder:
    """The BERT encoder of a Hugging Face folder (config.json + model.safetensors), in eval
    mode with no gradients. KEEP_MAPPED leaves the weights memory-mapped (only for a file
    never rewritten in place, like an installed wheel's: see build_with_weights): pages of
    the vocabulary no prompt uses are never read. Refuses (CheckpointError) another
    architecture, a missing file, and weights whose names or shapes do not match."""
    folder = Path(os.fspath(folder))
    try:
        config = BertConfig.from_hf(json.loads((folder / "config.json").read_text()))
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"'{folder}' has no readable BERT config.json ({e})") from None
    weights = from_hf_keys(load_weights(folder, widen=False))
    model = build_with_weights(lambda: BertEncoder(config), weights, keep_mapped=keep_mapped)
    return model.eval().requires_grad_(False)
