"""WebhookAlertSink against a mocked third-party receiver (respx, at the HTTP level)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import respx

from deep_tree_echo.observability import IntegrationMonitor, WebhookAlertSink

HOOK = "https://alerts.example.test/hooks/echo"


@respx.mock
async def test_webhook_posts_alert_json() -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(204))
    sink = WebhookAlertSink(HOOK)
    mon = IntegrationMonitor(window=20, response_time_threshold=1.0, sinks=[sink])
    mon.record_request("llm", True, 3.0)
    await mon.drain()
    await sink.aclose()
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body["integration"] == "llm"
    assert body["type"] == "high_response_time"
    assert body["state"] == "firing"
    assert body["value"] == pytest.approx(3.0)


@respx.mock
async def test_webhook_uses_given_client_and_raises_on_error_status() -> None:
    respx.post(HOOK).mock(return_value=httpx.Response(503))
    async with httpx.AsyncClient() as client:
        sink = WebhookAlertSink(HOOK, client=client)
        with pytest.raises(httpx.HTTPStatusError):
            await sink.send(
                {
                    "integration": "x",
                    "type": "high_failure_rate",
                    "value": 0.5,
                    "threshold": 0.1,
                    "timestamp": 0.0,
                    "state": "firing",
                }
            )
        await sink.aclose()  # not ours: must stay open
        assert not client.is_closed


@respx.mock
async def test_webhook_failure_is_logged_by_monitor(caplog: pytest.LogCaptureFixture) -> None:
    respx.post(HOOK).mock(side_effect=httpx.ConnectError("refused"))
    sink = WebhookAlertSink(HOOK)
    mon = IntegrationMonitor(window=20, response_time_threshold=1.0, sinks=[sink])
    with caplog.at_level(logging.ERROR, logger="deep_tree_echo.observability"):
        mon.record_request("llm", True, 3.0)  # must not raise
        await mon.drain()
    await sink.aclose()
    assert any("refused" in (r.exc_text or "") for r in caplog.records)
