"""``GET /v1/status`` (what the console's Health view reads) and its history sampler."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from _server_helpers import make_settings, running_app

from deep_tree_echo.observability import IntegrationMonitor
from deep_tree_echo.observability import monitor as default_monitor
from deep_tree_echo.resilience import CircuitBreaker, RateLimiter
from deep_tree_echo.server._status import StatusHistory
from deep_tree_echo.server.app import create_app

KEY = "status-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _tripped(name: str, recovery_timeout: float) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=recovery_timeout, name=name)
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_failure(permit, RuntimeError("down"))
    return breaker


@pytest.fixture
def integration() -> Iterator[str]:
    """A unique integration name on the process-wide monitor, forgotten afterwards."""
    name = f"status-test-{uuid.uuid4().hex[:8]}"
    yield name
    default_monitor.metrics.pop(name, None)
    default_monitor.alerts[:] = [a for a in default_monitor.alerts if a["integration"] != name]


async def test_status_reports_breakers_limiters_integrations_alerts_and_store(
    integration: str,
) -> None:
    tag = uuid.uuid4().hex[:6]
    breakers = [
        CircuitBreaker(name=f"{tag}-closed"),
        _tripped(f"{tag}-open", 3600.0),
        _tripped(f"{tag}-half", 0.0),  # open with nothing left to wait: reads as half_open
        CircuitBreaker(name=f"{tag}-rate", failure_rate_threshold=0.5, minimum_calls=10),
    ]
    permit = breakers[3].try_acquire()
    assert permit is not None
    breakers[3].on_failure(permit, RuntimeError("one failure"))
    limiter = RateLimiter(1, 60.0, name=f"{tag}-limiter")
    assert limiter.try_acquire("a") and not limiter.try_acquire("a")
    for i in range(20):
        default_monitor.record_request(integration, i % 2 == 0, 0.01 * (i + 1))

    app = create_app(make_settings(api_keys=[KEY]))
    async with running_app(app) as client:
        assert (await client.get("/v1/status")).status_code == 401
        put = await client.put("/v1/memories/m1", json={"content": "x"}, headers=AUTH)
        assert put.status_code == 201
        response = await client.get("/v1/status", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    states = {b["name"]: b["state"] for b in body["breakers"] if b["name"].startswith(tag)}
    assert states == {f"{tag}-closed": "closed", f"{tag}-open": "open",
                      f"{tag}-half": "half_open", f"{tag}-rate": "closed"}
    by_name = {b["name"]: b for b in body["breakers"]}
    assert by_name[f"{tag}-rate"]["failure_rate"] == 1.0
    assert by_name[f"{tag}-open"]["failure_rate"] is None
    assert by_name[f"{tag}-open"]["failure_count"] == 1
    assert breakers[1].peek_state().value == "open"  # reading did not move anything
    [lim] = [x for x in body["limiters"] if x["name"] == f"{tag}-limiter"]
    assert lim == {"name": f"{tag}-limiter", "max_requests": 1, "time_window": 60.0,
                   "rejections": 1, "tracked_keys": 1}
    [entry] = [x for x in body["integrations"] if x["name"] == integration]
    assert entry["total_requests"] == 20 and entry["failed_requests"] == 10
    assert entry["error_rate"] == 0.5
    assert 0.01 <= entry["p50"] <= entry["p95"] <= entry["p99"] <= 0.2
    assert entry["firing"] == ["high_failure_rate"]
    [alert] = [a for a in body["alerts"] if a["integration"] == integration]
    assert alert["type"] == "high_failure_rate" and alert["threshold"] == 0.1
    assert body["store"]["kind"] == "memory" and body["store"]["memories"] == 1
    assert body["store"]["ready"] is True and body["store"]["stats"]["stores"] == 1
    assert body["nats"] == {"configured": False, "connected": False, "stats": {}}
    assert body["history"], "the sampler takes a first sample at startup"
    assert body["websocket_connections"] == 0


async def test_status_is_documented_with_its_model() -> None:
    async with running_app(create_app(make_settings())) as client:
        schema = (await client.get("/openapi.json")).json()
    op = schema["paths"]["/v1/status"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/StatusResponse")
    fields = schema["components"]["schemas"]["StatusResponse"]["properties"]
    assert {"breakers", "limiters", "integrations", "history", "alerts", "store", "nats"} <= set(
        fields
    )
    assert "/v1/events" in schema["paths"]
    assert "/console" not in schema["paths"]


def test_history_keeps_deltas_and_worst_quantiles_of_recent_samples() -> None:
    monitor = IntegrationMonitor()
    now = [1000.0]
    history = StatusHistory(monitor, size=2, clock=lambda: now[0])
    first = history.sample()
    assert (first.requests, first.errors, first.p99) == (0, 0, 0.0)
    monitor.record_request("a", True, 0.1)
    monitor.record_request("a", False, 0.3)
    monitor.record_request("b", True, 0.5)
    now[0] = 1010.0
    second = history.sample()
    assert (second.timestamp, second.requests, second.errors) == (1010.0, 3, 1)
    assert second.p50 == 0.5  # the worst integration's median
    monitor.record_request("a", True, 0.1)
    third = history.sample()
    assert (third.requests, third.errors) == (1, 0)  # only what happened since the last sample
    assert list(history.points) == [second, third]  # bounded

