"""Tests using only the deep-tree-echo pytest plugin's fixtures: no asyncio configuration,
no network, no hand-written setup."""

import httpx
import pytest
from weather_bridge import WeatherBridge

from deep_tree_echo.resilience import APIServerError, ResilientAPIIntegration

WEATHER = "https://weather.example.test"


@pytest.fixture
async def weather_api():
    # a plain @pytest.fixture on an async def works: the plugin set everything up
    async with ResilientAPIIntegration({"base_url": WEATHER, "backoff_initial": 0}) as api:
        yield api


@pytest.mark.echo_strict  # every declared mock response must be used, nothing else called
async def test_report_remembers_the_forecast_and_notifies(
    echo_framework, echo_gateway, weather_api
):
    notifier = echo_framework.mock_external_service("chat", {"send": {"ok": True}})
    http = echo_framework.mock_http_api(WEATHER, {
        "GET /v1/forecast/paris": {"summary": "sunny, 24C"},
    })

    with http:
        result = await WeatherBridge(echo_gateway, weather_api, notifier).report("paris", "#ops")

    assert result["forecast"] == {"summary": "sunny, 24C"}
    assert result["delivered"] is True
    http.assert_called("GET /v1/forecast/paris", times=1)
    notifier.send.assert_awaited_once_with("#ops", result["answer"])
    stored = await echo_gateway.memory.retrieve_memory("forecast-paris")
    assert stored["city"] == "paris"


async def test_a_flaky_weather_api_is_retried(echo_framework, echo_gateway, weather_api):
    notifier = echo_framework.mock_external_service("chat", {"send": {"ok": True}})
    http = echo_framework.mock_http_api(WEATHER, {
        "GET /v1/forecast/oslo": [503, httpx.ConnectError, {"summary": "snow"}],
    })
    with http:
        result = await WeatherBridge(echo_gateway, weather_api, notifier).report("oslo", "#ops")
    assert result["forecast"] == {"summary": "snow"}
    http.assert_called("GET /v1/forecast/oslo", times=3)


async def test_a_broken_weather_api_notifies_nobody(echo_framework, echo_gateway, weather_api):
    notifier = echo_framework.mock_external_service("chat", {"send": {"ok": True}})
    http = echo_framework.mock_http_api(WEATHER, {"GET /v1/forecast/rome": 500})
    with http, pytest.raises(APIServerError):
        await WeatherBridge(echo_gateway, weather_api, notifier).report("rome", "#ops")
    notifier.send.assert_not_awaited()
    assert await echo_gateway.memory.retrieve_memory("forecast-rome") is None


async def test_the_service_api_in_process(echo_client):
    stored = await echo_client.put("/v1/memories/city-note", json={"text": "Paris is sunny"})
    assert stored.status_code == 201
    fetched = await echo_client.get("/v1/memories/city-note")
    assert fetched.json()["data"] == {"text": "Paris is sunny"}


def test_the_real_server(echo_server):
    response = httpx.get(f"{echo_server.url}/readyz", timeout=10)
    assert response.status_code == 200
