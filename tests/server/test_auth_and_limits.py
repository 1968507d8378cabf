"""API-key auth and per-client limits at their edges: schemes, key prefixes, exact Retry-After.

Found by mutation testing: the only wrong key the older tests used was ``"nope"``, so a
``startswith`` compare or a scheme-blind parser passed. Public behaviour only (HTTP and the
ASGI WebSocket handshake), so these hold whatever the middleware looks like inside.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from _server_helpers import AppClient, make_settings

from deep_tree_echo.server.app import create_app

KEY = "k1"
OTHER = "second-key"


@pytest.mark.parametrize(
    "authorization",
    [
        f"Basic {KEY}",  # wrong scheme
        f"Token {KEY}",
        f"Bearer{KEY}",  # no separator
        f"{KEY} Bearer",
        "Bearer k",  # a prefix of the key
        "Bearer k12",  # the key extended
        "Bearer K1",  # keys are case-sensitive
        "Bearer  ",  # blank token
        "Bearer",
        f"Bearer {KEY},{OTHER}",
        f"Bearer {OTHER[:-1]}",
    ],
)
async def test_near_miss_credentials_are_refused(app_client: AppClient, authorization: str) -> None:
    async with app_client(api_keys=f"{KEY},{OTHER}") as c:
        r = await c.get("/v1/memories/x", headers={"Authorization": authorization})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {
            "error": {"code": "unauthorized", "message": "missing or invalid API key"}
        }


@pytest.mark.parametrize("authorization", [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER {OTHER}"])
async def test_every_configured_key_works_and_the_scheme_is_case_insensitive(
    app_client: AppClient, authorization: str
) -> None:
    async with app_client(api_keys=f"{KEY},{OTHER}") as c:
        r = await c.get("/v1/memories/x", headers={"Authorization": authorization})
        assert r.status_code == 404  # authenticated: the memory just does not exist


async def test_an_empty_key_in_the_list_authenticates_nothing(app_client: AppClient) -> None:
    async with app_client(api_keys=f",{KEY},") as c:
        blank = {"Authorization": "Bearer "}
        assert (await c.get("/v1/memories/x", headers=blank)).status_code == 401
        assert (await c.get("/v1/memories/x")).status_code == 401
        ok = await c.get("/v1/memories/x", headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 404


async def test_exact_retry_after_for_the_rate_limit(app_client: AppClient) -> None:
    # 3 per 60 s: one permit every 20 s, so the fourth call is told to come back in 20 s.
    async with app_client(rate_limit_requests=3, rate_limit_window=60) as c:
        for _ in range(3):
            assert (await c.get("/v1/memories/x")).status_code == 404
        r = await c.get("/v1/memories/x")
        assert r.status_code == 429
        assert r.headers["retry-after"] == "20"
        assert r.json() == {
            "error": {"code": "rate_limited", "message": "too many requests; retry after 20s"}
        }


async def test_only_paths_under_v1_are_rate_limited(app_client: AppClient) -> None:
    async with app_client(rate_limit_requests=1, rate_limit_window=60) as c:
        assert (await c.get("/v1/memories/x")).status_code == 404
        assert (await c.get("/v1/memories/x")).status_code == 429
        for _ in range(3):
            assert (await c.get("/readyz")).status_code == 200
            assert (await c.get("/metrics")).status_code == 200


async def test_unauthenticated_callers_are_limited_per_address() -> None:
    app = create_app(make_settings(rate_limit_requests=1, rate_limit_window=60))

    def client(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app, client=(host, 4000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async with app.router.lifespan_context(app), client("10.0.0.1") as a, client("10.0.0.2") as b:
        assert (await a.get("/v1/memories/x")).status_code == 404
        assert (await a.get("/v1/memories/x")).status_code == 429
        assert (await b.get("/v1/memories/x")).status_code == 404


async def test_the_same_key_from_two_addresses_shares_one_bucket() -> None:
    app = create_app(make_settings(api_keys=KEY, rate_limit_requests=1, rate_limit_window=60))
    auth = {"Authorization": f"Bearer {KEY}"}

    def client(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app, client=(host, 4000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=auth)

    async with app.router.lifespan_context(app), client("10.0.0.1") as a, client("10.0.0.2") as b:
        assert (await a.get("/v1/memories/x")).status_code == 404
        assert (await b.get("/v1/memories/x")).status_code == 429


async def websocket_handshake(
    app: Any, query: bytes, headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    """Open ``/v1/ws`` on the ASGI app; return the first message after the accept."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "websocket.connect"})
    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "http_version": "1.1",
        "path": "/v1/ws", "raw_path": b"/v1/ws", "root_path": "", "query_string": query,
        "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80), "subprotocols": [], "state": {},
    }  # fmt: skip
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    try:
        accept = await outbox.get()
        assert accept["type"] == "websocket.accept"
        await inbox.put({"type": "websocket.receive", "text": json.dumps({"type": "ping"})})
        return await outbox.get()
    finally:
        await inbox.put({"type": "websocket.disconnect", "code": 1000})
        await task


