"""Prometheus metrics on a per-app ``CollectorRegistry`` (never the process-global default).

Hot paths only count into plain attributes (``EventBus.stats``, memory ``stats``, the
integration monitor, breakers and limiters); :class:`EchoCollector` reads them when
``/metrics`` is scraped. HTTP traffic is measured by :class:`PrometheusMiddleware`, labelled
by the matched route *template* so raw paths cannot explode the label space.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.observability._plain_metrics import PlainCounter, PlainHistogram
from deep_tree_echo.observability.integration_monitor import IntegrationMonitor
from deep_tree_echo.observability.integration_monitor import monitor as default_monitor

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.events import EventBus
    from deep_tree_echo.aar_core.memory import MemoryManager

__all__ = [
    "SOURCE_KINDS",
    "EchoCollector",
    "EchoMetrics",
    "HttpMetrics",
    "PrometheusMiddleware",
    "render_latest",
]

SOURCE_KINDS: Final = ("event_bus", "memory", "monitor")
UNMATCHED_ROUTE: Final = "unmatched"
QUANTILES: Final = (0.5, 0.95, 0.99)
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def render_latest(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its content type, for a ``/metrics`` route."""
    return _generate_latest(registry), CONTENT_TYPE_LATEST


class HttpMetrics:
    """Request counter and latency histogram, labelled by method and route template.

    Counted into plain lists (:mod:`._plain_metrics`), written at scrape time exactly as
    prometheus_client's ``Counter`` and ``Histogram`` would write them.
    """

    def __init__(
        self, registry: CollectorRegistry, *, buckets: Iterable[float] = LATENCY_BUCKETS
    ) -> None:
        self.requests = PlainCounter(
            "dte_http_requests",
            "HTTP requests handled, by method, route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = PlainHistogram(
            "dte_http_request_duration_seconds",
            "HTTP request duration in seconds, by method and route template",
            ["method", "route"],
            buckets=buckets,
            registry=registry,
        )
        self._bounds = self.duration.bounds
        # (method, route, status) -> (counter series, histogram series)
        self._series: dict[tuple[str, str, int], tuple[list[float], list[float]]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.requests.series(method, route, str(status)),
                self.duration.series(method, route),
            )
            self._series[key] = series
        series[0][0] += 1.0
        histogram = series[1]
        histogram[-2] += seconds  # observe_into(), inlined
        if seconds == seconds:
            histogram[bisect_left(self._bounds, seconds)] += 1.0


