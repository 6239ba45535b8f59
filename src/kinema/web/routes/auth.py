"""Signing in and out of the pages (the token travels in an HttpOnly cookie), and /api/me:
who the token is, the limits, and the model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from kinema.web.context import Caller, Context
from kinema.web.middleware import COOKIE
from kinema.web.pages import login_page

__all__ = ["router"]

router = APIRouter()


@router.get("/login", include_in_schema=False)
def login(request: Request, ctx: Context, token: str | None = None):
    """The login page; with a valid TOKEN, set the cookie and go to the studio."""
    if token is None:
        return login_page(request)
    if ctx.tokens.check(token) is None:
        return login_page(request, "that token is not valid (revoked or mistyped)", 401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=30 * 24 * 3600,
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout():
    """Forget the cookie and go back to the login page."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/api/me")
def me(ctx: Context, caller: Caller) -> dict[str, Any]:
    """The token this request carries (its id owns the jobs), the limits, and the
    model: its name, the modes it serves and its defaults."""
    return {
        "token": {"id": caller.id, "name": caller.name},
        "limits": ctx.limits.__dict__,
        "model": ctx.facts.summary(),
    }
