"""Pure ASGI middleware: request-body cap, API-key auth (tenant, role) and per-client rate limits.

Pure ASGI (not ``BaseHTTPMiddleware``) so bodies stream through untouched, nothing is
buffered, and WebSocket handshakes pass through the same checks.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deep_tree_echo._http import retry_after_seconds
from deep_tree_echo.resilience import RateLimiter
from deep_tree_echo.server._responses import send_error
from deep_tree_echo.server._routes import app_route_table, routes_for_path
from deep_tree_echo.server.errors import PayloadTooLargeError
from deep_tree_echo.server.principals import KeyRing, Principal, key_id
from deep_tree_echo.tenants import (
    DEFAULT_TENANT,
    TENANT_SCOPE_KEY,
    InvalidTenantError,
    validate_tenant,
)

__all__ = [
    "AUTH_KEY", "PRINCIPAL_KEY", "TENANT_KEY", "APIKeyAuthMiddleware", "BodyLimitMiddleware",
    "RateLimitMiddleware", "key_id",
]

logger = logging.getLogger("deep_tree_echo.server")

PRINCIPAL_KEY = "dte.principal"
"""Scope key set by :class:`APIKeyAuthMiddleware`: a stable, non-secret id of the caller's key."""
AUTH_KEY = "dte.auth"
"""Scope key set by :class:`APIKeyAuthMiddleware`: the caller's :class:`Principal`."""
TENANT_KEY = TENANT_SCOPE_KEY
"""Scope key: the tenant the request acts on (absent without auth middleware: ``default``)."""


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

    ``Content-Length`` above the cap is rejected before reading anything; a body framed by a
    ``Content-Length`` within the cap passes untouched (the HTTP server delivers exactly that
    many bytes, never more). A body without one (chunked) is counted as the app reads it and
    reading stops at the first chunk that passes the cap, so at most one chunk beyond the cap
    is ever held.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_error(send, 400, "bad_request", "invalid Content-Length header")
                return
            if declared > limit:
                await _send_too_large(send, limit)
                return
            await self.app(scope, receive, send)
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
            await _send_too_large(send, limit)


async def _send_too_large(send: Send, limit: int) -> None:
    exc = PayloadTooLargeError(f"request body exceeds {limit} bytes")
    await send_error(send, exc.http_status, exc.code, exc.message, [("Connection", "close")])


