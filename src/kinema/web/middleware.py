"""What every request passes before a route: the guard and the security headers, and the
InputError handler that turns a library refusal into a 400.

    headers (outermost: every answer, refusals included)
      └─ guard: path check (400) ─► token (401 / login redirect) ─► same-site writes (403)
                ─► declared size (413) ─► rate limit (429) ─► request.state.token
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from kinema.errors import InputError
from kinema.web.context import WebContext
from kinema.web.tokens import Token, TokenStore

__all__ = ["COOKIE", "CSP", "WRITE_HEADER", "error", "install"]

COOKIE = "kinema_token"
WRITE_HEADER = "x-kinema"  # pages send it on writes; another site's form cannot
CSP = "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; frame-ancestors 'none'; form-action 'self'"


def install(app: FastAPI) -> None:
    """Add the guard, the security headers and the InputError handler to APP (whose
    state holds its WebContext). The last middleware added runs first: headers wrap all."""
    app.middleware("http")(guard)
    app.middleware("http")(security_headers)
    app.exception_handler(InputError)(input_error)


async def guard(request: Request, call_next):
    """Refuse bad paths, missing tokens, cookie writes without the page header, bodies
    over the upload limit and requests over the rate; else record the request's token."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    if _bad_path(raw, request.url.path):
        return error(400, "bad path: '..', encoded slashes and backslashes are refused")
    path = request.url.path
    if path == "/login" or path.startswith("/static/") or path == "/favicon.ico":
        return await call_next(request)
    context: WebContext = request.app.state.context
    token, via_cookie = _token(request, context.tokens)
    if token is None:
        if path.startswith("/api") or path == "/openapi.json":
            return error(401, "a token is needed: 'Authorization: Bearer <token>' or visit /login")
        return RedirectResponse("/login", status_code=303)
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    if write and via_cookie and request.headers.get(WRITE_HEADER) != "1":
        return error(403, f"writes from a page need the '{WRITE_HEADER}: 1' header")
    length = request.headers.get("content-length")
    upload_bytes = context.limits.upload_bytes
    if length and (not length.isdigit() or int(length) > upload_bytes + (1 << 16)):
        return error(413, f"request too large: at most {upload_bytes} bytes")
    wait = context.limiter.take(token.id, write)
    if wait:
        return error(429, "too many requests; slow down", {"Retry-After": str(max(1, round(wait)))})
    request.state.token = token
    return await call_next(request)


async def security_headers(request: Request, call_next):
    """Answer with no sniffing, no referrer (login URLs carry a token), no framing, and
    the content security policy."""
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response


async def input_error(request: Request, exc: InputError) -> JSONResponse:
    """A library refusal (bad input) is the request's fault: 400 with its one line."""
    return error(400, str(exc))


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A refusal in the API's one shape: {"detail": MESSAGE}."""
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _bad_path(raw: bytes, path: str) -> bool:
    lowered = raw.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"\\" in lowered or b"%00" in lowered:
        return True
    segments = [s for s in path.split("/")] + [s for s in lowered.decode("latin-1").split("/")]
    return any(s in ("..", ".", "%2e%2e", ".%2e", "%2e.", "%2e") for s in segments)


def _token(request: Request, tokens: TokenStore) -> tuple[Token | None, bool]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return tokens.check(header[7:].strip()), False
    cookie = request.cookies.get(COOKIE)
    return (tokens.check(cookie), True) if cookie else (None, False)
