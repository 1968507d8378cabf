"""Per-integration request metrics and edge-triggered alerts, O(1) per recorded request.

Each integration keeps counters over its whole life (including a fixed-bucket latency
histogram) plus a bounded window of its most recent response times and outcomes; the window's
sums are kept running, so the alert checks after every request are O(1). Alerts fire when a
condition *starts* and are recorded again as ``resolved`` when it ends; a cooldown stops a
flapping condition from re-firing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal, ParamSpec, TypeVar, cast, overload

from deep_tree_echo._events import EventSink
from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.observability.alerts import Alert, AlertSink

__all__ = [
    "ALERT_EVENT",
    "DEFAULT_BUCKETS",
    "OVERFLOW_INTEGRATION",
    "IntegrationMetrics",
    "IntegrationMonitor",
    "monitor",
    "monitored_integration_call",
]

logger = logging.getLogger("deep_tree_echo.observability")

ALERT_EVENT = "integration.alert"
OVERFLOW_INTEGRATION = "__other__"
"""The entry new integration names are counted under once ``max_integrations`` are tracked."""
DEFAULT_WINDOW = 1024
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Latency histogram upper bounds in seconds (prometheus-client's defaults; +Inf is implied)."""

_P = ParamSpec("_P")
_T = TypeVar("_T")
AlertType = Literal["high_failure_rate", "high_response_time"]


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 when empty."""
    if not ordered:
        return 0.0
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class IntegrationMetrics:
    """Counters for one integration; memory is bounded by ``window``.

    ``average_response_time`` is the running mean over *all* requests; ``response_times``
    holds only the most recent ``window`` times, and the ``window_*`` properties and the
    percentiles describe that recent window. :meth:`histogram` counts *all* requests into the
    fixed ``buckets`` (one bisect per request), as a Prometheus histogram would.
    """

    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    average_response_time: float = 0.0
    response_times: deque[float] = field(default_factory=deque)
    window: int = DEFAULT_WINDOW
    total_response_time: float = 0.0
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    # per-bucket (not cumulative) counts; the last slot is +Inf
    _bucket_counts: list[int] = field(init=False, repr=False, compare=False)
    # outcome ring aligned with response_times: a plain preallocated list, no allocation
    _failed_ring: list[bool] = field(init=False, repr=False, compare=False)
    _pos: int = field(default=0, init=False, repr=False, compare=False)
    _window_sum: float = field(default=0.0, init=False, repr=False, compare=False)
    _window_failures: int = field(default=0, init=False, repr=False, compare=False)
    _evictions: int = field(default=0, init=False, repr=False, compare=False)
    # alert state lives next to the data so the per-request check needs no extra lookup
    _firing: dict[str, bool] = field(default_factory=dict, init=False, repr=False, compare=False)
    _last_fired: dict[str, float] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.window < 1:
            raise InvalidInputError("window must be at least 1")
        bounds = tuple(float(b) for b in self.buckets)
        if not bounds or any(lo >= hi for lo, hi in pairwise(bounds)):
            raise InvalidInputError("buckets must be a non-empty, strictly increasing sequence")
        if math.isinf(bounds[-1]):
            bounds = bounds[:-1]  # +Inf is always the implied last bucket
        self.buckets = bounds
        self._bucket_counts = [0] * (len(bounds) + 1)
        # accept the seed's ``response_times=None`` or any iterable of seconds
        initial: list[float] = list(self.response_times or ())
        self.response_times = deque(maxlen=self.window)
        self._failed_ring = [False] * self.window
        for seconds in initial[-self.window :]:
            self.response_times.append(seconds)
        self._pos = len(self.response_times) % self.window
        self._window_sum = math.fsum(self.response_times)
        for seconds in self.response_times:
            self._bucket_counts[bisect_left(bounds, seconds)] += 1

    def record(self, success: bool, response_time: float) -> None:
        """Count one request; O(1) (the window sum is re-summed once per ``window`` evictions)."""
        times = self.response_times
        ring = self._failed_ring
        pos = self._pos
        self.total_requests += 1
        self.total_response_time += response_time
        self._bucket_counts[bisect_left(self.buckets, response_time)] += 1
        self.average_response_time = self.total_response_time / self.total_requests
        if success:
            self.successful_requests += 1
        else:
            self.failed_requests += 1
        if len(times) == self.window:
            self._window_sum -= times[0]
            if ring[pos]:
                self._window_failures -= 1
            self._evictions += 1
        times.append(response_time)
        ring[pos] = not success
        self._pos = pos + 1 if pos + 1 < self.window else 0
        self._window_sum += response_time
        if not success:
            self._window_failures += 1
        if self._evictions >= self.window:  # stop float drift of the running sum
            self._evictions = 0
            self._window_sum = math.fsum(times)

    @property
    def window_requests(self) -> int:
        return len(self.response_times)

    @property
    def window_failures(self) -> int:
        return self._window_failures

    @property
    def window_failure_rate(self) -> float:
        n = len(self.response_times)
        return self._window_failures / n if n else 0.0

    @property
    def window_mean_response_time(self) -> float:
        n = len(self.response_times)
        return max(self._window_sum, 0.0) / n if n else 0.0

    @property
    def failure_rate(self) -> float:
        """Failures over all requests."""
        return self.failed_requests / self.total_requests if self.total_requests else 0.0

    def histogram(self) -> list[tuple[float, int]]:
        """Cumulative ``(upper bound, count)`` pairs, ending with ``(inf, total)``.

        A request lands in the first bucket whose bound is ``>=`` its time (Prometheus ``le``).
        """
        out: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.buckets, math.inf), self._bucket_counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        """Response-time quantiles (0..1) over the window, one sort for all of them."""
        ordered = sorted(self.response_times)
        return tuple(_percentile(ordered, q) for q in qs)

    @property
    def p50(self) -> float:
        return self.percentiles(0.5)[0]

    @property
    def p95(self) -> float:
        return self.percentiles(0.95)[0]

    @property
    def p99(self) -> float:
        return self.percentiles(0.99)[0]

    def to_dict(self) -> dict[str, Any]:
        p50, p95, p99 = self.percentiles(0.5, 0.95, 0.99)
        return {
            "total_requests": self.total_requests,
            "successful_requests": self.successful_requests,
            "failed_requests": self.failed_requests,
            "average_response_time": self.average_response_time,
            "window_requests": self.window_requests,
            "window_failure_rate": self.window_failure_rate,
            "window_mean_response_time": self.window_mean_response_time,
            "p50": p50,
            "p95": p95,
            "p99": p99,
        }


class IntegrationMonitor:
    """Records integration calls and raises edge-triggered alerts over a recent window.

    * ``high_failure_rate``: more than ``min_requests`` requests in the window and the window's
      failure ratio is above ``failure_rate_threshold``.
    * ``high_response_time``: the window's mean response time is above
      ``response_time_threshold`` seconds.

    A firing alert is recorded once when its condition starts and once (``state="resolved"``)
    when it ends; it cannot fire again until ``cooldown`` seconds (by ``clock``) after it last
    fired. Alerts go to :attr:`alerts` (the newest ``max_alerts``), to ``event_bus`` as
    ``integration.alert`` and to every sink, in a background task: ``record_request`` never
    waits for delivery, and :meth:`drain` awaits it. ``buckets`` are the latency histogram's
    upper bounds in seconds (default :data:`DEFAULT_BUCKETS`).

    At most ``max_integrations`` names get their own metrics; further names (e.g. one per
    tenant or URL by mistake) are all counted under ``"__other__"``, with one warning logged.
    """

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        failure_rate_threshold: float = 0.1,
        min_requests: int = 10,
        response_time_threshold: float = 5.0,
        cooldown: float = 60.0,
        event_bus: EventSink | None = None,
        sinks: Sequence[AlertSink] = (),
        clock: Callable[[], float] = time.monotonic,
        max_alerts: int = 1000,
        wall_clock: Callable[[], float] = time.time,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_integrations: int = 1000,
    ) -> None:
        if window <= min_requests:
            raise InvalidInputError(
                f"window ({window}) must be larger than min_requests ({min_requests}), "
                "or the failure-rate alert could never fire"
            )
        if max_alerts < 1:
            raise InvalidInputError("max_alerts must be at least 1")
        if max_integrations < 1:
            raise InvalidInputError("max_integrations must be at least 1")
        self.max_integrations = max_integrations
        self._overflow_warned = False
        self.window = window
        self.buckets = tuple(buckets)
        IntegrationMetrics(window=1, buckets=self.buckets)  # validate the bounds up front
        self.failure_rate_threshold = failure_rate_threshold
        self.min_requests = min_requests
        self.response_time_threshold = response_time_threshold
        self.cooldown = cooldown
        self.event_bus = event_bus
        self.sinks: list[AlertSink] = list(sinks)
        self.clock = clock
        self.wall_clock = wall_clock
        self.max_alerts = max_alerts
        self.metrics: dict[str, IntegrationMetrics] = {}
        self.alerts: list[Alert] = []
        self._pending: set[asyncio.Task[None]] = set()

    # -- recording ----------------------------------------------------------------------------

    def record_request(self, integration_name: str, success: bool, response_time: float) -> None:
        """Count one call of ``integration_name``; O(1) amortised, never blocks."""
        metrics = self.metrics.get(integration_name)
        if metrics is None:
            integration_name, metrics = self._new_metrics(integration_name)
        metrics.record(success, response_time)
        n = len(metrics.response_times)
        failing = (
            n > self.min_requests and metrics._window_failures > self.failure_rate_threshold * n
        )
        slow = metrics._window_sum > self.response_time_threshold * n
        firing = metrics._firing
        if failing != firing.get("high_failure_rate", False):
            self._transition(
                integration_name, metrics, "high_failure_rate", failing,
                metrics.window_failure_rate, self.failure_rate_threshold,
            )  # fmt: skip
        if slow != firing.get("high_response_time", False):
            self._transition(
                integration_name, metrics, "high_response_time", slow,
                metrics.window_mean_response_time, self.response_time_threshold,
            )  # fmt: skip

    def _new_metrics(self, name: str) -> tuple[str, IntegrationMetrics]:
        """Metrics for a name not seen yet: its own, or the shared overflow entry past the cap."""
        tracked = self.metrics
        if len(tracked) - (OVERFLOW_INTEGRATION in tracked) >= self.max_integrations:
            if not self._overflow_warned:
                self._overflow_warned = True
                logger.warning(
                    "integration monitor tracks %d integrations (max_integrations); %r and any "
                    "further new names are counted under %r",
                    self.max_integrations, name, OVERFLOW_INTEGRATION,
                )  # fmt: skip
            name = OVERFLOW_INTEGRATION
            metrics = tracked.get(name)
            if metrics is not None:
                return name, metrics
        metrics = tracked[name] = IntegrationMetrics(window=self.window, buckets=self.buckets)
        return name, metrics

    def _transition(
        self,
        name: str,
        metrics: IntegrationMetrics,
        kind: AlertType,
        active: bool,
        value: float,
        threshold: float,
    ) -> None:
        if active:
            now = self.clock()
            last = metrics._last_fired.get(kind)
            if last is not None and now - last < self.cooldown:
                return  # flapping: stay quiet until the cooldown has passed
            metrics._last_fired[kind] = now
        metrics._firing[kind] = active
        alert: Alert = {
            "integration": name,
            "type": kind,
            "value": value,
            "threshold": threshold,
            "timestamp": self.wall_clock(),
            "state": "firing" if active else "resolved",
        }
        self._create_alert(alert)

    def _create_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if len(self.alerts) > self.max_alerts:
            del self.alerts[: len(self.alerts) - self.max_alerts]
        if self.event_bus is None and not self.sinks:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("no running event loop: alert %r kept but not delivered", alert)
            return
        task = loop.create_task(self._deliver(alert))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, alert: Alert) -> None:
        targets: list[Any] = [] if self.event_bus is None else [self.event_bus]
        targets.extend(self.sinks)
        await asyncio.gather(*(self._deliver_to(target, alert) for target in targets))

    async def _deliver_to(self, target: Any, alert: Alert) -> None:
        try:
            bus = self.event_bus
            if bus is not None and target is bus:
                result: object = bus.emit(ALERT_EVENT, dict(alert))
            else:
                result = target.send(alert)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception(
                "delivering alert %s/%s to %r failed", alert["integration"], alert["type"], target
            )

    async def drain(self) -> None:
        """Wait until every alert recorded so far has been delivered (or failed to be)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- reading ------------------------------------------------------------------------------

    def firing(self) -> list[tuple[str, str]]:
        """``(integration, alert type)`` pairs whose condition is currently firing."""
        return [
            (name, kind)
            for name, metrics in list(self.metrics.items())
            for kind, active in list(metrics._firing.items())
            if active
        ]

    def reset(self) -> None:
        """Forget all metrics and alerts (pending deliveries still complete)."""
        self.metrics.clear()
        self.alerts.clear()
        self._overflow_warned = False

    # -- calling ------------------------------------------------------------------------------

    @overload
    async def call(
        self,
        integration_name: str,
        func: Callable[_P, Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T: ...

    @overload
    async def call(
        self, integration_name: str, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T: ...

    async def call(
        self, integration_name: str, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Call ``func`` (sync or async), timing it and recording success or failure.

        Any exception (cancellation included) counts as a failure and is re-raised.
        """
        start = time.perf_counter()
        success = False
        try:
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            success = True
            return result
        finally:
            self.record_request(integration_name, success, time.perf_counter() - start)


monitor = IntegrationMonitor()
"""The process-wide default monitor (used by :func:`monitored_integration_call`)."""


@overload
async def monitored_integration_call(
    integration_name: str, func: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
) -> _T: ...


@overload
async def monitored_integration_call(
    integration_name: str, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T: ...


async def monitored_integration_call(
    integration_name: str, func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """Call ``func(*args, **kwargs)`` and record it on the default :data:`monitor`."""
    return await cast(Any, monitor.call)(integration_name, func, *args, **kwargs)
