"""Measure the prompt reader (kinema.render.reading) as the issue asks: accuracy on 50
held-out paraphrases (kinema.world.paraphrase.paraphrase_set), 50 canonical seen prompts
and 50 train-split paraphrases; warnings on the tests' 20 out-of-world prompts and on
none of the canonical ones; what each held-out word is read as; and the cost per prompt,
cold (the first word the lexicon lacks loads MiniLM and embeds the lexicon) and warm.

    PYTHONPATH=src python tools/reader_measure.py
"""

from __future__ import annotations

import time

import numpy as np

from kinema.world.dataset import validation_split
from kinema.world.grammar import parse
from kinema.world.paraphrase import all_wordings, paraphrase, paraphrase_set


def _timed(read, prompts: list[str]) -> tuple[list, float]:
    start = time.perf_counter()
    readings = [read(p) for p in prompts]
    return readings, (time.perf_counter() - start) * 1000 / len(prompts)


def main() -> None:
    start = time.perf_counter()
    from kinema.render.reading import read_prompt, vocabulary
    from kinema.world.reading import FUNCTION_WORDS, LEXICON, THRESHOLDS, derived_meaning, words_of

    print(f"import: {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    read_prompt("a scarlet ball glides left on black")
    print(
        f"cold first reading with a word the lexicon lacks (MiniLM load + lexicon embedding): "
        f"{time.perf_counter() - start:.2f} s"
    )

    seen = [(p, p) for p, _ in validation_split(50)]
    rng = np.random.default_rng(1)
    train = [(paraphrase(parse(p), rng, "train"), p) for p, _ in validation_split(50, seed=7)]
    held = [(t, c) for t, c, _ in paraphrase_set(50)]
    for name, items in (
        ("canonical seen", seen),
        ("train paraphrases", train),
        ("held-out paraphrases", held),
    ):
        readings, ms = _timed(read_prompt, [t for t, _ in items])
        right = sum(r.understood == c for r, (_, c) in zip(readings, items, strict=True))
        warned = sum(bool(r.warnings) for r in readings)
        print(f"{name:22s} {right}/{len(items)} read right, {warned} warned, {ms:.2f} ms a prompt (warm)")

    from tests.test_reading import OUT_OF_WORLD

    readings, ms = _timed(read_prompt, OUT_OF_WORLD)
    print(
        f"out-of-world prompts   {sum(bool(r.warnings) for r in readings)}/{len(OUT_OF_WORLD)} warned, "
        f"{ms:.2f} ms a prompt"
    )

    words = vocabulary()
    print("held-out words (right / read as):")
    for meaning, wordings in all_wordings("held_out").items():
        if meaning.startswith("template"):
            continue
        for wording in wordings:
            for word in words_of(wording):
                if word in LEXICON or word in FUNCTION_WORDS:
                    continue
                derived = derived_meaning(word)
                if derived is not None:
                    print(f"  {word:12s} {meaning:22s} suffix  -> {derived}")
                    continue
                best, similarity = words.nearest([word])[word][0]
                accepted = similarity >= THRESHOLDS[best.split(":")[0]]
                print(
                    f"  {word:12s} {meaning:22s} nearest -> {best} ({similarity:.2f}{'' if accepted else ', too far'})"
                )


if __name__ == "__main__":
    main()
