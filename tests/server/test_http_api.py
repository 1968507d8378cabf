"""HTTP routes through httpx.ASGITransport, with the lifespan run by the fixtures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from _server_helpers import AppClient, make_settings, running_app
from fastapi import Request

from deep_tree_echo.server.app import create_app


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready" and r.json()["store"] == "memory"


async def test_not_ready_before_lifespan() -> None:
    app = create_app(make_settings())
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/healthz")).status_code == 200
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "not_ready"
        r = await c.get("/v1/memories/x")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


async def test_openapi_docs_list_the_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/v1/process", "/v1/memories/{memory_id}", "/v1/memories", "/healthz"):
        assert path in paths


async def test_memories_round_trip_on_sqlite(sqlite_client: httpx.AsyncClient) -> None:
    c = sqlite_client
    r = await c.put("/v1/memories/m1", json={"content": "the sky is blue", "importance": 0.9})
    assert r.status_code == 201
    created = r.json()
    assert created["id"] == "m1" and created["data"]["content"] == "the sky is blue"
    r = await c.put("/v1/memories/m1", json={"content": "the sky is grey"})
    assert r.status_code == 200
    assert r.json()["created_at"] == created["created_at"]
    assert r.json()["version"] > created["version"]

    r = await c.get("/v1/memories/m1")
    assert r.status_code == 200
    body = r.json()
    assert body["data"] == {"content": "the sky is grey"}
    assert set(body) >= {"id", "data", "version", "created_at", "updated_at", "expires_at"}

    r = await c.delete("/v1/memories/m1")
    assert r.status_code == 204 and r.content == b""
    r = await c.get("/v1/memories/m1")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert (await c.delete("/v1/memories/m1")).status_code == 404


async def test_ttl_sets_expiry(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/memories/t?ttl=60", json={"content": "short-lived"})
    assert r.status_code == 201
    record = r.json()
    assert record["expires_at"] == pytest.approx(record["updated_at"] + 60)


async def test_search_ranks_with_breakdown_and_filters(client: httpx.AsyncClient) -> None:
    await client.put("/v1/memories/a", json={"content": "cats purr softly", "session_id": "s1"})
    await client.put("/v1/memories/b", json={"content": "dogs bark loudly", "session_id": "s2"})
    await client.put("/v1/memories/c", json={"content": "cats and dogs", "session_id": "s2"})
    r = await client.get("/v1/memories", params={"query": "cats", "limit": 5})
    assert r.status_code == 200
    body = r.json()
    ids = [x["id"] for x in body["results"]]
    assert sorted(ids) == ["a", "c"]
    scores = [x["score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)  # highest score first
    for result in body["results"]:
        assert set(result["breakdown"]) >= {"relevance", "recency", "importance"}
        assert isinstance(result["score"], float)
    r = await client.get("/v1/memories", params={"query": "cats", "session_id": "s2"})
    assert [x["id"] for x in r.json()["results"]] == ["c"]
    assert r.json()["filters"] == {"session_id": "s2"}
    r = await client.get("/v1/memories", params={"query": "cats", "limit": 1})
    assert r.json()["count"] == 1


async def test_search_ranking_order_is_by_relevance_then_importance(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/v1/memories/once", json={"content": "owls hoot at night in the woods"})
    await client.put("/v1/memories/thrice", json={"content": "owls owls owls"})
    await client.put("/v1/memories/low", json={"content": "herons wade", "importance": 0.1})
    await client.put("/v1/memories/high", json={"content": "herons wade", "importance": 0.9})
    r = await client.get("/v1/memories", params={"query": "owls"})
    assert [x["id"] for x in r.json()["results"]] == ["thrice", "once"]
    # Same text, same age: importance alone orders them.
    r = await client.get("/v1/memories", params={"query": "herons"})
    results = r.json()["results"]
    assert [x["id"] for x in results] == ["high", "low"]
    assert [x["breakdown"]["importance"] for x in results] == [0.9, 0.1]
    assert results[0]["score"] > results[1]["score"]


async def test_search_filters_named_self_or_query_are_data_fields(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/v1/memories/a", json={"content": "cats", "self": 1})
    await client.put("/v1/memories/b", json={"content": "cats", "self": "2"})
    r = await client.get("/v1/memories?query=cats&self=1")
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["results"]] == ["a"]
    r = await client.get("/v1/memories", params={"query": "cats", "self": "x"})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 0


async def test_search_filter_values_match_json_scalars(client: httpx.AsyncClient) -> None:
    await client.put("/v1/memories/n", json={"content": "tea", "importance": 0.7, "pinned": True})
    await client.put("/v1/memories/s", json={"content": "tea", "importance": "0.7", "tag": None})
    await client.put("/v1/memories/w", json={"content": "tea", "kind": "note", "n": 3})

    async def ids(**params: str) -> list[str]:
        r = await client.get("/v1/memories", params={"query": "tea", **params})
        assert r.status_code == 200, r.text
        return sorted(x["id"] for x in r.json()["results"])

    assert await ids(importance="0.7") == ["n"]
    assert await ids(importance='"0.7"') == ["s"]  # a quoted value stays a string
    assert await ids(pinned="true") == ["n"]
    assert await ids(tag="null") == ["s"]
    assert await ids(n="3") == ["w"]
    assert await ids(kind="note") == ["w"]  # not JSON: the raw string
    r = await client.get("/v1/memories", params={"query": "tea", "importance": "0.7"})
    assert r.json()["filters"] == {"importance": 0.7}


async def test_search_leaves_questions_out_unless_asked_for(client: httpx.AsyncClient) -> None:
    for text in ("the gate code is 1234", "what is the gate code?"):
        r = await client.post("/v1/process", json={"data": text, "session_id": "q"})
        assert r.status_code == 200, r.text

    async def contents(**params: str) -> list[str]:
        r = await client.get("/v1/memories", params={"query": "gate code", **params})
        assert r.status_code == 200, r.text
        return sorted(x["data"]["content"] for x in r.json()["results"])

    assert await contents() == ["the gate code is 1234"]
    assert await contents(include_questions="true") == [
        "the gate code is 1234", "what is the gate code?"
    ]
    assert await contents(is_question="true") == ["what is the gate code?"]
    assert await contents(kind="question") == []  # an explicit filter, questions still out
    assert await contents(kind="question", include_questions="true") == [
        "what is the gate code?"
    ]


async def test_process_resolves_dates_against_the_request_timestamp(
    client: httpx.AsyncClient,
) -> None:
    told = {"data": "I went to the support group yesterday", "session_id": "t",
            "timestamp": "2023-05-08T13:56:00Z"}
    r = await client.post("/v1/process", json=told)
    memory = (await client.get(f"/v1/memories/{r.json()['data']['memory_id']}")).json()
    assert memory["data"]["dates"][0]["date"] == "2023-05-07"
    r = await client.post("/v1/process", json={"data": "When did I go to the support group?",
                                               "session_id": "t"})
    assert r.json()["data"]["text"].startswith("7 May 2023: ")


async def test_export_streams_json_lines(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await client.put(f"/v1/memories/e{i}", json={"content": f"item {i}"})
    await client.delete("/v1/memories/e1")
    r = await client.get("/v1/export/memories")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["id"] for x in lines] == ["e0", "e2"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "bad_request",
        ),
        ({"json": [1, 2]}, 400, "bad_request"),
        (
            {"content": b"a=b", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
    ],
)
async def test_put_rejects_bad_bodies(
    client: httpx.AsyncClient, kwargs: dict[str, object], status: int, code: str
) -> None:
    r = await client.put("/v1/memories/x", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]
    assert (await client.get("/v1/memories/x")).status_code == 404


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"a":' + b"[" * 200_000])
async def test_deeply_nested_json_is_400_not_500(client: httpx.AsyncClient, body: bytes) -> None:
    headers = {"content-type": "application/json"}
    r = await client.put("/v1/memories/deep", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {
        "code": "bad_request",
        "message": "request body is not valid JSON: nested too deeply",
    }
    assert (await client.get("/v1/memories/deep")).status_code == 404
    r = await client.post("/v1/process", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {
        "code": "bad_request",
        "message": "invalid JSON body: nested too deeply",
    }


async def test_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/memories/x?ttl=-5", json={"a": 1})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert "ttl" in error["message"]
    assert error["details"]["fields"][0]["field"] == "query.ttl"
    r = await client.get("/v1/memories", params={"limit": "many"})
    assert r.status_code == 422 and "limit" in r.json()["error"]["message"]


async def test_invalid_memory_id_is_400(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/memories/%01bad", json={"a": 1})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_memory"


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/nope")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_process_uses_the_seed_format(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/process",
        json={
            "message_type": "text",
            "data": "remember tea",
            "source": "test",
            "session_id": "p1",
            "timestamp": "2024-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    assert isinstance(body["data"]["text"], str) and body["data"]["text"]
    assert set(body["metadata"]) == {"processing_time", "confidence"}
    assert 0.0 <= body["metadata"]["confidence"] <= 1.0


async def test_process_bad_json_is_an_error_body(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/process", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert set(r.json()["error"]) >= {"code", "message"}


async def test_unhandled_errors_are_json_500(app_client: AppClient) -> None:
    app = create_app(make_settings())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal_error", "message": "internal server error"}}


async def test_metrics_exposes_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.put("/v1/memories/x", json={"a": 1})
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "dte_ws_connections" in r.text


async def test_metrics_label_process_by_its_route(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/process", json={"data": "hello"})).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'method="POST",route="/v1/process",status="200"' in text
    assert 'route="unmatched"' not in text


async def test_metrics_count_every_process_call(client: httpx.AsyncClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for i in range(3):
        r = await client.post("/v1/process", json={"data": f"hello {i}"})
        assert r.status_code == 200
    text = (await client.get("/metrics")).text
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    process = frozenset({"method": "POST", "route": "/v1/process"}.items())
    assert samples[("dte_http_requests_total", process | {("status", "200")})] == 3
    assert samples[("dte_http_request_duration_seconds_count", process)] == 3
    engine_calls = [v for (name, _), v in samples.items()
                    if name == "dte_engine_latency_seconds_count"]
    assert engine_calls == [3]


async def test_gateway_passed_in_is_not_cleaned_up() -> None:
    from deep_tree_echo.aar_core.gateway import AARGateway

    gateway = AARGateway({"test_mode": True})
    app = create_app(make_settings(), gateway=gateway)
    assert app.state.gateway is gateway
    async with running_app(app) as c:
        assert (await c.get("/readyz")).status_code == 200
    assert gateway.initialized
    await gateway.cleanup()


async def test_process_fast_path_keeps_the_route_behaviour() -> None:
    """POST /v1/process is served ahead of FastAPI's route walk (routes/process.py
    FastPathRoute); what the documented route did still holds: errors from reading the body
    reach the app's handlers, other methods get 405, metrics use the route's name."""
    from deep_tree_echo.server.routes.process import FastPathRoute

    app = create_app(make_settings(max_body_bytes=200))
    assert isinstance(app.router.routes[0], FastPathRoute)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b'{"data": "' + b"x" * 50 + b'"}'

    async with running_app(app) as c:
        r = await c.post("/v1/process", content=chunks(),
                         headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"
        r = await c.post("/v1/process", json={"data": "hello"})
        assert r.status_code == 200 and r.json()["success"] is True
        assert (await c.put("/v1/process", json={})).status_code == 405
        text = (await c.get("/metrics")).text
    line = 'dte_http_requests_total{method="%s",route="/v1/process",status="%s"} 1.0'
    for method, status in (("POST", 413), ("POST", 200), ("PUT", 405)):
        assert line % (method, status) in text


async def test_only_the_fast_path_skips_fastapis_exit_stack() -> None:
    """FastAPI's per-request exit stack (it closes uploaded form files) is skipped for
    POST /v1/process alone: every other request, other methods on that path included, still
    gets it in its scope."""
    app = create_app(make_settings())
    seen: dict[str, bool] = {}

    @app.api_route("/v1/probe", methods=["GET", "POST"])
    async def probe(request: Request) -> dict[str, bool]:
        seen[request.method] = "fastapi_middleware_astack" in request.scope
        return seen

    async with running_app(app) as c:
        assert (await c.get("/v1/probe")).json() == {"GET": True}
        assert (await c.post("/v1/probe")).json() == {"GET": True, "POST": True}
        assert (await c.post("/v1/process", json={"data": "hello"})).status_code == 200
        assert (await c.put("/v1/process", json={})).status_code == 405
    links = []
    node = app.middleware_stack
    while node is not None:
        links.append(type(node).__name__)
        node = getattr(node, "app", None)
    assert "_ExitStackBypass" in links and "AsyncExitStackMiddleware" not in links
    bypass = links.index("_ExitStackBypass")
    assert links[bypass - 1] == "ExceptionMiddleware" and links[bypass + 1] == "APIRouter"
