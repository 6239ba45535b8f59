"""What made a clip's pixels: a trained model (watermarked, trainedAlgorithmicMedia) or a
procedure such as the world renderer (algorithmicMedia, unmarked)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """What made the pixels.

    A model's output is watermarked and declared trainedAlgorithmicMedia; a procedure's
    (the world renderer) is declared algorithmicMedia and left unmarked.
    """

    name: str
    model_hash: str | None = None
    trained: bool = True

    @property
    def source_type(self) -> str:
        return "trainedAlgorithmicMedia" if self.trained else "algorithmicMedia"


WORLD_RENDERER = Origin("kinema world renderer (WORLD.md v1)", trained=False)
