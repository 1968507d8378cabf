"""Auth, the request-body cap and the per-client rate limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

from _server_helpers import AppClient

KEY = "k-" + "s" * 30


async def test_auth_required_except_health(app_client: AppClient) -> None:
    async with app_client(api_keys=f"other,{KEY}") as c:
        for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):  # docs: public
            assert (await c.get(path)).status_code == 200
        for method, path in (
            ("GET", "/v1/memories/x"),
            ("PUT", "/v1/memories/x"),
            ("POST", "/v1/process"),
            ("GET", "/metrics"),
            ("GET", "/v1/export/memories"),
        ):
            r = await c.request(method, path, json={"a": 1})
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "unauthorized"
        bad = {"Authorization": "Bearer nope"}
        assert (await c.get("/v1/memories/x", headers=bad)).status_code == 401
        assert (await c.get("/v1/memories/x", headers={"Authorization": KEY})).status_code == 401
        # the query-string token is for WebSockets only
        assert (await c.get(f"/v1/memories/x?token={KEY}")).status_code == 401
        good = {"Authorization": f"Bearer {KEY}"}
        r = await c.put("/v1/memories/x", json={"a": 1}, headers=good)
        assert r.status_code == 201
        assert (await c.get("/v1/memories/x", headers=good)).json()["data"] == {"a": 1}
        assert (await c.get("/metrics", headers=good)).status_code == 200


async def test_metrics_public_when_configured(app_client: AppClient) -> None:
    async with app_client(api_keys=KEY, metrics_public=True) as c:
        assert (await c.get("/metrics")).status_code == 200
        assert (await c.get("/v1/memories/x")).status_code == 401


async def test_body_over_cap_with_content_length_is_413(app_client: AppClient) -> None:
    async with app_client(max_body_bytes=1000) as c:
        r = await c.put("/v1/memories/big", json={"content": "x" * 2000})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"
        assert (await c.get("/v1/memories/big")).status_code == 404
        r = await c.put("/v1/memories/small", json={"content": "x" * 900})
        assert r.status_code == 201


async def test_chunked_body_over_cap_is_413_and_not_read_to_the_end(
    app_client: AppClient,
) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'{"content": "'
        for _ in range(1000):  # 1000 x 100 bytes, far over the 1000-byte cap
            pulled += 1
            yield b"x" * 100
        yield b'"}'

    async with app_client(max_body_bytes=1000) as c:
        r = await c.put(
            "/v1/memories/chunked",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"
        assert (await c.get("/v1/memories/chunked")).status_code == 404
    assert "content-length" not in r.request.headers
    assert pulled < 1000  # the server stopped reading at the cap


async def test_process_route_is_capped_too(app_client: AppClient) -> None:
    async with app_client(max_body_bytes=500) as c:
        r = await c.post("/v1/process", json={"data": "y" * 1000})
        assert r.status_code == 413


async def test_rate_limit_429_with_retry_after(app_client: AppClient) -> None:
    async with app_client(rate_limit_requests=3, rate_limit_window=60) as c:
        for _ in range(3):
            assert (await c.get("/v1/memories/x")).status_code == 404
        r = await c.get("/v1/memories/x")
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        # health is not rate limited
        assert (await c.get("/healthz")).status_code == 200


async def test_rate_limit_is_per_api_key(app_client: AppClient) -> None:
    async with app_client(api_keys="alpha,beta", rate_limit_requests=2) as c:
        alpha = {"Authorization": "Bearer alpha"}
        beta = {"Authorization": "Bearer beta"}
        for _ in range(2):
            assert (await c.get("/v1/memories/x", headers=alpha)).status_code == 404
        assert (await c.get("/v1/memories/x", headers=alpha)).status_code == 429
        assert (await c.get("/v1/memories/x", headers=beta)).status_code == 404


async def test_rate_limit_zero_disables(app_client: AppClient) -> None:
    async with app_client(rate_limit_requests=0) as c:
        for _ in range(20):
            assert (await c.get("/v1/memories/x")).status_code == 404
