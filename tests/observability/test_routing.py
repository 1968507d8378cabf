"""attach_monitor: alerts reach the gateway's event bus and an optional webhook (respx)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.observability import ALERT_EVENT, IntegrationMonitor, attach_monitor

HOOK = "https://alerts.example.test/hooks/echo"


def slow_monitor() -> IntegrationMonitor:
    return IntegrationMonitor(window=20, response_time_threshold=1.0, cooldown=0.0)


def resolve(mon: IntegrationMonitor) -> None:
    """Bring the window's mean response time back under the threshold."""
    for _ in range(5):
        mon.record_request("llm", True, 0.0)


@respx.mock
async def test_alerts_go_to_the_bus_and_the_webhook_until_detached() -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(204))
    bus = EventBus()
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    bus.register(ALERT_EVENT, seen.put_nowait)
    mon = slow_monitor()
    detach = attach_monitor(mon, bus, webhook_url=HOOK)
    assert len(mon.sinks) == 2

    mon.record_request("llm", True, 3.0)
    await mon.drain()
    event = seen.get_nowait()
    assert (event["integration"], event["type"], event["state"]) == (
        "llm", "high_response_time", "firing",
    )  # fmt: skip
    assert route.call_count == 1
    assert json.loads(route.calls.last.request.content)["state"] == "firing"

    await detach()
    await detach()  # idempotent
    assert mon.sinks == []
    resolve(mon)  # recorded, but delivered nowhere
    await mon.drain()
    assert mon.alerts[-1]["state"] == "resolved"
    assert seen.empty() and route.call_count == 1


async def test_two_attachments_to_one_monitor_are_independent() -> None:
    first, second = EventBus(name="a"), EventBus(name="b")
    got: dict[str, list[str]] = {"a": [], "b": []}
    first.register(ALERT_EVENT, lambda e: got["a"].append(e["state"]))
    second.register(ALERT_EVENT, lambda e: got["b"].append(e["state"]))
    mon = slow_monitor()
    detach_first = attach_monitor(mon, first)
    detach_second = attach_monitor(mon, second)
    mon.record_request("llm", True, 3.0)
    await detach_first()
    resolve(mon)
    await mon.drain()
    assert got == {"a": ["firing"], "b": ["firing", "resolved"]}
    await detach_second()
    assert mon.sinks == []


async def test_the_monitors_own_bus_is_not_added_twice() -> None:
    bus = EventBus()
    seen: list[dict[str, Any]] = []
    bus.register(ALERT_EVENT, seen.append)
    mon = IntegrationMonitor(window=20, response_time_threshold=1.0, event_bus=bus)
    detach = attach_monitor(mon, bus)
    mon.record_request("llm", True, 3.0)
    await mon.drain()
    assert len(seen) == 1
    await detach()


def test_alert_webhook_url_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EchoSettings().alert_webhook_url is None
    monkeypatch.setenv("DTE_ALERT_WEBHOOK_URL", HOOK)
    assert EchoSettings().alert_webhook_url == HOOK
