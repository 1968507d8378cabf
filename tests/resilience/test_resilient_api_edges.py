"""ResilientAPIIntegration edges the mutants found: URLs, names, injected parts from the
config, what each error says and names, the retry boundary, logs and the backoff's cap.
The remote API is a third party, so it is mocked at the HTTP level (respx)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.resilience import (
    APIClientError,
    APIConnectionError,
    APIServerError,
    APITimeoutError,
    CircuitOpenError,
    ResilientAPIIntegration,
    parse_retry_after,
)

BASE = "http://remote.test"


class Clock:
    """A clock that stands still until a test moves it, and a sleep that records delays."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)


class TopOfRange:
    """An rng whose jitter always lands on the top of its range."""

    def uniform(self, low: float, high: float) -> float:
        return high


def api(config: dict[str, Any] | None = None, **kwargs: Any) -> ResilientAPIIntegration:
    clock = kwargs.pop("clock", Clock(0.0))
    return ResilientAPIIntegration({"base_url": BASE, **(config or {})}, clock=clock,
                                   sleep=clock.sleep, **kwargs)


def test_urls_join_once_and_absolute_endpoints_pass() -> None:
    assert api({"base_url": BASE + "/v1/"}).url_for("/m") == BASE + "/v1/m"
    assert api().url_for("https://elsewhere.test/x") == "https://elsewhere.test/x"
    assert api({"base_url": ""}).url_for("/m") == "/m"
    # only slashes are trimmed, whatever letters the paths hold
    assert api({"base_url": BASE + "/X/"}).url_for("/Xray") == BASE + "/X/Xray"


def test_name_defaults_to_the_base_url_then_api() -> None:
    named = api({"name": "crm", "max_retries": 7})
    assert (named.name, named.circuit_breaker.name, named.rate_limiter.name,
            named.config["max_retries"]) == ("crm", "crm", "crm", 7)
    assert api().name == BASE
    assert api({"base_url": ""}).name == "api"


async def test_client_and_event_bus_can_come_from_the_config() -> None:
    bus = EventBus()
    async with httpx.AsyncClient() as client:
        integration = api({"client": client, "event_bus": bus})
        assert integration.client is client
        assert integration.circuit_breaker.event_bus is bus
        await integration.aclose()
        assert not client.is_closed  # not ours to close


async def test_an_injected_client_gets_the_configured_headers_per_request() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"{BASE}/h").respond(200, json={})
        async with httpx.AsyncClient() as client:
            integration = api({"headers": {"X-Key": "k1"}}, client=client)
            assert integration.client is client
            await integration.make_api_call("/h", None, method="GET")
    assert route.calls.last.request.headers["X-Key"] == "k1"


async def test_a_400_is_a_client_error_naming_the_endpoint() -> None:
    with respx.mock() as mock:
        mock.post(f"{BASE}/bad").respond(400, json={"why": "no"})
        with pytest.raises(APIClientError) as refused:
            await api().make_api_call("/bad", {"x": 1})
    assert (refused.value.status_code, refused.value.endpoint, refused.value.body) == (
        400, "/bad", {"why": "no"})


async def test_a_server_error_names_the_endpoint() -> None:
    with respx.mock() as mock:
        mock.post(f"{BASE}/down").respond(503)
        with pytest.raises(APIServerError) as failed:
            await api({"max_retries": 0}).make_api_call("/down")
    assert failed.value.endpoint == "/down"


@pytest.mark.parametrize(
    ("error", "raised", "message"),
    [
        (httpx.ConnectError("refused"), APIConnectionError, f"GET {BASE}/t: cannot connect"),
        (httpx.ReadTimeout("slow"), APITimeoutError, f"GET {BASE}/t timed out"),
        (httpx.RemoteProtocolError("garbled"), APIConnectionError,
         f"GET {BASE}/t: RemoteProtocolError('garbled')"),
    ],
)
async def test_transport_errors_say_what_failed_where(
    error: Exception, raised: type[Exception], message: str
) -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/t").mock(side_effect=error)
        with pytest.raises(raised) as failed:
            await api({"max_retries": 0}).make_api_call("/t", method="GET")
    assert type(failed.value) is raised
    assert str(failed.value) == message
    assert failed.value.details == {"endpoint": "/t"}  # type: ignore[attr-defined]


async def test_a_retry_after_equal_to_the_longest_backoff_is_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(0.0)
    with respx.mock() as mock:
        mock.get(f"{BASE}/r").mock(side_effect=[
            httpx.Response(503, headers={"Retry-After": "30"}), httpx.Response(200, json=1)])
        with caplog.at_level(logging.DEBUG, logger="deep_tree_echo.resilience"):
            result = await api({"backoff_max": 30, "name": "svc"}, clock=clock).make_api_call(
                "/r", method="GET")
    assert result == 1 and clock.sleeps == [30.0]
    assert f"svc: retry 1 of GET {BASE}/r in 30.000s" in [r.getMessage() for r in caplog.records]


def test_backoff_doubles_up_to_its_cap() -> None:
    integration = api({"backoff_initial": 0.5, "backoff_max": 3.0}, rng=TopOfRange())
    assert [integration.backoff(n) for n in range(4)] == [0.5, 1.0, 2.0, 3.0]


async def test_on_result_hears_the_calls_duration_and_its_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[tuple[str, bool, float]] = []
    clock = Clock(10.0)

    def answer(request: httpx.Request) -> httpx.Response:
        clock.now = 12.5  # the call takes 2.5 s on this clock
        return httpx.Response(200, json={})

    with respx.mock() as mock:
        mock.post(f"{BASE}/d").mock(side_effect=answer)
        await api({"name": "timed"}, clock=clock,
                  on_result=lambda *args: heard.append(args)).make_api_call("/d")

        def broken(name: str, ok: bool, seconds: float) -> None:
            raise RuntimeError("hook broke")

        with caplog.at_level(logging.ERROR, logger="deep_tree_echo.resilience"):
            assert await api({"name": "hooked"}, on_result=broken).make_api_call("/d") == {}
    assert heard == [("timed", True, 2.5)]
    assert [r.getMessage() for r in caplog.records] == ["hooked: on_result failed"]


def test_retry_after_dates_without_a_zone_are_utc() -> None:
    now = datetime(2023, 12, 30, 23, 59, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 31 Dec 2023 00:00:00 -0000", now=now) == 60.0


async def test_a_client_it_made_is_closed_with_it() -> None:
    integration = api()
    await integration.aclose()
    assert integration.client.is_closed


async def test_the_breaker_recovers_after_the_configured_time_on_the_given_clock() -> None:
    clock = Clock(0.0)
    integration = api({"failure_threshold": 1, "recovery_timeout": 5, "max_retries": 0},
                      clock=clock)
    with respx.mock() as mock:
        mock.get(f"{BASE}/b").mock(side_effect=[httpx.Response(503), httpx.Response(200, json=2)])
        with pytest.raises(APIServerError):
            await integration.make_api_call("/b", method="GET")
        with pytest.raises(CircuitOpenError):
            await integration.make_api_call("/b", method="GET")
        clock.now = 5.0
        assert await integration.make_api_call("/b", method="GET") == 2
