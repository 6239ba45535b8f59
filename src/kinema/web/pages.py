"""The studio's pages: server-rendered templates; the data comes from /api by plain
JavaScript (static/app.js), so a page is the same for every token and holds no secrets."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

__all__ = ["login_page", "router"]

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)

PAGES = {"/": "studio", "/compare": "compare", "/review": "review", "/verify": "verify"}


def _page(name: str):
    def show(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, f"{name}.html", {"page": name})

    show.__name__ = f"page_{name}"
    return show


for _path, _name in PAGES.items():
    router.add_api_route(_path, _page(_name), methods=["GET"], response_class=HTMLResponse)


def login_page(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    """The one page shown without a token: paste a token, or follow the printed URL."""
    return templates.TemplateResponse(
        request, "login.html", {"page": "login", "error": error}, status_code=status
    )
