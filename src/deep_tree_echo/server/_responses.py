"""The one error body every route and middleware answers: `{"error": {"code", "message"}}`."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Send

from deep_tree_echo._http import error_body
from deep_tree_echo._json import COMPACT_ENCODER

JSON = "application/json"


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Answer a plain-ASGI HTTP request with the JSON error body (for middleware)."""
    body = COMPACT_ENCODER.encode(error_body(code, message)).encode()
    raw_headers = [
        (b"content-type", JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
