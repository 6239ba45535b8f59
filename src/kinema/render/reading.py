"""Prompt reading for the built-in shapes-world model: which requests are read, and the
text encoder that reads the words the lexicon does not hold.

kinema.world.reading does the reading; here it is given MiniLM's sentence embedding
(mean of the token states, unit length: how all-MiniLM-L6-v2 embeds a sentence) from
the very encoder instance the pipeline conditions on, so a generate pays for it once.
A canonical prompt, or one in lexicon words only, never touches the encoder; the
lexicon's embeddings are computed once per process, at the first word it lacks.

Only kinema's own shapes-world models are read (model.json's "world": "shapes-v1");
diffusers backends and other models take prompts as typed, and so does a request with
`literal`. A control or reference supplies parts of the scene, which the reader never
fills in; an adapter's caption words are never replaced (until adapters name their
caption words, every typed word of a request with adapters is kept).
"""

from __future__ import annotations

import threading

import numpy as np

from kinema.pipelines.facts import ModelFacts
from kinema.render.request import ClipRequest
from kinema.world.reading import Reading, Vocabulary, read, words_of

WORLD = "shapes-v1"  # the world the reader knows (WORLD.md v1)
_LOCK = threading.Lock()
_READING = threading.Lock()  # the vocabulary's caches and the encoder serve one reading at a time
_VOCABULARY: Vocabulary | None = None


def minilm_embed(texts: list[str]) -> np.ndarray:
    """Sentence embeddings of TEXTS, (n, 384) float32 unit vectors, from the MiniLM
    encoder the built-in pipeline shares (loaded on first use)."""
    import torch

    from kinema.pipelines.loading import _text_encoder, builtin_folder

    encoder = _text_encoder("minilm", builtin_folder(), "cpu")
    # a few short words: one thread does it in milliseconds, where the thread pool's
    # hand-offs cost tens of times more on a busy CPU (measured: 17 ms against 114-889 ms)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tokens, mask = encoder.encode_many(list(texts))
    finally:
        torch.set_num_threads(threads)
    weights = mask.float().unsqueeze(-1)
    pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()


def vocabulary() -> Vocabulary:
    """The process's one Vocabulary over MiniLM (its embeddings made lazily, once)."""
    global _VOCABULARY
    with _LOCK:
        if _VOCABULARY is None:
            _VOCABULARY = Vocabulary(minilm_embed)
        return _VOCABULARY


def reads_prompts(facts: ModelFacts) -> bool:
    """True for kinema's own models of the shapes world, whose prompts are read."""
    return facts.known and facts.own and facts.world == WORLD


def supplied_slots(request: ClipRequest) -> frozenset[str]:
    """The parts of the scene a request's control or reference gives (WORLD.md: a path
    gives the motion, a control clip the motion and extent, a reference colour and shape)."""
    slots: set[str] = set()
    if request.path is not None:
        slots.add("motion")
    if request.control is not None:
        slots |= {"motion", "size"}
    if request.reference is not None:
        slots |= {"colour", "shape"}
    return frozenset(slots)


def read_prompt(
    prompt: str, *, keep_words: frozenset[str] | set[str] = frozenset(), supplied=frozenset()
) -> Reading:
    """PROMPT read into the world's canonical form with MiniLM for unknown words
    (kinema.world.reading.read: KEEP_WORDS never replaced, SUPPLIED slots never filled)."""
    words = vocabulary()
    with _READING:
        return read(prompt, words, keep_words=keep_words, supplied=supplied)


def read_request(request: ClipRequest, facts: ModelFacts) -> Reading | None:
    """The reading of REQUEST's prompt, or None when it goes to the model as typed (not a
    shapes-world model, or `literal`)."""
    if request.literal or not reads_prompts(facts):
        return None
    keep = frozenset(words_of(request.prompt)) if request.adapters else frozenset()
    return read_prompt(request.prompt, keep_words=keep, supplied=supplied_slots(request))
