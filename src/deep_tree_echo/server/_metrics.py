"""Server-side Prometheus collector: WebSocket fan-out counters, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deep_tree_echo.server.websocket import ConnectionManager


class ServerCollector(Collector):
    """Reads the ConnectionManager counters at scrape time."""

    def __init__(self, manager: ConnectionManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        stats = self.manager.stats
        yield GaugeMetricFamily(
            "dte_ws_connections",
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
            counter_name = "dte_ws_" + name.removesuffix("_total")
            yield CounterMetricFamily(counter_name, doc, value=stats[name])
