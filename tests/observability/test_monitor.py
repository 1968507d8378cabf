"""IntegrationMonitor: bounded metrics, percentiles and edge-triggered alerts."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.observability import (
    Alert,
    AlertSink,
    IntegrationMetrics,
    IntegrationMonitor,
    LoggingAlertSink,
    monitor,
    monitored_integration_call,
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_monitor(clock: FakeClock, **kwargs: Any) -> IntegrationMonitor:
    options: dict[str, Any] = {"window": 20, "min_requests": 10, "cooldown": 60.0}
    options.update(kwargs)
    return IntegrationMonitor(clock=clock, wall_clock=lambda: 42.0, **options)


def states(mon: IntegrationMonitor, kind: str) -> list[str]:
    return [a["state"] for a in mon.alerts if a["type"] == kind]


def test_metrics_keep_seed_fields_and_running_mean() -> None:
    m = IntegrationMetrics(window=4)
    for seconds, ok in [(1.0, True), (2.0, False), (3.0, True), (4.0, True), (10.0, True)]:
        m.record(ok, seconds)
    assert (m.total_requests, m.successful_requests, m.failed_requests) == (5, 4, 1)
    assert m.average_response_time == pytest.approx(4.0)  # over all 5 requests
    assert list(m.response_times) == [2.0, 3.0, 4.0, 10.0]  # the window
    assert m.window_mean_response_time == pytest.approx(4.75)
    assert m.window_failures == 1
    m.record(True, 1.0)  # the failure slides out of the window
    assert m.window_failures == 0
    assert m.window_failure_rate == 0.0
    assert m.failure_rate == pytest.approx(1 / 6)


def test_seed_style_construction_with_none() -> None:
    m = IntegrationMetrics(response_times=None)  # type: ignore[arg-type]
    assert m.response_times.maxlen == m.window
    assert m.p50 == 0.0


def test_percentiles_over_window() -> None:
    m = IntegrationMetrics(window=100)
    for i in range(1, 101):
        m.record(True, float(i))
    assert m.p50 == pytest.approx(50.5)
    assert m.p95 == pytest.approx(95.05)
    assert m.p99 == pytest.approx(99.01)
    assert m.percentiles(0.0, 1.0) == (1.0, 100.0)
    summary = m.to_dict()
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["total_requests"] == 100


def test_memory_stays_bounded_and_sums_stay_exact() -> None:
    mon = IntegrationMonitor(window=256)
    for i in range(50_000):
        mon.record_request("openai", i % 50 != 0, 0.001 * (i % 7))
    m = mon.metrics["openai"]
    assert len(m.response_times) == 256
    assert m.total_requests == 50_000
    assert m.window_mean_response_time == pytest.approx(sum(m.response_times) / 256)
    assert m.window_failures == sum(1 for i in range(50_000 - 256, 50_000) if i % 50 == 0)


def test_histogram_counts_every_request_into_fixed_buckets() -> None:
    m = IntegrationMetrics(window=2, buckets=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 3.0, 0.2):
        m.record(True, seconds)
    # over all requests, not just the 2-wide window; a bound is inclusive (Prometheus "le")
    assert m.histogram() == [(0.1, 2), (1.0, 5), (math.inf, 6)]
    assert IntegrationMetrics().buckets[:3] == (0.005, 0.01, 0.025)  # prometheus defaults
    seeded = IntegrationMetrics(response_times=[0.2, 5.0], buckets=(1.0, math.inf))  # type: ignore[arg-type]
    assert seeded.buckets == (1.0,)
    assert seeded.histogram() == [(1.0, 1), (math.inf, 2)]


def test_bad_histogram_buckets_are_rejected() -> None:
    for buckets in ((), (1.0, 0.5), (0.5, 0.5)):
        with pytest.raises(InvalidInputError):
            IntegrationMetrics(buckets=buckets)
    with pytest.raises(InvalidInputError):
        IntegrationMonitor(buckets=(2.0, 1.0))


def test_failure_rate_alert_fires_once_then_resolves_once() -> None:
    clock = FakeClock()
    mon = make_monitor(clock)
    for _ in range(10):
        mon.record_request("crm", False, 0.1)
    assert mon.alerts == []  # not more than min_requests yet
    mon.record_request("crm", False, 0.1)
    for _ in range(30):
        mon.record_request("crm", False, 0.1)  # stays firing: no new alerts
    assert states(mon, "high_failure_rate") == ["firing"]
    alert = mon.alerts[0]
    assert alert == {
        "integration": "crm",
        "type": "high_failure_rate",
        "value": 1.0,
        "threshold": 0.1,
        "timestamp": 42.0,
        "state": "firing",
    }
    assert mon.firing() == [("crm", "high_failure_rate")]
    for _ in range(18):
        mon.record_request("crm", True, 0.1)  # window: 18 ok + 2 failed = 10% -> not above
    assert states(mon, "high_failure_rate") == ["firing", "resolved"]
    assert mon.alerts[-1]["value"] == pytest.approx(0.1)
    for _ in range(50):
        mon.record_request("crm", True, 0.1)
    assert states(mon, "high_failure_rate") == ["firing", "resolved"]
    assert mon.firing() == []


def test_cooldown_suppresses_flapping_refire() -> None:
    clock = FakeClock()
    mon = make_monitor(clock, window=12, min_requests=10, failure_rate_threshold=0.5)

    def flap_on() -> None:
        for _ in range(12):
            mon.record_request("s3", False, 0.1)

    def flap_off() -> None:
        for _ in range(12):
            mon.record_request("s3", True, 0.1)

    flap_on()
    flap_off()
    assert states(mon, "high_failure_rate") == ["firing", "resolved"]
    clock.now += 30  # within the cooldown
    flap_on()
    assert states(mon, "high_failure_rate") == ["firing", "resolved"]
    clock.now += 31  # cooldown over while the condition still holds: fires on the next request
    mon.record_request("s3", False, 0.1)
    assert states(mon, "high_failure_rate") == ["firing", "resolved", "firing"]


def test_response_time_alert_uses_window_mean() -> None:
    clock = FakeClock()
    mon = make_monitor(clock, window=20, response_time_threshold=1.0, cooldown=0.0)
    mon.record_request("llm", True, 0.5)
    mon.record_request("llm", True, 2.0)  # mean 1.25 > 1.0
    assert states(mon, "high_response_time") == ["firing"]
    assert mon.alerts[0]["value"] == pytest.approx(1.25)
    mon.record_request("llm", True, 0.5)  # mean 1.0: not above
    assert states(mon, "high_response_time") == ["firing", "resolved"]


def test_alerts_are_bounded() -> None:
    clock = FakeClock()
    mon = make_monitor(clock, response_time_threshold=1.0, cooldown=0.0, max_alerts=5, window=11)
    for _ in range(10):
        mon.record_request("x", True, 100.0)
        for _ in range(11):
            mon.record_request("x", True, 0.0)
    assert len(mon.alerts) == 5
    assert mon.alerts[-1]["state"] == "resolved"


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(InvalidInputError):
        IntegrationMonitor(window=10, min_requests=10)
    with pytest.raises(InvalidInputError):
        IntegrationMetrics(window=0)


class ListSink:
    def __init__(self) -> None:
        self.received: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.received.append(alert)


class BrokenSink:
    async def send(self, alert: Alert) -> None:
        raise ConnectionError("pager down")


async def test_alerts_reach_event_bus_and_sinks() -> None:
    bus = EventBus()
    seen: list[dict[str, Any]] = []
    bus.register("integration.*", seen.append)
    sink = ListSink()
    assert isinstance(sink, AlertSink)
    mon = IntegrationMonitor(
        window=20, response_time_threshold=1.0, event_bus=bus, sinks=[sink, BrokenSink()]
    )
    mon.record_request("llm", True, 5.0)
    await mon.drain()
    assert [(e["integration"], e["type"], e["state"]) for e in seen] == [
        ("llm", "high_response_time", "firing")
    ]
    assert sink.received == mon.alerts


async def test_sink_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    mon = IntegrationMonitor(window=20, response_time_threshold=1.0, sinks=[BrokenSink()])
    with caplog.at_level(logging.ERROR, logger="deep_tree_echo.observability"):
        mon.record_request("llm", True, 5.0)
        await mon.drain()
    assert any("pager down" in (r.exc_text or "") for r in caplog.records)
    assert len(mon.alerts) == 1


async def test_logging_sink_writes_the_alert(caplog: pytest.LogCaptureFixture) -> None:
    mon = IntegrationMonitor(window=20, response_time_threshold=1.0, sinks=[LoggingAlertSink()])
    with caplog.at_level(logging.INFO, logger="deep_tree_echo.alerts"):
        mon.record_request("llm", True, 5.0)
        for _ in range(4):  # window mean back to 1.0: not above the threshold
            mon.record_request("llm", True, 0.0)
        await mon.drain()
    messages = [r.getMessage() for r in caplog.records]
    assert any("high_response_time firing for llm" in m for m in messages)
    assert any("high_response_time resolved for llm" in m for m in messages)


def test_alerts_without_running_loop_are_kept() -> None:
    mon = IntegrationMonitor(window=20, response_time_threshold=1.0, event_bus=EventBus())
    mon.record_request("llm", True, 5.0)
    assert [a["state"] for a in mon.alerts] == ["firing"]


async def test_call_times_sync_and_async_and_reraises() -> None:
    mon = IntegrationMonitor()

    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    def parse(text: str) -> str:
        return text.upper()

    async def broken() -> None:
        raise RuntimeError("upstream 500")

    assert await mon.call("api", fetch, 21) == 42
    assert await mon.call("api", parse, "ok") == "OK"
    with pytest.raises(RuntimeError, match="upstream 500"):
        await mon.call("api", broken)
    m = mon.metrics["api"]
    assert (m.total_requests, m.successful_requests, m.failed_requests) == (3, 2, 1)
    assert all(t >= 0 for t in m.response_times)


async def test_monitored_integration_call_records_on_default_monitor() -> None:
    name = "test-default-monitor-integration"
    monitor.metrics.pop(name, None)

    async def ok() -> str:
        return "done"

    def fail() -> None:
        raise ValueError("bad")

    assert await monitored_integration_call(name, ok) == "done"
    with pytest.raises(ValueError):
        await monitored_integration_call(name, fail)
    m = monitor.metrics.pop(name)
    assert (m.successful_requests, m.failed_requests) == (1, 1)


def test_distinct_names_beyond_max_integrations_fold_into_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    mon = make_monitor(clock, max_integrations=3, response_time_threshold=1.0)
    with caplog.at_level(logging.WARNING, logger="deep_tree_echo.observability"):
        for name in ("a", "b", "c"):
            mon.record_request(name, True, 0.1)
        assert list(mon.metrics) == ["a", "b", "c"]
        for i in range(500):
            mon.record_request(f"tenant-{i}", i % 2 == 0, 0.2)
        mon.record_request("a", True, 0.1)  # known names keep their own entry
    assert list(mon.metrics) == ["a", "b", "c", "__other__"]
    other = mon.metrics["__other__"]
    assert other.total_requests == 500
    assert other.failed_requests == 250
    assert mon.metrics["a"].total_requests == 2
    warnings = [r for r in caplog.records if "max_integrations" in r.getMessage()]
    assert len(warnings) == 1
    assert "tenant-0" in warnings[0].getMessage()
    # alerts for folded names are raised (once) under the shared entry
    for i in range(20):
        mon.record_request(f"slow-{i}", True, 5.0)
    assert ("__other__", "high_response_time") in mon.firing()
    assert mon.alerts and {a["integration"] for a in mon.alerts} == {"__other__"}
    assert states(mon, "high_response_time") == ["firing"]

    mon.reset()
    with caplog.at_level(logging.WARNING, logger="deep_tree_echo.observability"):
        for name in ("x", "y", "z", "w"):
            mon.record_request(name, True, 0.1)
    assert list(mon.metrics) == ["x", "y", "z", "__other__"]
    warnings = [r for r in caplog.records if "max_integrations" in r.getMessage()]
    assert len(warnings) == 2  # warned again after a reset


def test_max_integrations_default_and_validation() -> None:
    assert IntegrationMonitor().max_integrations == 1000
    with pytest.raises(InvalidInputError, match="max_integrations"):
        IntegrationMonitor(max_integrations=0)
    mon = IntegrationMonitor(max_integrations=1)
    for i in range(10_000):
        mon.record_request(f"n{i}", True, 0.01)
    assert len(mon.metrics) == 2
