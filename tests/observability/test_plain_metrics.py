"""The plain-list counters and histograms write what prometheus_client's own would write."""

from __future__ import annotations

import math
import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics import disable_created_metrics, enable_created_metrics

from deep_tree_echo.observability._plain_metrics import PlainCounter, PlainHistogram
from deep_tree_echo.observability.prometheus import LATENCY_BUCKETS, HttpMetrics

OBSERVATIONS = [0.0001, 0.005, 0.0051, 0.3, 2.0, 59.0, 61.0, math.inf, -1.0, math.nan, 0.02]


def _text(registry: CollectorRegistry) -> str:
    """The exposition with ``_created`` timestamps blanked (creation times differ)."""
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())


def _pair() -> tuple[CollectorRegistry, CollectorRegistry]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = PlainCounter("x_requests", "Requests", ["method", "status"], registry=ours)
    histogram = PlainHistogram("x_seconds", "Seconds", ["route"], LATENCY_BUCKETS, registry=ours)
    reference_counter = Counter("x_requests", "Requests", ["method", "status"],
                                registry=theirs)
    reference_histogram = Histogram("x_seconds", "Seconds", ["route"], registry=theirs,
                                    buckets=LATENCY_BUCKETS)
    for i, amount in enumerate(OBSERVATIONS):
        route = f"/r{i % 3}"
        histogram.labels(route).observe(amount)
        reference_histogram.labels(route).observe(amount)
        counter.inc("GET", str(200 + i % 2))
        reference_counter.labels("GET", str(200 + i % 2)).inc()
    counter.inc("POST", "500", amount=2.5)
    reference_counter.labels("POST", "500").inc(2.5)
    return ours, theirs


def test_exposition_is_prometheus_clients() -> None:
    ours, theirs = _pair()
    assert _text(ours) == _text(theirs)
    assert 'x_seconds_bucket{le="+Inf",route="/r1"} 4.0' in _text(ours)


def test_without_created_series_as_prometheus_client() -> None:
    disable_created_metrics()
    try:
        ours, theirs = _pair()
        text = generate_latest(ours).decode()
        assert text == generate_latest(theirs).decode()
        assert "_created" not in text
    finally:
        enable_created_metrics()


def test_registry_refuses_a_second_family_of_the_same_name() -> None:
    registry = CollectorRegistry()
    PlainCounter("dup", "First", ["a"], registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("dup", "Second", registry=registry)


def test_labels_and_buckets_are_checked_like_prometheus_client() -> None:
    histogram = PlainHistogram("h", "H", ["engine"], [0.1, 1.0])
    assert histogram.bounds == (0.1, 1.0, math.inf)
    histogram.labels(engine="local").observe(0.5)
    assert histogram.series("local")[:3] == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError):
        histogram.labels("a", "b")
    with pytest.raises(ValueError):
        histogram.labels(other="a")
    with pytest.raises(ValueError):
        PlainHistogram("h2", "H", [], [1.0, 0.1])
    with pytest.raises(ValueError):
        PlainCounter("c", "C", ["a"]).inc("x", amount=-1)


def test_http_metrics_count_what_the_middleware_observes() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    for seconds in (0.001, 0.02, 0.02):
        metrics.observe("POST", "/v1/process", 200, seconds)
    metrics.observe("POST", "/v1/process", 413, 0.001)
    text = generate_latest(registry).decode()
    assert 'dte_http_requests_total{method="POST",route="/v1/process",status="200"} 3.0' in text
    assert 'dte_http_requests_total{method="POST",route="/v1/process",status="413"} 1.0' in text
    assert ('dte_http_request_duration_seconds_bucket{le="0.005",method="POST",'
            'route="/v1/process"} 2.0') in text
    assert 'dte_http_request_duration_seconds_count{method="POST",route="/v1/process"} 4.0' in text
    assert 'dte_http_request_duration_seconds_sum{method="POST",route="/v1/process"} 0.042' in text
