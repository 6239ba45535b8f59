"""kinema: text-to-video diffusion with temporal QA, watermarking and provenance."""

__version__ = "0.1.0"


def load(name_or_dir=None, device: str = "cpu"):
    """The text-to-video pipeline of the built-in model, or of a model folder."""
    from kinema.pipelines.loading import load as _load

    return _load(name_or_dir, device=device)
