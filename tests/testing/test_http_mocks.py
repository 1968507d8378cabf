"""HTTP-level mocks of external APIs: routes, sequences, errors, assertions, no network."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from respx.models import AllMockedAssertionError

from deep_tree_echo.resilience import APIServerError, ResilientAPIIntegration
from deep_tree_echo.testing import (
    HTTPMock,
    IntegrationTestFramework,
    MockExhaustedError,
    MockVerificationError,
)

BASE = "https://api.example.test"


async def test_routes_answer_with_declared_json_and_record_calls() -> None:
    api = HTTPMock(BASE, {"POST /v1/x": {"id": "x1"}, "GET /v1/x": (404, {"error": "nope"})})
    with api:
        async with httpx.AsyncClient(base_url=BASE) as client:
            created = await client.post("/v1/x", json={"name": "a"})
            missing = await client.get("/v1/x")
    assert created.status_code == 200 and created.json() == {"id": "x1"}
    assert missing.status_code == 404 and missing.json() == {"error": "nope"}

    api.assert_called("POST /v1/x", times=1)
    assert api["POST /v1/x"].call_count == 1  # calls stay recorded after the block
    assert api.json_bodies("POST /v1/x") == [{"name": "a"}]
    assert api.requests("GET /v1/x")[0].method == "GET"


async def test_base_url_with_a_path_prefix() -> None:
    with HTTPMock(f"{BASE}/api", {"GET /items": {"items": []}}) as api:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{BASE}/api/items")
    assert response.json() == {"items": []}
    api.assert_called("GET /items")


async def test_list_of_responses_is_a_sequence_and_runs_out_loudly() -> None:
    api = HTTPMock(BASE, {"GET /poll": [503, {"state": "pending"}, {"state": "done"}]})
    async with api, httpx.AsyncClient(base_url=BASE) as client:
        statuses = [(await client.get("/poll")).status_code for _ in range(3)]
        with pytest.raises(MockExhaustedError, match="all 3 mocked responses were used"):
            await client.get("/poll")
    assert statuses == [503, 200, 200]


async def test_callables_exceptions_and_plain_responses() -> None:
    def echo(request: httpx.Request) -> dict[str, Any]:
        return {"echo": json.loads(request.content)}

    api = HTTPMock(
        BASE,
        {
            "POST /echo": echo,
            "GET /down": httpx.ConnectError,
            "GET /raw": httpx.Response(201, text="made"),
            "DELETE /thing": None,
            "GET /text": "plain",
        },
    )
    async with api, httpx.AsyncClient(base_url=BASE) as client:
        assert (await client.post("/echo", json={"a": 1})).json() == {"echo": {"a": 1}}
        with pytest.raises(httpx.ConnectError):
            await client.get("/down")
        for _ in range(2):  # a declared httpx.Response can be served more than once
            raw = await client.get("/raw")
            assert (raw.status_code, raw.text) == (201, "made")
        assert (await client.delete("/thing")).status_code == 204
        assert (await client.get("/text")).text == "plain"


async def test_unmatched_requests_never_reach_the_network() -> None:
    async with HTTPMock(BASE, {"GET /known": {}}), httpx.AsyncClient() as client:
        with pytest.raises(AllMockedAssertionError):
            await client.get(f"{BASE}/unknown")
        with pytest.raises(AllMockedAssertionError):
            await client.get("https://elsewhere.example.test/")


def test_strict_http_mock_fails_on_exit_for_unused_routes() -> None:
    api = HTTPMock(BASE, {"GET /used": {}, "GET /unused": {}}, assert_all_called=True)
    unused = r"GET /unused was declared but never called"
    with pytest.raises(MockVerificationError, match=unused), api:
        httpx.get(f"{BASE}/used")
    assert api.unused_routes() == ["GET /unused"]


def test_assertion_helpers_fail_with_clear_messages() -> None:
    with HTTPMock(BASE, {"GET /a": {}, "GET /b": {}}) as api:
        httpx.get(f"{BASE}/a")
        httpx.get(f"{BASE}/a")
    api.assert_not_called("GET /b")
    with pytest.raises(MockVerificationError, match="called 2 time"):
        api.assert_called("GET /a", times=1)
    with pytest.raises(MockVerificationError, match="never called"):
        api.assert_called("GET /b")
    with pytest.raises(KeyError, match="no mocked route"):
        api["GET /c"]


def test_bad_route_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown HTTP method"):
        HTTPMock(BASE, {"FETCH /x": {}})
    with pytest.raises(ValueError, match="must start with"):
        HTTPMock(BASE, {"GET x": {}})
    with pytest.raises(TypeError, match="cannot use"):
        HTTPMock(BASE, {"GET /x": 1.5})


async def test_framework_mock_http_api_and_strict_verification() -> None:
    framework = IntegrationTestFramework(strict=True)
    api = framework.mock_http_api(BASE, {"GET /a": {"ok": 1}, "GET /b": {"ok": 2}})
    assert framework.http_mocks == [api]
    api.start()  # started without ``with``: framework.close() stops it
    async with httpx.AsyncClient() as client:
        await client.get(f"{BASE}/a")
    framework.close()
    assert not api.active
    with pytest.raises(MockVerificationError, match="GET /b was declared but never called"):
        framework.verify()


async def test_resilient_api_integration_against_a_mocked_api() -> None:
    """The resilient client (retries, breaker) runs against the mock with no network."""
    framework = IntegrationTestFramework()
    api = framework.mock_http_api(
        BASE,
        {
            "POST /v1/analyze": [500, 502, {"sentiment": "positive"}],
            "GET /v1/status": (503, {"error": "maintenance"}),
        },
    )
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    async with api, ResilientAPIIntegration(
        {"base_url": BASE, "max_retries": 3}, sleep=no_wait
    ) as resilient:
        result = await resilient.make_api_call("/v1/analyze", {"text": "great"})
        with pytest.raises(APIServerError):
            await resilient.make_api_call("/v1/status", method="GET")

    assert result == {"sentiment": "positive"}
    api.assert_called("POST /v1/analyze", times=3)  # two failures retried, then success
    assert api.json_bodies("POST /v1/analyze") == [{"text": "great"}] * 3
    assert len(slept) >= 2
