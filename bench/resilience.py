"""ns per call of our circuit breaker and rate limiter vs peer libraries, in one process.

Run: ``.venv/bin/python bench/resilience.py`` (well under 2 minutes). Overheads are over a bare
``await f()`` (or ``f()`` for sync rows); best of several repeats. Then, when
``bench/monitoring.py`` defines ``run()``, its rows are printed too.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import inspect
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from deep_tree_echo.resilience import CircuitBreaker, RateLimiter

N = 100_000
REPEATS = 7


async def target() -> int:
    return 1


def sync_target() -> int:
    return 1


async def time_async(body: Callable[[int], Awaitable[None]], n: int = N) -> float:
    """Best ns per iteration of ``body(n)`` over REPEATS runs."""
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        start = time.perf_counter_ns()
        await body(n)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def time_sync(body: Callable[[int], None], n: int = N) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        start = time.perf_counter_ns()
        body(n)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


# ---------------------------------------------------------------- circuit breakers


async def bench_breakers() -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    import aiobreaker
    import circuitbreaker
    import purgatory
    import pybreaker

    async def bare(n: int) -> None:
        for _ in range(n):
            await target()

    ours = CircuitBreaker(name="bench")

    async def ours_call(n: int) -> None:
        call = ours.call
        for _ in range(n):
            await call(target)

    async def ours_permit(n: int) -> None:
        try_acquire, on_success, on_failure = ours.try_acquire, ours.on_success, ours.on_failure
        for _ in range(n):
            permit = try_acquire()
            if permit is None:
                continue
            try:
                await target()
            except Exception as exc:
                on_failure(permit, exc)
                raise
            on_success(permit)

    decorated_ours = ours(target)

    async def ours_decorator(n: int) -> None:
        for _ in range(n):
            await decorated_ours()

    aio = aiobreaker.CircuitBreaker()

    async def aiobreaker_call(n: int) -> None:
        call = aio.call_async
        for _ in range(n):
            await call(target)

    factory = purgatory.AsyncCircuitBreakerFactory()
    purg_target = factory("bench")(target)

    async def purgatory_call(n: int) -> None:
        for _ in range(n):
            await purg_target()

    cb_target = circuitbreaker.circuit(target)

    async def circuitbreaker_call(n: int) -> None:
        for _ in range(n):
            await cb_target()

    base = await time_async(bare)
    rows: list[tuple[str, float]] = []
    for label, body, n in [
        ("deep_tree_echo call()", ours_call, N),
        ("deep_tree_echo try_acquire/on_success", ours_permit, N),
        ("deep_tree_echo @breaker (async)", ours_decorator, N),
        ("aiobreaker call_async()", aiobreaker_call, N // 4),
        ("purgatory @factory (async)", purgatory_call, N // 10),
        ("circuitbreaker @circuit (async)", circuitbreaker_call, N // 4),
    ]:
        rows.append((label, await time_async(body, n) - base))

    # pybreaker's call_async needs tornado (not installed): compare sync paths instead.
    def sync_bare(n: int) -> None:
        for _ in range(n):
            sync_target()

    pyb = pybreaker.CircuitBreaker()

    def pybreaker_call(n: int) -> None:
        call = pyb.call
        for _ in range(n):
            call(sync_target)

    def ours_sync(n: int) -> None:
        call = ours.call_sync
        for _ in range(n):
            call(sync_target)

    sync_base = time_sync(sync_bare)
    sync_rows = [
        ("deep_tree_echo call_sync()", time_sync(ours_sync) - sync_base),
        ("pybreaker call() (sync)", time_sync(pybreaker_call, N // 4) - sync_base),
    ]
    return rows, sync_rows


# ---------------------------------------------------------------- rate limiters


class SeedRateLimiter:
    """The naive list-based limiter from the spec, for the O(n) reference row."""

    def __init__(self, max_requests: int, time_window: int) -> None:
        self.max_requests = max_requests
        self.time_window = time_window
        self.requests: list[datetime] = []

    async def acquire(self) -> bool:
        now = datetime.now()
        cutoff = now - timedelta(seconds=self.time_window)
        self.requests = [t for t in self.requests if t > cutoff]
        if len(self.requests) < self.max_requests:
            self.requests.append(now)
            return True
        return False


async def bench_limiters() -> list[tuple[str, float]]:
    import aiolimiter
    from limits import RateLimitItemPerSecond
    from limits.aio.storage import MemoryStorage as AioMemoryStorage
    from limits.aio.strategies import (
        FixedWindowRateLimiter as AioFixed,
    )
    from limits.aio.strategies import (
        MovingWindowRateLimiter as AioMoving,
    )

    rows: list[tuple[str, float]] = []
    big = 10**12  # capacity always available: every call is admitted

    async def run_acquire(limiter: RateLimiter, n: int) -> None:
        acquire = limiter.acquire
        for _ in range(n):
            await acquire("default")

    for limit in (10, 1_000, 10_000):
        # window so short that the permit is always available: measures the admitted path
        ours = RateLimiter(limit, limit * 1e-8, name=f"bench-{limit}")
        ns = await time_async(lambda n, lim=ours: run_acquire(lim, n))  # type: ignore[misc]
        assert ours.rejections == 0
        rows.append((f"deep_tree_echo acquire() limit={limit:,}", ns))
    full = RateLimiter(10, 60.0, name="bench-full")
    ns = await time_async(lambda n: run_acquire(full, n))
    rows.append(("deep_tree_echo acquire() rejected (limit=10)", ns))

    ours_sync = RateLimiter(big, 1.0)

    def run_try(n: int) -> None:
        try_acquire = ours_sync.try_acquire
        for _ in range(n):
            try_acquire("default")

    rows.append(("deep_tree_echo try_acquire() (sync)", time_sync(run_try)))

    aiol = aiolimiter.AsyncLimiter(big, 1)

    async def aiolimiter_acquire(n: int) -> None:
        acquire = aiol.acquire
        for _ in range(n):
            await acquire()

    async def aiolimiter_has_capacity(n: int) -> None:
        has = aiol.has_capacity
        for _ in range(n):
            has()

    rows.append(("aiolimiter acquire()", await time_async(aiolimiter_acquire)))
    rows.append(
        ("aiolimiter has_capacity() (sync check, takes nothing)",
         await time_async(aiolimiter_has_capacity))
    )

    item = RateLimitItemPerSecond(big)
    for label, strategy in (("MovingWindow", AioMoving), ("FixedWindow", AioFixed)):
        limiter = strategy(AioMemoryStorage())

        async def hit(n: int, lim: Any = limiter) -> None:
            for _ in range(n):
                await lim.hit(item, "default")

        rows.append((f"limits.aio {label} hit()", await time_async(hit, N // 10)))

    for limit in (10, 1_000, 10_000):
        seed = SeedRateLimiter(limit, 60)
        seed.requests = [datetime.now()] * limit  # full: every call filters `limit` entries

        async def seed_acquire(n: int, s: SeedRateLimiter = seed) -> None:
            for _ in range(n):
                await s.acquire()

        rows.append((f"spec's list limiter acquire() limit={limit:,}",
                     await time_async(seed_acquire, max(200, 20_000 // limit))))
    return rows


# ---------------------------------------------------------------- report


def table(title: str, rows: list[tuple[str, float]], ref: float | None = None) -> None:
    print(f"\n{title}")
    width = max(len(label) for label, _ in rows) + 2
    ref = ref if ref is not None else rows[0][1]
    print(f"  {'':{width}}{'ns/call':>10}  {'x row 1':>8}")
    for label, ns in rows:
        ratio = ns / ref if ref > 0 else float("nan")
        print(f"  {label:{width}}{ns:10.0f}  {ratio:8.2f}")


def monitoring_rows() -> list[tuple[str, float]] | None:
    path = Path(__file__).with_name("monitoring.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("bench_monitoring", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # someone else's module, maybe mid-edit
        print(f"\nbench/monitoring.py could not be loaded: {exc!r}")
        return None
    run = getattr(module, "run", None)
    if not callable(run):
        return None
    result = run()
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    return [(str(label), float(ns)) for label, ns in result]


async def main() -> None:
    started = time.perf_counter()
    breaker_rows, sync_rows = await bench_breakers()
    table("Circuit breaker overhead over a bare `await f()` (closed, success)", breaker_rows)
    table("Circuit breaker overhead over a bare `f()` (sync; pybreaker.call_async needs tornado)",
          sync_rows)
    limiter_rows = await bench_limiters()
    table("Rate limiter cost per call (permit available unless noted)", limiter_rows)
    print(f"\n(breakers+limiters took {time.perf_counter() - started:.1f}s; python "
          f"{sys.version.split()[0]})")


if __name__ == "__main__":
    asyncio.run(main())
    rows = monitoring_rows()
    if rows:
        table("bench/monitoring.py run()", rows)
