"""Labelled counters and histograms counted into plain lists, exposed like prometheus_client's.

``prometheus_client``'s ``Counter.inc`` / ``Histogram.observe`` validate the metric and take a
lock on every value they touch (about 1 us per request for the HTTP metrics alone). The
service records from its event loop thread only, so these count into one plain list per
series and build the exposition at scrape time, sample for sample what ``Counter`` and
``Histogram`` write (``_total``/``_created``; cumulative ``_bucket`` with ``le``, ``_count``,
``_sum``, ``_created``). A scrape from another thread reads each number whole (the GIL).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

import prometheus_client.metrics as _prometheus_metrics
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

#: prometheus_client's own ``le`` formatting (``0.005``, ``1.0``, ``+Inf``); it is untyped.
_go_string = cast(Callable[[float], str], floatToGoString)

__all__ = ["PlainCounter", "PlainHistogram"]


def _created_series() -> bool:
    """Whether ``_created`` samples are written (``PROMETHEUS_DISABLE_CREATED_SERIES`` and
    ``disable_created_metrics()`` turn them off, as for prometheus_client's own metrics)."""
    return bool(getattr(_prometheus_metrics, "_use_created", True))


class _Family(Collector):
    """A metric family with label names: series by label values, registered on creation."""

    kind = "untyped"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry | None) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        if registry is not None:
            registry.register(self)

    def _values(self, args: tuple[object, ...], kwargs: dict[str, object]) -> tuple[str, ...]:
        """Label values from positional or keyword arguments, as ``labels()`` takes them."""
        if args and kwargs:
            raise ValueError("can't pass both *args and **kwargs")
        if kwargs:
            if set(kwargs) != set(self.labelnames):
                raise ValueError("incorrect label names")
            args = tuple(kwargs[name] for name in self.labelnames)
        if len(args) != len(self.labelnames):
            raise ValueError("incorrect label count")
        return tuple(str(value) for value in args)

    def describe(self) -> Iterable[Metric]:
        return [Metric(self.name, self.documentation, self.kind)]


class PlainCounter(_Family):
    """A labelled counter; ``series(*values)`` is the series' ``[value, created]`` list, to
    bump in place (``cell[0] += 1``)."""

    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry | None = None) -> None:
        super().__init__(name, documentation, labelnames, registry)
        self._series: dict[tuple[str, ...], list[float]] = {}

    def series(self, *values: str) -> list[float]:
        cell = self._series.get(values)
        if cell is None:
            cell = self._series[values] = [0.0, time.time()]
        return cell

    def inc(self, *values: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.series(*values)[0] += amount

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        created = _created_series()
        for values, (value, since) in list(self._series.items()):
            labels = dict(zip(self.labelnames, values, strict=True))
            metric.add_sample(self.name + "_total", labels, value)
            if created:
                metric.add_sample(self.name + "_created", labels, since)
        yield metric


class _HistogramChild:
    """``histogram.labels(...)``: one series, with ``observe``."""

    __slots__ = ("_bounds", "_cell")

    def __init__(self, bounds: tuple[float, ...], cell: list[float]) -> None:
        self._bounds = bounds
        self._cell = cell

    def observe(self, amount: float) -> None:
        observe_into(self._cell, self._bounds, amount)


def observe_into(cell: list[float], bounds: tuple[float, ...], amount: float) -> None:
    """Record ``amount`` in a :class:`PlainHistogram` series ``cell`` with upper ``bounds``
    (the hot paths inline these three lines)."""
    cell[-2] += amount  # the sum
    if amount == amount:  # NaN falls in no bucket, as in prometheus_client
        cell[bisect_left(bounds, amount)] += 1


class PlainHistogram(_Family):
    """A labelled histogram; ``series(*values)`` is the series' list ``[count per bucket...,
    sum, created]`` (bucket ``i`` counts observations in ``(bounds[i-1], bounds[i]]``)."""

    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Iterable[float], registry: CollectorRegistry | None = None) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        super().__init__(name, documentation, labelnames, registry)
        self.bounds = tuple(bounds)
        self._les = tuple(_go_string(b) for b in bounds)
        self._series: dict[tuple[str, ...], list[float]] = {}

    def series(self, *values: str) -> list[float]:
        cell = self._series.get(values)
        if cell is None:
            cell = self._series[values] = [0.0] * (len(self.bounds) + 1) + [time.time()]
        return cell

    def labels(self, *args: object, **kwargs: object) -> _HistogramChild:
        return _HistogramChild(self.bounds, self.series(*self._values(args, kwargs)))

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        created = _created_series()
        count = len(self.bounds)
        for values, cell in list(self._series.items()):
            cell = list(cell)  # one consistent reading
            labels = dict(zip(self.labelnames, values, strict=True))
            total = 0.0
            for le, n in zip(self._les, cell[:count], strict=True):
                total += n
                metric.add_sample(self.name + "_bucket", {**labels, "le": le}, total)
            metric.add_sample(self.name + "_count", labels, total)
            if self.bounds[0] >= 0:
                metric.add_sample(self.name + "_sum", labels, cell[count])
            if created:
                metric.add_sample(self.name + "_created", labels, cell[count + 1])
        yield metric
