"""HTTP answer helpers shared by the server and the integration gateway (no framework imports).

Every error leaves as ``{"error": {"code", "message"[, "details"]}}``; errors that carry a
``retry_after`` (open circuits, rate limits) also get a ``Retry-After`` header.
"""

from __future__ import annotations

import math
from typing import Any

from deep_tree_echo.errors import EchoError


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON error document; ``details`` is included only when non-empty."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def retry_after_seconds(seconds: float) -> int:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))


def retry_after_header(exc: EchoError) -> dict[str, str]:
    """``{"Retry-After": ...}`` when ``exc`` says when to retry, else empty."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        return {"Retry-After": str(retry_after_seconds(retry_after))}
    return {}
