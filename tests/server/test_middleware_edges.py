"""The guards' middleware driven directly over ASGI: the paths the app's own handlers hide.

A FastAPI app turns a streamed body over the cap into its own 413 before the body-limit
middleware sees it, and the server always builds the auth middleware with its key ring and
route table; these tests give each middleware a bare ASGI app instead, so its fallbacks, its
defaults and its WebSocket credentials are checked on their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.exceptions import HTTPException

from deep_tree_echo.resilience import RateLimiter, RedisRateLimitBackend
from deep_tree_echo.server.middleware import (
    AUTH_KEY,
    PRINCIPAL_KEY,
    APIKeyAuthMiddleware,
    BodyLimitMiddleware,
    RateLimitMiddleware,
)
from deep_tree_echo.server.principals import KeyRing, Principal

Message = dict[str, Any]
KEY = "k-" + "u" * 30
CLUSTER = "c-" + "x" * 30


def http_scope(path: str = "/v1/things", headers: list[tuple[bytes, bytes]] | None = None,
               **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [],
            "query_string": b"", "client": ("10.0.0.7", 5000), **extra}


async def call(app: Callable[..., Awaitable[None]], scope: dict[str, Any],
               body: list[bytes] | None = None) -> list[Message]:
    """Run ``app`` on ``scope`` with ``body`` as its request chunks; what it sent."""
    chunks = list(body or [b""])
    sent: list[Message] = []

    async def receive() -> Message:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def status_of(sent: list[Message]) -> int:
    return int(sent[0]["status"])


def headers_of(sent: list[Message]) -> dict[str, str]:
    return {bytes(k).decode().lower(): bytes(v).decode() for k, v in sent[0]["headers"]}


async def read_then_answer(scope: Any, receive: Any, send: Any) -> None:
    """A bare app: reads the whole body, then answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


# -- body limit ---------------------------------------------------------------------------


async def test_a_streamed_body_over_the_cap_read_by_a_bare_app_gets_the_middlewares_413(
) -> None:
    limited = BodyLimitMiddleware(read_then_answer, max_bytes=10)
    sent = await call(limited, http_scope(), [b"x" * 6, b"y" * 6, b"z" * 6])
    assert status_of(sent) == 413
    assert headers_of(sent)["connection"] == "close"
    assert b'"payload_too_large"' in sent[1]["body"]
    assert b"request body exceeds 10 bytes" in sent[1]["body"]
    # within the cap the app answers itself
    assert (await call(limited, http_scope(), [b"x" * 6, b"y" * 4]))[1]["body"] == b"10"


async def test_a_scope_without_headers_has_no_declared_length() -> None:
    scope = http_scope()
    del scope["headers"]
    sent = await call(BodyLimitMiddleware(read_then_answer, max_bytes=10), scope, [b"x" * 4])
    assert (status_of(sent), sent[1]["body"]) == (200, b"4")


async def test_a_body_over_the_cap_after_the_response_started_is_raised_not_answered_twice(
) -> None:
    async def start_then_read(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            pass

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    chunks = [b"x" * 8, b"y" * 8]

    async def receive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    limited = BodyLimitMiddleware(start_then_read, max_bytes=10)
    with pytest.raises(HTTPException, match="413: request body exceeds 10 bytes"):
        await limited(http_scope(), receive, send)
    assert [m["type"] for m in sent] == ["http.response.start"]  # no second start


# -- auth -----------------------------------------------------------------------------------


async def passed(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


async def test_api_keys_alone_build_the_key_ring() -> None:
    auth = APIKeyAuthMiddleware(passed, api_keys=[KEY])
    assert status_of(await call(auth, http_scope(headers=bearer(KEY)))) == 204
    assert status_of(await call(auth, http_scope(headers=bearer("k-other")))) == 401


async def test_with_only_a_cluster_key_replica_routes_still_need_it() -> None:
    """No client keys: the client API is open (one tenant), the replica routes are not."""
    ring = KeyRing.from_settings((), cluster_key=CLUSTER)
    auth = APIKeyAuthMiddleware(passed, keyring=ring)
    refused = await call(auth, http_scope("/v1/replica/records"))
    assert status_of(refused) == 401
    assert headers_of(refused)["www-authenticate"] == "Bearer"
    assert status_of(await call(auth, http_scope("/v1/replica/records",
                                                  headers=bearer(CLUSTER)))) == 204
    scope = http_scope("/v1/things")
    assert status_of(await call(auth, scope)) == 204
    assert scope["dte.tenant"] == "default"


async def test_a_403_carries_no_bearer_challenge() -> None:
    ring = KeyRing.from_settings((KEY,), cluster_key=CLUSTER)
    auth = APIKeyAuthMiddleware(passed, keyring=ring)
    forbidden = await call(auth, http_scope("/v1/things", headers=bearer(CLUSTER)))
    assert status_of(forbidden) == 403
    assert "www-authenticate" not in headers_of(forbidden)
    assert status_of(await call(auth, http_scope("/v1/replica/x", headers=bearer(KEY)))) == 403


async def test_a_refusal_without_a_route_table_is_unlabelled() -> None:
    auth = APIKeyAuthMiddleware(passed, api_keys=[KEY])
    scope = http_scope("/v1/things")
    assert status_of(await call(auth, scope)) == 401
    assert "route" not in scope


def ws_scope(headers: list[tuple[bytes, bytes]], query: bytes) -> dict[str, Any]:
    return {"type": "websocket", "path": "/ws", "headers": headers, "query_string": query}


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        # a header credential and the tenant in the query
        (bearer(KEY), b"tenant=t2", (KEY, "t2")),
        # the token in the query and the tenant in a header
        ([(b"x-echo-tenant", b"t3")], f"token={KEY}".encode(), (KEY, "t3")),
        # both in headers: the query is not read
        ([*bearer(KEY), (b"x-echo-tenant", b"t4")], b"token=other&tenant=t9", (KEY, "t4")),
        # both in the query
        ([], f"token={KEY}&tenant=t5".encode(), (KEY, "t5")),
        # a header in another scheme still shadows the query token
        ([(b"authorization", b"Basic abc")], f"token={KEY}".encode(), (None, None)),
    ],
)
def test_websocket_credentials_come_from_headers_then_the_query(
    headers: list[tuple[bytes, bytes]], query: bytes, expected: tuple[str | None, str | None]
) -> None:
    assert APIKeyAuthMiddleware._credentials(ws_scope(headers, query)) == expected


