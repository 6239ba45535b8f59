"""The web studio: `create_app` makes the FastAPI app (API under /api, pages, tokens)."""

from kinema.web.app import Limits, create_app

__all__ = ["Limits", "create_app"]