class PrometheusMiddleware:
    """Pure ASGI middleware timing HTTP requests into :class:`HttpMetrics`.

    WebSocket and lifespan traffic passes straight through, and the response is forwarded
    message by message, so streaming responses are not buffered. ``metrics`` may be an
    :class:`HttpMetrics` or anything with an ``http`` attribute holding one (``EchoMetrics``).
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics | EchoMetrics) -> None:
        self.app = app
        self.http: HttpMetrics = metrics.http if isinstance(metrics, EchoMetrics) else metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app raises before starting a response
        start = time.perf_counter()

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            # the router stores the matched route in the (shared) scope dict
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            self.http.observe(scope["method"], route, status, time.perf_counter() - start)


class EchoCollector(Collector):
    """Reads Echo components' counters at scrape time and yields them as metric families.

    ``sources`` are ``(kind, object)`` pairs, kind one of :data:`SOURCE_KINDS`:

    * ``event_bus``: ``.stats`` dict and ``.name`` (``dte_events_*``, labelled by bus)
    * ``memory``: ``.stats`` dict of operation counters (``dte_memory_operations_total{op}``,
      summed over all memory sources)
    * ``monitor``: an :class:`IntegrationMonitor` (``dte_integration_*``)

    Circuit breakers and rate limiters are read from the resilience registry of live objects.
    """

    def __init__(
        self, sources: Iterable[tuple[str, Any]] = (), *, include_resilience: bool = True
    ) -> None:
        self._sources: list[tuple[str, Any]] = []
        self.include_resilience = include_resilience
        for kind, obj in sources:
            self.add(kind, obj)

    def add(self, kind: str, obj: Any) -> None:
        if kind not in SOURCE_KINDS:
            raise InvalidInputError(
                f"unknown metrics source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}"
            )
        if any(k == kind and o is obj for k, o in self._sources):
            return
        self._sources.append((kind, obj))

    def collect(self) -> Iterator[Metric]:
        buses = [obj for kind, obj in self._sources if kind == "event_bus"]
        memories = [obj for kind, obj in self._sources if kind == "memory"]
        monitors = [obj for kind, obj in self._sources if kind == "monitor"]
        if buses:
            yield from self._bus_families(buses)
        if memories:
            yield self._memory_family(memories)
        if monitors:
            yield from self._monitor_families(monitors)
        if self.include_resilience:
            yield from self._resilience_families()

    @staticmethod
    def _bus_families(buses: list[EventBus]) -> Iterator[Metric]:
        families = {
            key: CounterMetricFamily(name, doc, labels=["bus"])
            for key, name, doc in (
                ("emitted", "dte_events_emitted", "Events emitted on the bus"),
                ("delivered", "dte_event_deliveries", "Event handler runs that succeeded"),
                ("failed", "dte_event_failures", "Event handler runs that raised or timed out"),
                ("timeouts", "dte_event_timeouts", "Event handler runs that timed out"),
            )
        }
        for bus in buses:
            stats = bus.stats
            name = bus.name
            for key, family in families.items():
                family.add_metric([name], float(stats.get(key, 0)))
        yield from families.values()

    @staticmethod
    def _memory_family(memories: list[MemoryManager]) -> Metric:
        totals: dict[str, float] = {}
        for memory in memories:
            for op, count in memory.stats.items():
                totals[op] = totals.get(op, 0.0) + float(count)
        family = CounterMetricFamily(
            "dte_memory_operations", "Memory manager operations, by operation", labels=["op"]
        )
        for op, total in sorted(totals.items()):
            family.add_metric([op], total)
        return family

    @staticmethod
    def _monitor_families(monitors: list[IntegrationMonitor]) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "dte_integration_requests",
            "Integration calls, by integration and outcome",
            labels=["integration", "outcome"],
        )
        duration = HistogramMetricFamily(
            "dte_integration_request_duration_seconds",
            "Integration call duration in seconds, over all calls",
            labels=["integration"],
        )
        latency = Metric(
            "dte_integration_response_time_seconds",
            "Integration response time: quantiles over the recent window, count/sum over all",
            "summary",
        )
        firing = GaugeMetricFamily(
            "dte_integration_alert_firing",
            "1 while an integration alert is firing",
            labels=["integration", "type"],
        )
        seen: set[str] = set()
        for mon in monitors:
            for name, m in list(mon.metrics.items()):
                if name in seen:  # the same integration in two monitors: first one wins
                    continue
                seen.add(name)
                requests.add_metric([name, "success"], float(m.successful_requests))
                requests.add_metric([name, "failure"], float(m.failed_requests))
                base = "dte_integration_response_time_seconds"
                for q, value in zip(QUANTILES, m.percentiles(*QUANTILES), strict=True):
                    latency.add_sample(base, {"integration": name, "quantile": str(q)}, value)
                latency.add_sample(base + "_count", {"integration": name}, m.total_requests)
                latency.add_sample(base + "_sum", {"integration": name}, m.total_response_time)
                duration.add_metric(
                    [name],
                    [(_le(bound), float(count)) for bound, count in m.histogram()],
                    sum_value=m.total_response_time,
                )
                for kind, active in list(m._firing.items()):
                    firing.add_metric([name, kind], 1.0 if active else 0.0)
        yield requests
        yield duration
        yield latency
        yield firing

    @staticmethod
    def _resilience_families() -> Iterator[Metric]:
        from deep_tree_echo.resilience._registry import iter_breakers, iter_limiters
        from deep_tree_echo.resilience.circuit_breaker import CircuitState

        # breakers sharing a name are one series: the worst state wins
        severity = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
        worst: dict[str, CircuitState] = {}
        for breaker in iter_breakers():
            state = breaker.peek_state()  # not ``state``: reading must not move OPEN to HALF_OPEN
            name = breaker.name
            if name not in worst or severity[state] > severity[worst[name]]:
                worst[name] = state
        breakers = GaugeMetricFamily(
            "dte_circuit_breaker_state",
            "1 for the circuit breaker's current state, 0 for the others (worst of a name)",
            labels=["breaker", "state"],
        )
        for name, current in sorted(worst.items()):
            for member in CircuitState:
                breakers.add_metric([name, member.value], 1.0 if member is current else 0.0)
        # limiters sharing a name are one series: rejections are summed
        totals: dict[str, float] = {}
        for limiter in iter_limiters():
            totals[limiter.name] = totals.get(limiter.name, 0.0) + float(limiter.rejections)
        limiters = CounterMetricFamily(
            "dte_rate_limiter_rejections",
            "Requests rejected by rate limiters, summed over limiters of the same name",
            labels=["limiter"],
        )
        for name, total in sorted(totals.items()):
            limiters.add_metric([name], total)
        yield breakers
        yield limiters


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class EchoMetrics:
    """The app's metrics bundle: HTTP metrics, engine latency and the scrape-time collector.

    ``EchoMetrics(registry)`` registers everything on ``registry``. The integration monitor
    read is ``integration_monitor`` if given, else the process-wide default ``monitor``
    (unless ``include_default_monitor=False``).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        integration_monitor: IntegrationMonitor | None = None,
        include_default_monitor: bool = True,
        include_resilience: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.http = HttpMetrics(self.registry)
        self.engine_latency = PlainHistogram(
            "dte_engine_latency_seconds",
            "Cognitive engine response latency in seconds, by engine",
            ["engine"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.collector = EchoCollector(include_resilience=include_resilience)
        if integration_monitor is not None:
            self.collector.add("monitor", integration_monitor)
        elif include_default_monitor:
            self.collector.add("monitor", default_monitor)
        self.registry.register(self.collector)

    def add_source(self, kind: str, obj: Any) -> None:
        """Read ``obj`` at scrape time; ``kind`` is ``event_bus``, ``memory`` or ``monitor``."""
        self.collector.add(kind, obj)

    def render(self) -> tuple[bytes, str]:
        return render_latest(self.registry)
