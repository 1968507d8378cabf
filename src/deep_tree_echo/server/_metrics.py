"""Server-side Prometheus collectors (WebSocket fan-out and rate limiting)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deep_tree_echo.server.websocket import ConnectionManager


class ServerCollector(Collector):
    """Reads the ConnectionManager counters (and rate-limit rejections) at scrape time."""

    def __init__(self, manager: ConnectionManager, rejected: Callable[[], int]) -> None:
        self.manager = manager
        self.rejected = rejected

    def collect(self) -> Iterator[Metric]:
        stats = self.manager.stats
        yield GaugeMetricFamily(
            "echo_ws_connections",
            "Open WebSocket connections",
            value=self.manager.active_connections,
        )
        for name, doc in (
            ("connected_total", "WebSocket connections accepted"),
            ("dropped_slow", "WebSocket clients dropped because their send queue was full"),
            ("messages_sent", "WebSocket messages written to sockets"),
            ("send_errors", "WebSocket sends that failed"),
        ):
            # prometheus_client appends "_total" to counter names itself
            counter_name = "echo_ws_" + name.removesuffix("_total")
            yield CounterMetricFamily(counter_name, doc, value=stats[name])
        yield CounterMetricFamily(
            "echo_http_rate_limited", "Requests rejected by the rate limit", value=self.rejected()
        )
