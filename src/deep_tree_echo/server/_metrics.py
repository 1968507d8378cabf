"""Server-side Prometheus collectors: WebSocket fan-out and NATS bridge counters, at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deep_tree_echo.server.websocket import ConnectionManager

if TYPE_CHECKING:
    from deep_tree_echo.server.nats_bridge import NatsEventBridge


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


class NatsBridgeCollector(Collector):
    """Reads a :class:`NatsEventBridge`'s counters at scrape time."""

    def __init__(self, bridge: NatsEventBridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        stats = self.bridge.stats
        yield GaugeMetricFamily(
            "dte_nats_connected", "1 while the NATS event bridge is connected",
            value=1.0 if self.bridge.connected else 0.0,
        )
        for name, doc in (
            ("published", "Local events published to NATS by the event bridge"),
            ("received", "Events from other nodes re-emitted on the local bus"),
            ("dropped", "NATS bridge messages dropped (malformed, too large, unsendable)"),
            ("reconnects", "Times the NATS event bridge reconnected"),
        ):
            yield CounterMetricFamily(f"dte_nats_{name}", doc, value=stats[name])
