"""The studio's pages: server-rendered templates; the data comes from /api by plain
JavaScript (static/app.js), so a page is the same for every token and holds no secrets.

/docs is the API reference drawn on the server from the app's own OpenAPI spec: it needs
nothing from the network (FastAPI's Swagger and ReDoc pages load theirs from a CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

__all__ = ["api_reference", "login_page", "router"]

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


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    spec = request.app.openapi()
    info = spec.get("info", {})
    return templates.TemplateResponse(
        request, "docs.html", {"page": "docs", "info": info, "endpoints": api_reference(spec)}
    )


METHODS = ("get", "post", "put", "patch", "delete")


def api_reference(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The endpoints of an OpenAPI SPEC, flattened for a page: method, path, summary,
    description, parameters, body fields and responses, with every $ref resolved."""
    components = spec.get("components", {}).get("schemas", {})
    endpoints = []
    for path, operations in spec.get("paths", {}).items():
        for method in METHODS:
            op = operations.get(method)
            if op is None:
                continue
            params = [
                {
                    "name": p["name"],
                    "where": p.get("in", ""),
                    "required": p.get("required", False),
                    "type": describe_schema(p.get("schema", {}), components),
                    "description": p.get("description") or p.get("schema", {}).get("description", ""),
                }
                for p in op.get("parameters", [])
            ]
            body = None
            content = op.get("requestBody", {}).get("content", {})
            for media, spec_part in content.items():
                schema = _resolve(spec_part.get("schema", {}), components)
                required = set(schema.get("required", []))
                fields = [
                    {
                        "name": name,
                        "required": name in required,
                        "type": describe_schema(field, components),
                        "description": _resolve(field, components).get("description", ""),
                    }
                    for name, field in schema.get("properties", {}).items()
                ]
                body = {
                    "media": media,
                    "fields": fields,
                    "required": op["requestBody"].get("required", False),
                }
                break
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "anchor": f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", ""),
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "params": params,
                    "body": body,
                    "responses": [
                        (code, r.get("description", "")) for code, r in op.get("responses", {}).items()
                    ],
                }
            )
    return endpoints


def describe_schema(schema: dict[str, Any], components: dict[str, Any]) -> str:
    """A JSON schema in a few words: 'integer, 1..200', 'string or null, at most 20 chars'."""
    schema = _resolve(schema, components)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(describe_schema(s, components) for s in schema[key])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        kind = f"list of {describe_schema(schema.get('items', {}), components)}"
    if schema.get("format") == "binary" or schema.get("contentMediaType"):
        kind = "file"
    limits = []
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None or high is not None:
        left = "(" if "exclusiveMinimum" in schema else "["
        right = ")" if "exclusiveMaximum" in schema else "]"
        limits.append(f"{left}{'' if low is None else low}, {'' if high is None else high}{right}")
    for key, word in (("minLength", "at least {} chars"), ("maxLength", "at most {} chars")):
        if key in schema:
            limits.append(word.format(schema[key]))
    for key, word in (("minItems", "at least {} items"), ("maxItems", "at most {} items")):
        if key in schema:
            limits.append(word.format(schema[key]))
    if "default" in schema and schema["default"] is not None:
        limits.append(f"default {schema['default']!r}")
    return ", ".join([kind, *limits])


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 20:  # a bounded walk: a spec cannot loop the page
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        seen += 1
    return schema
