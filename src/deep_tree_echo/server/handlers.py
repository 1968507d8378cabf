"""Exception handlers: every error leaves the server as ``{"error": {"code", "message"}}``.

The one place errors become HTTP: :func:`status_for` and :func:`error_response` (also used by
``POST /v1/process``, whose router may be mounted on an app without these handlers).
Mapping: an :class:`EchoError` → the ``http_status`` its class declares (invalid input 400,
store/engine/"not initialised" 503, open circuits 503 and rate limits 429, both with
``Retry-After``); request validation → 422 naming the field; ``HTTPException`` → its status;
anything else → 500, logged with its traceback.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deep_tree_echo._http import error_body, retry_after_header
from deep_tree_echo.errors import EchoError
from deep_tree_echo.server._routes import app_route_table, routes_for_path

logger = logging.getLogger("deep_tree_echo.server")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


def status_for(exc: EchoError) -> int:
    """The HTTP status an :class:`EchoError` maps to: the ``http_status`` its class declares."""
    return exc.http_status if 400 <= exc.http_status <= 599 else 500


def error_response(exc: EchoError, where: str = "request") -> JSONResponse:
    """The JSON error answer for ``exc``: its status, ``Retry-After`` when it says when.

    Details go out only for client errors; a 500's message is hidden (and logged).
    """
    status = status_for(exc)
    if status >= 500:
        logger.error("%s failed: %s", where, exc, exc_info=exc)
    details = exc.details if status < 500 else None
    message = exc.message if status < 500 or status == 503 else "internal server error"
    return JSONResponse(
        error_body(exc.code, message, _json_safe(details)),
        status_code=status,
        headers=retry_after_header(exc),
    )


async def echo_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EchoError)
    return error_response(exc, f"{request.method} {request.url.path}")


def _json_safe(details: dict[str, Any] | None) -> dict[str, Any] | None:
    if not details:
        return None
    safe = (str, int, float, bool, type(None))
    return {k: (v if isinstance(v, safe) else str(v)) for k, v in details.items()}


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        where, rest = parts[0], parts[1:]
        return f"{where}.{'.'.join(rest)}" if rest else where
    return ".".join(parts)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    fields = [
        {"field": _field_name(err.get("loc", ())), "message": str(err.get("msg", "invalid"))}
        for err in errors
    ]
    if fields:
        first = fields[0]
        message = f"{first['field']}: {first['message']}"
        if len(fields) > 1:
            message += f" (and {len(fields) - 1} more)"
    else:
        message = "request validation failed"
    return JSONResponse(
        error_body("validation_error", message, {"fields": fields}), status_code=422
    )


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error")
    if isinstance(exc.detail, str) and exc.detail:
        message = exc.detail
    else:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "error"
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for entry in routes_for_path(app_route_table(request.app), request.url.path):
        methods |= entry.methods
    return ", ".join(sorted(methods - {"HEAD"}))  # HEAD is not served by the API routes


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_exception_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    app.add_exception_handler(EchoError, echo_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