@pytest.mark.parametrize(
    ("query", "headers", "accepted"),
    [
        (b"token=k1", [], True),
        (b"a=b&token=k1", [], True),
        (b"", [(b"authorization", b"Bearer k1")], True),
        (b"token=k", [], False),
        (b"token=", [], False),
        (b"tokens=k1", [], False),
        (b"", [(b"authorization", b"Basic k1")], False),
        (b"", [], False),
    ],
)
async def test_websocket_token_must_match_exactly(
    query: bytes, headers: list[tuple[bytes, bytes]], accepted: bool
) -> None:
    app = create_app(make_settings(api_keys=KEY))
    async with app.router.lifespan_context(app):
        first = await websocket_handshake(app, query, headers)
    if accepted:
        assert first["type"] == "websocket.send"
        assert json.loads(first["text"])["type"] == "pong"
    else:
        assert first == {"type": "websocket.close", "code": 1008, "reason": "unauthorized"}


async def test_websocket_over_the_rate_limit_is_closed_with_1013() -> None:
    app = create_app(make_settings(rate_limit_requests=1, rate_limit_window=60))
    async with app.router.lifespan_context(app):
        first = await websocket_handshake(app, b"", [])
        assert first["type"] == "websocket.send"
        second = await websocket_handshake(app, b"", [])
    assert second == {"type": "websocket.close", "code": 1013, "reason": "rate limited"}


def exact_body(size: int) -> bytes:
    """A JSON object body of exactly ``size`` bytes."""
    frame = b'{"content": ""}'
    return frame[:-2] + b"x" * (size - len(frame)) + frame[-2:]


@pytest.mark.parametrize("chunked", [False, True])
async def test_body_cap_admits_exactly_the_cap_and_refuses_one_byte_more(
    app_client: AppClient, chunked: bool
) -> None:
    async def stream(body: bytes) -> Any:
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    json_type = {"content-type": "application/json"}
    async with app_client(max_body_bytes=1000) as c:
        for size, status in ((1000, 201), (1001, 413)):
            body = exact_body(size)
            content: Any = stream(body) if chunked else body
            r = await c.put(f"/v1/memories/m{size}", content=content, headers=json_type)
            assert r.status_code == status, size
        assert r.json() == {
            "error": {"code": "payload_too_large", "message": "request body exceeds 1000 bytes"}
        }
        if not chunked:  # refused before reading: the connection is not reusable
            assert r.headers["connection"] == "close"


async def test_a_malformed_content_length_is_a_clear_400(app_client: AppClient) -> None:
    app = create_app(make_settings(max_body_bytes=1000))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
        "scheme": "http", "path": "/v1/memories/x", "raw_path": b"/v1/memories/x",
        "root_path": "", "query_string": b"", "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80), "state": {},
        "headers": [(b"host", b"testserver"), (b"content-length", b"ten")],
    }  # fmt: skip
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {
        "error": {"code": "bad_request", "message": "invalid Content-Length header"}
    }


async def test_callers_without_a_client_address_share_one_bucket() -> None:
    app = create_app(make_settings(rate_limit_requests=1, rate_limit_window=60))
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/v1/memories/x", "raw_path": b"/v1/memories/x",
        "root_path": "", "query_string": b"", "client": None, "server": ("testserver", 80),
        "headers": [(b"host", b"testserver")],
    }  # fmt: skip
    async with app.router.lifespan_context(app):
        for _ in range(2):
            await app({**scope, "state": {}}, receive, send)
    assert statuses == [404, 429]
