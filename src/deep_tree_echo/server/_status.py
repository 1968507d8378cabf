"""What ``GET /v1/status`` reports, gathered from the live objects of one app.

Breakers and limiters come from the process-wide weak registries (the same ones ``/metrics``
reads), integrations and alerts from the integration monitor, the rest from ``app.state``.
:class:`StatusHistory` keeps a few minutes of monitor samples for the console's chart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from deep_tree_echo import __version__
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.observability.integration_monitor import IntegrationMonitor
from deep_tree_echo.resilience._registry import iter_breakers, iter_limiters

#: Seconds between two history samples, and how many samples are kept (5 minutes).
HISTORY_INTERVAL = 10.0
HISTORY_SAMPLES = 30


class BreakerStatus(BaseModel):
    """One circuit breaker, read without moving it (an expired OPEN reads as half_open)."""

    name: str
    state: Literal["closed", "open", "half_open"]
    failure_count: int = Field(description="consecutive failures, or failures in the window")
    failure_rate: float | None = Field(
        description="failures over calls in the sliding window (rate mode), else null"
    )
    failure_threshold: int
    failure_rate_threshold: float | None
    recovery_timeout: float


class LimiterStatus(BaseModel):
    """One rate limiter: its rate and how many requests it refused."""

    name: str
    max_requests: int
    time_window: float
    rejections: int
    tracked_keys: int


class IntegrationStatus(BaseModel):
    """Request counts and latency quantiles (seconds, over the recent window) of one integration."""

    name: str
    total_requests: int
    failed_requests: int
    error_rate: float = Field(description="failures over requests in the recent window")
    p50: float
    p95: float
    p99: float
    firing: list[str] = Field(description="alert types currently firing")


class HistoryPoint(BaseModel):
    """One sample of the integration monitor: requests and errors since the previous sample,
    and the worst p50/p95/p99 (seconds) over the integrations at that time."""

    timestamp: float
    requests: int
    errors: int
    p50: float
    p95: float
    p99: float


class AlertStatus(BaseModel):
    """An integration alert whose condition is firing now."""

    integration: str
    type: str
    value: float
    threshold: float
    timestamp: float


class StoreStatus(BaseModel):
    """The memory store: its kind, whether it is open, how many live memories it holds."""

    kind: str
    ready: bool
    memories: int | None
    stats: dict[str, int]


class NatsStatus(BaseModel):
    """The NATS event bridge (``configured`` false when ``DTE_NATS_URL`` is unset)."""

    configured: bool
    connected: bool
    stats: dict[str, int]


class StatusResponse(BaseModel):
    """Everything the console's Health view shows, in one document."""

    node_id: str
    version: str
    timestamp: float
    engine: str
    websocket_connections: int
    breakers: list[BreakerStatus]
    limiters: list[LimiterStatus]
    integrations: list[IntegrationStatus]
    history: list[HistoryPoint]
    alerts: list[AlertStatus]
    store: StoreStatus
    nats: NatsStatus


def breaker_statuses() -> list[BreakerStatus]:
    out = []
    for b in iter_breakers():
        out.append(
            BreakerStatus(
                name=b.name,
                state=b.peek_state().value,
                failure_count=b.failure_count,
                failure_rate=b.failure_rate,
                failure_threshold=b.failure_threshold,
                failure_rate_threshold=b.failure_rate_threshold,
                recovery_timeout=b.recovery_timeout,
            )
        )
    return sorted(out, key=lambda s: s.name)


def limiter_statuses() -> list[LimiterStatus]:
    out = [
        LimiterStatus(
            name=lim.name,
            max_requests=lim.max_requests,
            time_window=lim.time_window,
            rejections=lim.rejections,
            tracked_keys=len(lim),
        )
        for lim in iter_limiters()
    ]
    return sorted(out, key=lambda s: s.name)


