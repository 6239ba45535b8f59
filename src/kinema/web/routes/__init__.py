"""The studio's routes, one APIRouter per resource; `ROUTERS` is the order the app
includes them in (it is the order of the OpenAPI spec and of the /docs page)."""

from kinema.web import pages
from kinema.web.routes import adapters, auth, health, jobs, review, uploads, verify

__all__ = ["ROUTERS"]

ROUTERS = (
    auth.router,
    uploads.router,
    jobs.router,
    adapters.router,
    verify.router,
    review.router,
    health.router,
    pages.router,
)