def test_http_credentials_never_come_from_the_query() -> None:
    scope = http_scope(headers=[], query_string=f"token={KEY}&tenant=t1".encode())
    assert APIKeyAuthMiddleware._credentials(scope) == (None, None)


# -- rate limit -------------------------------------------------------------------------------


class CountingLimiter:
    """A limiter of the ``Limiter`` protocol only (no ``backend``, no ``try_acquire``)."""

    def __init__(self, admit: bool) -> None:
        self.admit = admit
        self.keys: list[str] = []

    async def acquire(self, key: str) -> bool:
        self.keys.append(key)
        return self.admit

    def retry_after(self, key: str) -> float:
        return 7.2


async def test_a_limiter_of_the_protocol_only_is_awaited_with_the_clients_key() -> None:
    admitting = CountingLimiter(admit=True)
    limited = RateLimitMiddleware(read_then_answer, limiter=admitting)
    sent = await call(limited, http_scope(**{PRINCIPAL_KEY: "kid1"}), [b"abc"])
    assert status_of(sent) == 200 and sent[1]["body"] == b"3"
    refusing = CountingLimiter(admit=False)
    sent = await call(RateLimitMiddleware(read_then_answer, limiter=refusing), http_scope())
    assert status_of(sent) == 429
    assert headers_of(sent)["retry-after"] == "8"
    assert (admitting.keys, refusing.keys) == (["key:kid1"], ["addr:10.0.0.7"])


async def test_without_a_limiter_the_request_and_its_body_pass() -> None:
    limited = RateLimitMiddleware(read_then_answer, limiter=None)
    assert (await call(limited, http_scope(), [b"abcd"]))[1]["body"] == b"4"


async def test_own_key_limits_apply_only_when_enabled_and_are_named_for_the_key() -> None:
    principal = Principal(key_id="kid9", tenant="t", role="user", rate_limit=(1, 60.0))
    shared = RateLimiter(100, 60.0, name="shared")

    def scope() -> dict[str, Any]:
        return http_scope(**{AUTH_KEY: principal, PRINCIPAL_KEY: "kid9"})

    default = RateLimitMiddleware(passed, limiter=shared)  # own_limits off by default
    assert [status_of(await call(default, scope())) for _ in range(2)] == [204, 204]
    own = RateLimitMiddleware(passed, limiter=shared, own_limits=True)
    assert [status_of(await call(own, scope())) for _ in range(2)] == [204, 429]
    assert own._limiter_for(scope()).name == "http-key-kid9"  # type: ignore[attr-defined]


async def test_a_limiter_with_a_shared_backend_is_asked_through_it(redis_url: str) -> None:
    """Two workers' middlewares over one Redis: one limit, not one each."""
    backends = [RedisRateLimitBackend(redis_url), RedisRateLimitBackend(redis_url)]
    try:
        workers = [RateLimitMiddleware(passed, limiter=RateLimiter(1, 60.0, backend=b))
                   for b in backends]
        assert status_of(await call(workers[0], http_scope())) == 204
        assert status_of(await call(workers[1], http_scope())) == 429
    finally:
        for backend in backends:
            await backend.aclose()