class APIKeyAuthMiddleware:
    """Authenticate the caller and decide what it may reach; record who and which tenant.

    Credentials: ``Authorization: Bearer <key>`` (WebSockets also ``?token=``); any other
    scheme counts as no credential. The rules, in order (public paths pass untouched):

    - under ``replica_prefix`` (peer replication), when a cluster key exists: only the
      cluster key; 401 without a credential (or a wrong one), 403 with a client key (without
      a cluster key the app has no replica routes: 404 like any unknown path);
    - elsewhere: a cluster key gets 403 (peers are not clients); a user or admin key passes;
      no (or a wrong) key gets 401 when client keys are configured, else passes as the
      ``default`` tenant (auth off);
    - the tenant is the key's own; an ``admin`` may name another with ``X-Echo-Tenant``
      (``?tenant=`` on WebSockets), a ``user`` naming another tenant gets 403.

    Sets ``scope["dte.principal"]`` (the key's id), ``scope["dte.auth"]`` (the
    :class:`Principal`) and ``scope["dte.tenant"]``. HTTP refusals are JSON with
    ``WWW-Authenticate: Bearer`` on 401 and are labelled with their route for the metrics;
    WebSocket refusals complete the handshake and close with 1008 (policy violation).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: Sequence[str] = (),
        public_paths: Collection[str] = (),
        keyring: KeyRing | None = None,
        app_of_routes: Any = None,
        replica_prefix: str = "/v1/replica/",
    ) -> None:
        self.app = app
        self.keyring = keyring if keyring is not None else KeyRing.from_settings(api_keys)
        self.public_paths = frozenset(public_paths)
        self.replica_prefix = replica_prefix
        self._routed_app = app_of_routes  # the app whose route table labels refusals

    @staticmethod
    def _credentials(scope: Scope) -> tuple[str | None, str | None]:
        """``(presented key, named tenant)`` from one pass over the headers (WebSockets: the
        ``token`` / ``tenant`` query parameters when the headers lack them)."""
        auth = named = None
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                if auth is None:
                    auth = bytes(value)
            elif key == b"x-echo-tenant" and named is None:
                named = bytes(value).decode("latin-1")
        presented: str | None = None
        if auth is not None:
            scheme, _, token = auth.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                presented = token  # another scheme (Basic ...) is not a credential here
        if scope["type"] == "websocket" and (auth is None or named is None):
            for name, value in _query(scope):
                if name == "token" and auth is None and presented is None and value:
                    presented = value
                elif name == "tenant" and named is None:
                    named = value
        return presented, named

    def _decide(self, scope: Scope) -> tuple[int, str, str] | None:
        """None to let the request through (scope annotated), else (status, code, message)."""
        presented, named = self._credentials(scope)
        principal = self.keyring.match(presented)
        if self.keyring.cluster_configured and scope["path"].startswith(self.replica_prefix):
            if principal is None:
                return 401, "unauthorized", "missing or invalid cluster key"
            if principal.role != "cluster":
                return 403, "forbidden", "replica routes accept only the cluster key"
            # a peer replicates every tenant's records
            try:
                tenant = DEFAULT_TENANT if named is None else validate_tenant(named)
            except InvalidTenantError as exc:
                return 400, exc.code, exc.message
            scope[PRINCIPAL_KEY] = principal.key_id
            scope[AUTH_KEY] = principal
            scope[TENANT_KEY] = tenant
            return None
        if principal is None:
            if self.keyring.clients_configured:
                return 401, "unauthorized", "missing or invalid API key"
            scope[TENANT_KEY] = DEFAULT_TENANT  # auth off: one tenant
            return None
        if principal.role == "cluster":
            return 403, "forbidden", "the cluster key is for replica routes only"
        tenant = principal.tenant
        if named is not None and named != tenant:
            if principal.role != "admin":
                return 403, "forbidden", "this key may act on its own tenant only"
            try:
                tenant = validate_tenant(named)
            except InvalidTenantError as exc:
                return 400, exc.code, exc.message
        scope[PRINCIPAL_KEY] = principal.key_id
        scope[AUTH_KEY] = principal
        scope[TENANT_KEY] = tenant
        return None

    def _label_route(self, scope: Scope) -> None:
        """Record the HTTP route a refused request was for (it never reached the router), so
        metrics count it under that route."""
        if self._routed_app is None:
            return
        matching = routes_for_path(app_route_table(self._routed_app), scope["path"])
        if matching:
            scope["route"] = matching[0].route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        self.keyring.refresh()  # a changed keys file takes effect without a restart
        if not self.keyring.clients_configured and not self.keyring.cluster_configured:
            # no credential configured: one tenant, nothing to check
            await self.app(scope, receive, send)
            return
        refusal = self._decide(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        if scope["type"] == "http":
            self._label_route(scope)
            headers = [("WWW-Authenticate", "Bearer")] if status == 401 else []
            await send_error(send, status, code, message, headers)
        else:
            await _reject_websocket(receive, send, 1008, code)


def _query(scope: Scope) -> list[tuple[str, str]]:
    query: str = bytes(scope.get("query_string", b"")).decode("latin-1")
    return parse_qsl(query)


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

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: Limiter | None,
        prefix: str = "/v1/",
        own_limits: bool = False,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.prefix = prefix
        #: Whether keys may carry their own limit (keys file): their limiters, made on first use
        #: and remade when the key's limit changes (the keys file is reloaded while running).
        self.own_limits = own_limits
        self._own: dict[str, tuple[tuple[int, float], Limiter]] = {}

    def _limiter_for(self, scope: Scope) -> Limiter | None:
        principal = scope.get(AUTH_KEY)
        if self.own_limits and isinstance(principal, Principal) and principal.rate_limit:
            known = self._own.get(principal.key_id)
            if known is not None and known[0] == principal.rate_limit:
                return known[1]
            requests, window = principal.rate_limit
            own = RateLimiter(requests, window, name=f"http-key-{principal.key_id}")
            self._own[principal.key_id] = (principal.rate_limit, own)
            return own
        return self.limiter

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
        limiter = self._limiter_for(scope)
        key = self.client_key(scope)
        if limiter is None:
            await self.app(scope, receive, send)
            return
        if type(limiter) is RateLimiter and limiter.backend is None:
            admitted = limiter.try_acquire(key)  # what acquire() does then, without a coroutine
        else:
            admitted = await limiter.acquire(key)
        if admitted:
            await self.app(scope, receive, send)
            return
        retry_after = retry_after_seconds(limiter.retry_after(key))
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
