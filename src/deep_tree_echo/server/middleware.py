"""Pure ASGI middleware: request-body cap, API-key auth and per-client rate limiting.

Pure ASGI (not ``BaseHTTPMiddleware``) so bodies stream through untouched, nothing is
buffered, and WebSocket handshakes pass through the same checks.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Collection, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deep_tree_echo._http import retry_after_seconds
from deep_tree_echo.server._responses import send_error
from deep_tree_echo.server.errors import PayloadTooLargeError

logger = logging.getLogger("deep_tree_echo.server")

PRINCIPAL_KEY = "dte.principal"
"""Scope key set by :class:`APIKeyAuthMiddleware`: a stable, non-secret id of the caller's key."""


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes the cap (FastAPI re-raises it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(PayloadTooLargeError.http_status, f"request body exceeds {limit} bytes")
        self.limit = limit


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class BodyLimitMiddleware:
    """Answer 413 when a request body is larger than ``max_bytes``.

    ``Content-Length`` above the cap is rejected before reading anything; otherwise the
    streamed chunks are counted as the app reads them and reading stops at the first chunk
    that passes the cap, so at most one chunk beyond the cap is ever held.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        too_large = PayloadTooLargeError(f"request body exceeds {limit} bytes")
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_error(send, 400, "bad_request", "invalid Content-Length header")
                return
            if declared > limit:
                await _send_too_large(send, too_large)
                return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _send_too_large(send, too_large)


async def _send_too_large(send: Send, exc: PayloadTooLargeError) -> None:
    await send_error(send, exc.http_status, exc.code, exc.message, [("Connection", "close")])


def key_id(key: str) -> str:
    """A short, non-reversible id for an API key (for rate-limit buckets and logs)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class APIKeyAuthMiddleware:
    """Require ``Authorization: Bearer <key>`` (or ``?token=`` on WebSockets) on every path
    except ``public_paths``; keys are compared in constant time.

    HTTP failures get 401 JSON with ``WWW-Authenticate: Bearer``; WebSocket failures are
    accepted and immediately closed with code 1008 (policy violation).
    """

    def __init__(
        self, app: ASGIApp, *, api_keys: Sequence[str], public_paths: Collection[str] = ()
    ) -> None:
        self.app = app
        self._keys = [k.encode() for k in api_keys if k]
        self._ids = {key: key_id(key.decode()) for key in self._keys}  # hashed once, not per call
        self.public_paths = frozenset(public_paths)

    def _match(self, presented: str | None) -> str | None:
        if presented is None:
            return None
        given = presented.encode()
        found: bytes | None = None
        for key in self._keys:  # no early exit: time does not depend on which key matched
            if hmac.compare_digest(given, key):
                found = key
        return None if found is None else self._ids[found]

    @staticmethod
    def _presented(scope: Scope) -> str | None:
        auth = _header(scope, b"authorization")
        if auth is not None:
            scheme, _, token = auth.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        if scope["type"] == "websocket":
            query: str = bytes(scope.get("query_string", b"")).decode("latin-1")
            for name, value in parse_qsl(query):
                if name == "token" and value:
                    return value
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._keys:
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        principal = self._match(self._presented(scope))
        if principal is not None:
            scope[PRINCIPAL_KEY] = principal
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            await send_error(
                send,
                401,
                "unauthorized",
                "missing or invalid API key",
                [("WWW-Authenticate", "Bearer")],
            )
        else:
            await _reject_websocket(receive, send, 1008, "unauthorized")


async def _reject_websocket(receive: Receive, send: Send, code: int, reason: str) -> None:
    """Complete the handshake and close with ``code``, so the client sees the close code."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason})


class Limiter(Protocol):
    """What :class:`RateLimitMiddleware` needs of ``deep_tree_echo.resilience.RateLimiter``."""

    async def acquire(self, key: str) -> bool: ...

    def retry_after(self, key: str) -> float: ...


class RateLimitMiddleware:
    """Per-client rate limit on paths under ``prefix``: by API key when authenticated, else by
    client address. Over the limit: 429 JSON with ``Retry-After`` (WebSockets: close 1013)."""

    def __init__(self, app: ASGIApp, *, limiter: Limiter, prefix: str = "/v1/") -> None:
        self.app = app
        self.limiter = limiter
        self.prefix = prefix

    @staticmethod
    def client_key(scope: Scope) -> str:
        principal = scope.get(PRINCIPAL_KEY)
        if principal:
            return f"key:{principal}"
        client: Any = scope.get("client")
        host = client[0] if client else "unknown"
        return f"addr:{host}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        key = self.client_key(scope)
        if await self.limiter.acquire(key):
            await self.app(scope, receive, send)
            return
        retry_after = retry_after_seconds(self.limiter.retry_after(key))
        if scope["type"] == "http":
            await send_error(
                send,
                429,
                "rate_limited",
                f"too many requests; retry after {retry_after}s",
                [("Retry-After", str(retry_after))],
            )
        else:
            await _reject_websocket(receive, send, 1013, "rate limited")
