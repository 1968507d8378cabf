"""ns per IntegrationMonitor.record_request after 1k/100k/1M records vs Histogram.observe.

Run: ``.venv/bin/python bench/monitoring.py``; ``run()`` returns the rows for other scripts.
The cost must stay flat as records accumulate (bounded window, running sums).
"""

from __future__ import annotations

import gc
import random
import time

from prometheus_client import CollectorRegistry, Histogram

from deep_tree_echo.observability.integration_monitor import IntegrationMonitor

FILL = 100_000
TIMED = 1_000  # records per timed batch
REPEATS = 30  # best of
CHECKPOINTS = (1_000, 100_000, 1_000_000)


def _inputs(n: int) -> tuple[list[bool], list[float]]:
    rng = random.Random(7)
    return [rng.random() > 0.02 for _ in range(n)], [rng.expovariate(20.0) for _ in range(n)]


def _time_records(mon: IntegrationMonitor, oks: list[bool], times: list[float]) -> float:
    record = mon.record_request
    start = time.perf_counter_ns()
    for ok, seconds in zip(oks, times, strict=True):
        record("openai", ok, seconds)
    return (time.perf_counter_ns() - start) / len(oks)


def run() -> list[tuple[str, float]]:
    """``(label, ns per call)`` rows: record_request at each checkpoint, then observe."""
    oks, times = _inputs(FILL)
    mon = IntegrationMonitor(cooldown=0.0)
    rows: list[tuple[str, float]] = []
    done = 0
    for checkpoint in CHECKPOINTS:
        while done < checkpoint:  # fill untimed up to the checkpoint
            n = min(FILL, checkpoint - done)
            _time_records(mon, oks[:n], times[:n])
            done += n
        gc.collect()
        best = float("inf")
        for i in range(REPEATS):
            lo = (i * TIMED) % FILL
            best = min(best, _time_records(mon, oks[lo : lo + TIMED], times[lo : lo + TIMED]))
            done += TIMED
        rows.append((f"record_request after {checkpoint:,} records", best))
    assert len(mon.metrics["openai"].response_times) <= mon.window

    hist = Histogram("bench_seconds", "bench", registry=CollectorRegistry())
    observe = hist.observe
    best = float("inf")
    sample = times[:TIMED]
    gc.collect()
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for seconds in sample:
            observe(seconds)
        best = min(best, (time.perf_counter_ns() - start) / len(sample))
    rows.append(("prometheus Histogram.observe", best))
    return rows


def main() -> None:
    rows = run()
    observe = rows[-1][1]
    print(f"{'operation':<38}{'ns/call':>10}{'vs observe':>12}")
    for label, ns in rows:
        print(f"{label:<38}{ns:>10.0f}{ns / observe:>11.2f}x")


if __name__ == "__main__":
    main()