def integration_statuses(monitor: IntegrationMonitor) -> list[IntegrationStatus]:
    firing: dict[str, list[str]] = {}
    for name, kind in monitor.firing():
        firing.setdefault(name, []).append(kind)
    out = []
    for name, m in sorted(list(monitor.metrics.items())):
        p50, p95, p99 = m.percentiles(0.5, 0.95, 0.99)
        out.append(
            IntegrationStatus(
                name=name,
                total_requests=m.total_requests,
                failed_requests=m.failed_requests,
                error_rate=m.window_failure_rate,
                p50=p50,
                p95=p95,
                p99=p99,
                firing=sorted(firing.get(name, [])),
            )
        )
    return out


def open_alerts(monitor: IntegrationMonitor) -> list[AlertStatus]:
    """The latest ``firing`` record of every (integration, type) still firing."""
    wanted = set(monitor.firing())
    out: list[AlertStatus] = []
    for alert in reversed(list(monitor.alerts)):
        key = (alert["integration"], alert["type"])
        if key in wanted and alert["state"] == "firing":
            wanted.discard(key)
            out.append(
                AlertStatus(
                    integration=alert["integration"],
                    type=alert["type"],
                    value=alert["value"],
                    threshold=alert["threshold"],
                    timestamp=alert["timestamp"],
                )
            )
    return out


class StatusHistory:
    """The last ``size`` samples of a monitor, one per ``interval`` seconds (see :meth:`run`)."""

    def __init__(
        self,
        monitor: IntegrationMonitor,
        *,
        size: int = HISTORY_SAMPLES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.monitor = monitor
        self.points: deque[HistoryPoint] = deque(maxlen=size)
        self._clock = clock
        self._totals: dict[str, tuple[int, int]] = {}

    def sample(self) -> HistoryPoint:
        """Record one point now: deltas since the previous sample, worst quantiles."""
        requests = errors = 0
        p50 = p95 = p99 = 0.0
        totals: dict[str, tuple[int, int]] = {}
        for name, m in list(self.monitor.metrics.items()):
            before_total, before_failed = self._totals.get(name, (0, 0))
            totals[name] = (m.total_requests, m.failed_requests)
            requests += max(0, m.total_requests - before_total)
            errors += max(0, m.failed_requests - before_failed)
            q50, q95, q99 = m.percentiles(0.5, 0.95, 0.99)
            p50, p95, p99 = max(p50, q50), max(p95, q95), max(p99, q99)
        self._totals = totals
        point = HistoryPoint(
            timestamp=self._clock(), requests=requests, errors=errors, p50=p50, p95=p95, p99=p99
        )
        self.points.append(point)
        return point

    @contextlib.asynccontextmanager
    async def running(self, interval: float = HISTORY_INTERVAL) -> AsyncIterator[StatusHistory]:
        """Sample every ``interval`` seconds in a background task while the context is open."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                self.sample()

        self.sample()  # a first point at once, so the chart has a start

        task = asyncio.get_running_loop().create_task(loop(), name="status-history")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def gather_status(
    state: Any, monitor: IntegrationMonitor, tenant: str = DEFAULT_TENANT
) -> StatusResponse:
    """The whole status document from ``app.state`` and ``monitor``; the memory count is
    ``tenant``'s (a tenant never learns about another's data)."""
    gateway = state.gateway
    memories: int | None = None
    if gateway.initialized:
        memories = await gateway.memory_for(tenant).count()
    bridge = getattr(state, "nats_bridge", None)
    history: StatusHistory | None = getattr(state, "status_history", None)
    return StatusResponse(
        node_id=gateway.node_id,
        version=__version__,
        timestamp=time.time(),
        engine=gateway.engine.name,
        websocket_connections=state.ws_manager.active_connections,
        breakers=breaker_statuses(),
        limiters=limiter_statuses(),
        integrations=integration_statuses(monitor),
        history=list(history.points) if history is not None else [],
        alerts=open_alerts(monitor),
        store=StoreStatus(
            kind=gateway.settings.store_kind,
            ready=gateway.initialized,
            memories=memories,
            stats=gateway.memory.stats,
        ),
        nats=NatsStatus(
            configured=bool(gateway.settings.nats_url),
            connected=bridge is not None and bridge.connected,
            stats=bridge.stats if bridge is not None else {},
        ),
    )
