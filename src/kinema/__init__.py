"""kinema: text-to-video diffusion with temporal QA, watermarking and provenance."""

__version__ = "0.1.0"
