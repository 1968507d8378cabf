"""``GET /console``: the bundled single-page web console (``/`` redirects to it).

The page and its modules hold no data, so they are served without a key; every call the
console makes goes through the API's auth. Only the files shipped in ``server/console`` are
served (a fixed list, no path lookups), each with a strict Content-Security-Policy: no
inline scripts or styles, nothing from other origins.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

router = APIRouter(include_in_schema=False)

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ROOT = files("deep_tree_echo.server") / "console"
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def content_security_policy(host: str | None) -> str:
    """The policy, with this host's WebSocket URLs spelled out for browsers whose ``'self'``
    does not cover ``ws:``/``wss:`` (CSP level 3 says it should)."""
    if host is None or not _HOST.fullmatch(host):
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(
        "connect-src 'self'", f"connect-src 'self' ws://{host} wss://{host}"
    )


def _assets() -> dict[str, str]:
    """URL name -> media type of every shippable file under ``server/console`` (two levels)."""
    found: dict[str, str] = {}
    for entry in _ROOT.iterdir():
        entries = [(entry.name, entry)]
        if entry.is_dir():
            entries = [(f"{entry.name}/{sub.name}", sub) for sub in entry.iterdir()]
        for name, item in entries:
            suffix = name[name.rfind("."):] if "." in name else ""
            if item.is_file() and suffix in _TYPES:
                found[name] = _TYPES[suffix]
    return found


ASSETS: Final = _assets()


def console_paths() -> tuple[str, ...]:
    """Every path this router answers (the auth middleware lets them through unauthenticated)."""
    return ("/", "/console", *(f"/console/{name}" for name in ASSETS))


def _serve(name: str, request: Request) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such console file")
    body = (_ROOT / name).read_bytes()
    csp = content_security_policy(request.headers.get("host"))
    return Response(
        body, media_type=media_type,
        headers={**SECURITY_HEADERS, "Content-Security-Policy": csp},
    )


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=307)


@router.get("/console")
async def console(request: Request) -> Response:
    return _serve("index.html", request)


@router.get("/console/{name:path}")
async def console_asset(name: str, request: Request) -> Response:
    return _serve(name, request)
