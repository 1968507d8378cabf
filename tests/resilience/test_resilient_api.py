"""ResilientAPIIntegration against a real loopback HTTP server, plus respx for header corners."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import respx

from deep_tree_echo.config import EchoSettings
from deep_tree_echo.resilience import (
    APIClientError,
    APIConnectionError,
    APIServerError,
    APITimeoutError,
    CircuitOpenError,
    CircuitState,
    RateLimitExceeded,
    ResilientAPIIntegration,
    parse_retry_after,
)
from deep_tree_echo.testing._process import free_port

Scripted = tuple[int, dict[str, str], Any]


class ScriptedServer:
    """A stdlib HTTP server in a thread answering each path from a script of responses."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Scripted]] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                with server._lock:
                    server.requests.append({
                        "method": self.command, "path": self.path,
                        "body": json.loads(raw) if raw else None,
                        "headers": dict(self.headers),
                    })
                    script = server.scripts.get(path, [])
                    status, headers, body = script.pop(0) if script else (200, {}, {"ok": True})
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def script(self, path: str, *responses: Scripted) -> None:
        self.scripts[path] = list(responses)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"].split("?")[0] == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeTime:
    """Fake clock plus fake sleep: sleeping advances the clock and is recorded, no waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def make_api(url: str, fake: FakeTime, **config: Any) -> ResilientAPIIntegration:
    return ResilientAPIIntegration(
        {"base_url": url, **config}, sleep=fake.sleep, clock=fake.clock, rng=random.Random(7)
    )


async def test_success_returns_decoded_json(server: ScriptedServer, fake: FakeTime) -> None:
    server.script("/items", (201, {}, {"id": 1}))
    async with make_api(server.url, fake, headers={"x-api-key": "k"}) as api:
        assert await api.make_api_call("/items", {"name": "a"}) == {"id": 1}
        assert await api.make_api_call("items", {"q": "x"}, method="GET") == {"ok": True}
    post, get = server.requests
    assert post["method"] == "POST" and post["body"] == {"name": "a"}
    assert post["headers"]["x-api-key"] == "k"
    assert get["method"] == "GET" and get["path"] == "/items?q=x"


async def test_5xx_is_retried_with_jittered_backoff(server: ScriptedServer, fake: FakeTime) -> None:
    server.script("/flaky", (500, {}, {"e": 1}), (503, {}, None), (200, {}, {"done": True}))
    async with make_api(server.url, fake, backoff_initial=0.5, backoff_max=0.8) as api:
        assert await api.make_api_call("/flaky", None) == {"done": True}
        assert api.circuit_breaker.failure_count == 0
    assert server.hits("/flaky") == 3
    assert len(fake.sleeps) == 2
    assert 0 <= fake.sleeps[0] <= 0.5 and 0 <= fake.sleeps[1] <= 0.8  # full jitter, capped


async def test_exhausted_5xx_is_one_breaker_failure(server: ScriptedServer, fake: FakeTime) -> None:
    server.script("/down", *[(502, {}, {"err": "bad gateway"})] * 8)
    async with make_api(server.url, fake, max_retries=3, failure_threshold=2) as api:
        with pytest.raises(APIServerError) as info:
            await api.make_api_call("/down", {})
        assert info.value.status_code == 502 and info.value.body == {"err": "bad gateway"}
        assert server.hits("/down") == 4
        assert api.circuit_breaker.failure_count == 1
        with pytest.raises(APIServerError):
            await api.make_api_call("/down", {})
        assert api.circuit_breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            await api.make_api_call("/down", {})
        assert server.hits("/down") == 8  # the open circuit did not reach the server


async def test_4xx_raises_at_once_and_is_not_a_breaker_failure(
    server: ScriptedServer, fake: FakeTime
) -> None:
    server.script("/bad", *[(422, {}, {"detail": "invalid"})] * 5)
    async with make_api(server.url, fake, failure_threshold=2) as api:
        for _ in range(5):
            with pytest.raises(APIClientError) as info:
                await api.make_api_call("/bad", {"x": 1})
            assert info.value.status_code == 422
            assert info.value.body == {"detail": "invalid"}
        assert server.hits("/bad") == 5
        assert fake.sleeps == []
        assert api.circuit_breaker.state is CircuitState.CLOSED
        assert api.circuit_breaker.failure_count == 0


async def test_429_honours_retry_after_seconds(server: ScriptedServer, fake: FakeTime) -> None:
    server.script("/busy", (429, {"Retry-After": "3"}, None), (200, {}, {"ok": 1}))
    async with make_api(server.url, fake) as api:
        assert await api.make_api_call("/busy", None) == {"ok": 1}
    assert fake.sleeps == [3.0]


async def test_429_without_retry_after_raises_at_once(
    server: ScriptedServer, fake: FakeTime
) -> None:
    server.script("/throttled", (429, {}, {"error": "slow down"}), (200, {}, {"ok": 1}))
    async with make_api(server.url, fake, max_retries=3) as api:
        with pytest.raises(APIServerError) as info:
            await api.make_api_call("/throttled", None)
        assert api.circuit_breaker.failure_count == 1
    assert (info.value.status_code, info.value.retry_after) == (429, None)
    assert info.value.body == {"error": "slow down"}
    assert fake.sleeps == []
    assert server.hits("/throttled") == 1


async def test_retry_after_longer_than_backoff_max_fails_at_once(
    server: ScriptedServer, fake: FakeTime
) -> None:
    server.script("/later", (503, {"Retry-After": "120"}, None))
    async with make_api(server.url, fake, backoff_max=10) as api:
        with pytest.raises(APIServerError) as info:
            await api.make_api_call("/later", None)
    assert info.value.retry_after == 120
    assert fake.sleeps == []
    assert server.hits("/later") == 1


async def test_connect_errors_are_retried_then_raised(fake: FakeTime) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with make_api(url, fake, max_retries=2) as api:
        with pytest.raises(APIConnectionError):
            await api.make_api_call("/x", None)
        assert len(fake.sleeps) == 2
        assert api.circuit_breaker.failure_count == 1


async def test_rate_limit_raises_or_waits(server: ScriptedServer, fake: FakeTime) -> None:
    async with make_api(server.url, fake, max_requests=2, time_window=10) as api:
        await api.make_api_call("/a", None)
        await api.make_api_call("/a", None)
        with pytest.raises(RateLimitExceeded) as info:
            await api.make_api_call("/a", None)
        assert info.value.retry_after == pytest.approx(5, abs=0.01)
    assert server.hits("/a") == 2
    async with make_api(server.url, fake, max_requests=1, time_window=4,
                        rate_limit_wait=True) as api:
        await api.make_api_call("/b", None)
        await api.make_api_call("/b", None)
    assert fake.sleeps == [pytest.approx(4, abs=0.01)]
    assert server.hits("/b") == 2


async def test_concurrent_calls_keep_their_own_retry_state(
    server: ScriptedServer, fake: FakeTime
) -> None:
    server.script("/p", (500, {}, None), (500, {}, None), (200, {}, {"v": 1}), (200, {}, {"v": 2}))
    async with make_api(server.url, fake, max_retries=3) as api:
        results = await asyncio.gather(*[api.make_api_call("/p", None) for _ in range(4)])
    assert sorted(r.get("v", 0) for r in results) == [0, 0, 1, 2]
    assert server.hits("/p") == 6


async def test_breaker_events_reach_the_event_bus(server: ScriptedServer, fake: FakeTime) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    class Bus:
        def emit(self, name: str, payload: dict[str, Any]) -> None:
            events.append((name, payload))

    server.script("/e", (500, {}, None))
    api = ResilientAPIIntegration(
        {"base_url": server.url, "failure_threshold": 1, "max_retries": 0, "name": "svc"},
        event_bus=Bus(), sleep=fake.sleep, clock=fake.clock,
    )
    with pytest.raises(APIServerError):
        await api.make_api_call("/e", None)
    await api.aclose()  # drains breaker notifications
    assert events == [("circuit.state_changed", {
        "name": "svc", "old": "closed", "new": "open", "timestamp": events[0][1]["timestamp"],
    })]


async def test_retry_after_http_date_via_respx(fake: FakeTime) -> None:
    when = datetime.now(UTC) + timedelta(seconds=5)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("https://api.test/v1/x").mock(side_effect=[
            httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)}),
            httpx.Response(200, json={"ok": True}),
        ])
        async with make_api("https://api.test", fake) as api:
            assert await api.make_api_call("/v1/x", {"a": 1}) == {"ok": True}
    assert route.call_count == 2
    assert len(fake.sleeps) == 1 and 3 <= fake.sleeps[0] <= 5


async def test_timeouts_are_retried_then_raised_via_respx(fake: FakeTime) -> None:
    with respx.mock() as mock:
        route = mock.get("https://api.test/slow").mock(side_effect=httpx.ReadTimeout("slow"))
        client = httpx.AsyncClient()
        api = ResilientAPIIntegration(
            {"base_url": "https://api.test", "max_retries": 2, "timeout": 0.5},
            client=client, sleep=fake.sleep, clock=fake.clock,
        )
        with pytest.raises(APITimeoutError):
            await api.make_api_call("/slow", None, method="GET")
        await api.aclose()
        assert not client.is_closed  # an injected client belongs to the caller
        await client.aclose()
    assert route.call_count == 3
    assert route.calls[0].request.extensions["timeout"]["read"] == 0.5
    assert api.circuit_breaker.failure_count == 1


def test_parse_retry_after() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 31 Dec 2023 00:00:00 GMT", now=now) == 0.0


async def test_calls_are_reported_to_on_result(server: ScriptedServer, fake: FakeTime) -> None:
    seen: list[tuple[str, bool]] = []
    server.script("/m", (500, {}, None))
    api = ResilientAPIIntegration(
        {"base_url": server.url, "name": "reported-api", "max_retries": 0},
        on_result=lambda name, ok, seconds: seen.append((name, ok)),
        sleep=fake.sleep, clock=fake.clock,
    )
    async with api:
        await api.make_api_call("/m2", None)
        with pytest.raises(APIServerError):
            await api.make_api_call("/m", None)
    assert seen == [("reported-api", True), ("reported-api", False)]


async def test_the_service_wires_its_monitor_as_the_default_on_result(
    server: ScriptedServer, fake: FakeTime
) -> None:
    from deep_tree_echo.observability.integration_monitor import monitor
    from deep_tree_echo.resilience.api import set_default_on_result
    from deep_tree_echo.server.app import create_app

    name = f"monitored-api-{uuid.uuid4().hex[:8]}"  # the monitor is the process's: a fresh name
    previous = set_default_on_result(None)
    try:
        create_app(EchoSettings(test_mode=True))
        server.script("/m", (500, {}, None))
        async with make_api(server.url, fake, name=name, max_retries=0) as api:
            await api.make_api_call("/m2", None)
            with pytest.raises(APIServerError):
                await api.make_api_call("/m", None)
    finally:
        set_default_on_result(previous)
    metrics = monitor.metrics[name]
    assert metrics.total_requests == 2
    assert metrics.failed_requests == 1


MAYBE_SENT = [
    httpx.ReadTimeout("slow"),
    httpx.WriteTimeout("slow"),
    httpx.ReadError("reset"),
    httpx.WriteError("broken pipe"),
    httpx.RemoteProtocolError("server disconnected"),
]


async def _calls_until_failure(
    fake: FakeTime, method: str, error: Exception, **config: Any
) -> tuple[int, Exception]:
    """How many requests one call sends when every attempt fails with ``error``."""
    with respx.mock() as mock:
        route = mock.route(method=method, url="https://api.test/op").mock(side_effect=error)
        async with make_api("https://api.test", fake, max_retries=2, **config) as api:
            with pytest.raises(APIConnectionError) as info:
                await api.make_api_call("/op", {"n": 1}, method=method)
        return route.call_count, info.value


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("error", MAYBE_SENT, ids=lambda e: type(e).__name__)
async def test_unsafe_methods_are_not_resent_once_the_request_may_have_arrived(
    fake: FakeTime, method: str, error: Exception
) -> None:
    calls, raised = await _calls_until_failure(fake, method, error)
    assert calls == 1 and fake.sleeps == []
    assert isinstance(raised, APITimeoutError) == isinstance(error, httpx.TimeoutException)


@pytest.mark.parametrize("error", MAYBE_SENT, ids=lambda e: type(e).__name__)
async def test_retry_unsafe_resends_posts(fake: FakeTime, error: Exception) -> None:
    calls, _ = await _calls_until_failure(fake, "POST", error, retry_unsafe=True)
    assert calls == 3


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("error", MAYBE_SENT, ids=lambda e: type(e).__name__)
async def test_idempotent_methods_are_resent(fake: FakeTime, method: str, error: Exception) -> None:
    calls, _ = await _calls_until_failure(fake, method, error)
    assert calls == 3


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("busy")],
    ids=lambda e: type(e).__name__,
)
async def test_unsent_posts_are_always_retried(fake: FakeTime, error: Exception) -> None:
    calls, _ = await _calls_until_failure(fake, "POST", error)
    assert calls == 3


async def test_other_transport_errors_are_not_retried(fake: FakeTime) -> None:
    calls, _ = await _calls_until_failure(fake, "GET", httpx.UnsupportedProtocol("gopher"))
    assert calls == 1
