"""kinema: text-to-video diffusion with temporal QA, watermarking and provenance."""

from kinema.version import __version__

__all__ = ["__version__", "load"]


def load(name_or_dir=None, device: str = "cpu", **load_options):
    """The built-in model (or a model folder) behind kinema's request layer.

    Its Videos are model output: watermarked, and their `save(path)` signs the file,
    writes its sidecar and enters it for review, exactly as `kinema generate` does for
    the same request (see kinema.render.handle). LOAD_OPTIONS: savers, int8.
    """
    from kinema.publish import attach
    from kinema.render.handle import Model

    return Model.load(name_or_dir, device, attach, **load_options)
