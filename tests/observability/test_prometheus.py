"""Prometheus exposition: scrape-time collector over real components, and the ASGI middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.responses import StreamingResponse
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.memory import MemoryManager
from deep_tree_echo.observability import (
    EchoMetrics,
    IntegrationMonitor,
    PrometheusMiddleware,
    render_latest,
)
from deep_tree_echo.resilience.circuit_breaker import CircuitBreaker
from deep_tree_echo.resilience.rate_limiter import RateLimiter

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> tuple[set[str], Samples]:
    payload, content_type = render_latest(registry)
    assert content_type.startswith("text/plain")
    families = list(text_string_to_metric_families(payload.decode()))
    samples: Samples = {
        (s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples
    }
    return {f.name for f in families}, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_collector_reads_components_at_scrape_time() -> None:
    registry = CollectorRegistry()
    mon = IntegrationMonitor()
    metrics = EchoMetrics(registry, integration_monitor=mon)
    bus = EventBus(name="core")
    memory = MemoryManager(event_bus=bus)
    await memory.initialize()
    metrics.add_source("event_bus", bus)
    metrics.add_source("memory", memory)
    breaker = CircuitBreaker(name="test-prom-breaker")
    limiter = RateLimiter(1, 60.0, name="test-prom-limiter")

    async def fail(data: dict[str, Any]) -> None:
        raise RuntimeError("no")

    bus.register("x.fail", fail)
    await bus.emit("x.ok", {})
    await bus.emit("x.fail", {})
    await memory.store_memory("m1", {"text": "hello"})
    await memory.retrieve_memory("m1")
    for ok, seconds in [(True, 0.1), (True, 0.2), (False, 0.3)]:
        mon.record_request("openai", ok, seconds)
    assert limiter.try_acquire() is True
    assert limiter.try_acquire() is False
    metrics.engine_latency.labels(engine="local").observe(0.05)

    names, samples = scrape(registry)
    assert {
        "dte_events_emitted",
        "dte_event_deliveries",
        "dte_event_failures",
        "dte_memory_operations",
        "dte_integration_requests",
        "dte_integration_response_time_seconds",
        "dte_circuit_breaker_state",
        "dte_rate_limiter_rejections",
        "dte_engine_latency_seconds",
        "dte_http_requests",
        "dte_http_request_duration_seconds",
    } <= names
    # emitted: x.ok, x.fail, bus.handler_error, plus whatever the memory manager emitted
    assert value(samples, "dte_events_emitted_total", bus="core") == bus.stats["emitted"] >= 3
    assert value(samples, "dte_event_failures_total", bus="core") == 1
    assert value(samples, "dte_memory_operations_total", op="stores") == 1
    assert value(samples, "dte_memory_operations_total", op="retrieves") == 1
    req = "dte_integration_requests_total"
    assert value(samples, req, integration="openai", outcome="success") == 2
    assert value(samples, req, integration="openai", outcome="failure") == 1
    rt = "dte_integration_response_time_seconds"
    assert value(samples, rt, integration="openai", quantile="0.5") == 0.2
    assert value(samples, rt + "_count", integration="openai") == 3
    assert abs(value(samples, rt + "_sum", integration="openai") - 0.6) < 1e-9
    state = "dte_circuit_breaker_state"
    assert value(samples, state, breaker="test-prom-breaker", state="closed") == 1
    assert value(samples, state, breaker="test-prom-breaker", state="open") == 0
    rejections = "dte_rate_limiter_rejections_total"
    assert value(samples, rejections, limiter="test-prom-limiter") == 1
    assert value(samples, "dte_engine_latency_seconds_count", engine="local") == 1

    # read at scrape time: later activity shows up in the next scrape
    await bus.emit("x.ok", {})
    _, again = scrape(registry)
    assert value(again, "dte_events_emitted_total", bus="core") == bus.stats["emitted"]
    await memory.close()
    del breaker, limiter


def test_integration_latency_is_exported_as_a_histogram() -> None:
    registry = CollectorRegistry()
    mon = IntegrationMonitor(buckets=(0.1, 0.5, 1.0))
    EchoMetrics(registry, integration_monitor=mon)
    for seconds in (0.05, 0.1, 0.3, 0.7, 2.0):  # 0.1 sits on a bound: counted as le="0.1"
        mon.record_request("openai", True, seconds)
    payload, _ = render_latest(registry)
    families = {f.name: f for f in text_string_to_metric_families(payload.decode())}
    assert families["dte_integration_request_duration_seconds"].type == "histogram"
    _, samples = scrape(registry)
    h = "dte_integration_request_duration_seconds"
    buckets = {
        le: value(samples, h + "_bucket", integration="openai", le=le)
        for le in ("0.1", "0.5", "1.0", "+Inf")
    }
    assert buckets == {"0.1": 2, "0.5": 3, "1.0": 4, "+Inf": 5}
    assert value(samples, h + "_count", integration="openai") == 5
    assert abs(value(samples, h + "_sum", integration="openai") - 3.15) < 1e-9


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _trip(breaker: CircuitBreaker) -> None:
    async def fail() -> None:
        raise RuntimeError("down")

    for _ in range(breaker.failure_threshold):
        with pytest.raises(RuntimeError):
            await breaker.call(fail)


async def test_scraping_does_not_move_a_breaker_out_of_open() -> None:
    registry = CollectorRegistry()
    EchoMetrics(registry, include_default_monitor=False)
    clock = FakeClock()
    changes: list[str] = []
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=5, name="test-prom-peek", clock=clock,
        listeners=[lambda b, old, new: changes.append(new.value)],
    )  # fmt: skip
    await _trip(breaker)
    clock.now += 5  # the recovery timeout has passed: `state` would now transition
    generation = breaker.generation
    for _ in range(2):
        _, samples = scrape(registry)
        state = "dte_circuit_breaker_state"
        assert value(samples, state, breaker="test-prom-peek", state="half_open") == 1
        assert value(samples, state, breaker="test-prom-peek", state="open") == 0
    assert breaker.generation == generation and changes == ["open"]


async def test_same_named_breakers_and_limiters_are_one_series() -> None:
    registry = CollectorRegistry()
    EchoMetrics(registry, include_default_monitor=False)
    closed = CircuitBreaker(failure_threshold=1, name="test-prom-dup")
    tripped = CircuitBreaker(failure_threshold=1, recovery_timeout=60, name="test-prom-dup")
    await _trip(tripped)
    limiters = [RateLimiter(1, 60.0, name="test-prom-dup-limiter") for _ in range(2)]
    for limiter in limiters:
        assert limiter.try_acquire() is True
    for limiter, extra in zip(limiters, (2, 3), strict=True):
        for _ in range(extra):
            assert limiter.try_acquire() is False
    payload, _ = render_latest(registry)  # duplicate series would make the text ambiguous
    lines = payload.decode().splitlines()
    assert sum('breaker="test-prom-dup",state="open"' in line for line in lines) == 1
    assert sum('limiter="test-prom-dup-limiter"' in line for line in lines) == 1
    _, samples = scrape(registry)
    state = "dte_circuit_breaker_state"
    assert value(samples, state, breaker="test-prom-dup", state="open") == 1  # the worst
    assert value(samples, state, breaker="test-prom-dup", state="closed") == 0
    assert value(samples, "dte_rate_limiter_rejections_total", limiter="test-prom-dup-limiter") == 5
    del closed, tripped, limiters


def test_two_apps_have_independent_registries() -> None:
    first, second = EchoMetrics(CollectorRegistry()), EchoMetrics(CollectorRegistry())
    first.http.observe("GET", "/a", 200, 0.01)
    _, samples = scrape(second.registry)
    assert not [key for key in samples if key[0] == "dte_http_requests_total"]
    _, samples = scrape(first.registry)
    assert value(samples, "dte_http_requests_total", method="GET", route="/a", status="200") == 1


def make_app(metrics: EchoMetrics) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app.add_middleware(PrometheusMiddleware, metrics=metrics)
    return app


async def test_middleware_labels_by_route_template() -> None:
    metrics = EchoMetrics(CollectorRegistry(), include_default_monitor=False)
    app = make_app(metrics)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for i in range(3):
            assert (await client.get(f"/items/{i}")).status_code == 200
        assert (await client.get("/items/not-a-number")).status_code == 422
        assert (await client.get("/no/such/path/123")).status_code == 404
        assert (await client.get("/boom")).status_code == 500
        streamed = await client.get("/stream")
        assert streamed.text == "chunk0;chunk1;chunk2;"

    _, samples = scrape(metrics.registry)
    total = "dte_http_requests_total"
    assert value(samples, total, method="GET", route="/items/{item_id}", status="200") == 3
    assert value(samples, total, method="GET", route="/items/{item_id}", status="422") == 1
    assert value(samples, total, method="GET", route="unmatched", status="404") == 1
    assert value(samples, total, method="GET", route="/boom", status="500") == 1
    assert value(samples, total, method="GET", route="/stream", status="200") == 1
    routes = {dict(labels).get("route") for (name, labels) in samples if name == total}
    assert routes == {"/items/{item_id}", "unmatched", "/boom", "/stream"}
    duration = "dte_http_request_duration_seconds_count"
    assert value(samples, duration, method="GET", route="/items/{item_id}") == 4


async def test_middleware_passes_websockets_through() -> None:
    metrics = EchoMetrics(CollectorRegistry(), include_default_monitor=False)
    app = make_app(metrics)
    inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbound.put_nowait({"type": "websocket.connect"})
    inbound.put_nowait({"type": "websocket.receive", "text": "ping"})
    outbound: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return await inbound.get()

    async def send(message: MutableMapping[str, Any]) -> None:
        outbound.append(dict(message))

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("test", 80),
        "client": ("127.0.0.1", 5000),
        "subprotocols": [],
        "state": {},
    }
    await app(scope, receive, send)
    assert [m["type"] for m in outbound] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert outbound[1]["text"] == "ping"
    _, samples = scrape(metrics.registry)
    assert not [key for key in samples if key[0] == "dte_http_requests_total"]
