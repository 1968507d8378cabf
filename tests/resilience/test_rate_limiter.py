"""RateLimiter: GCRA burst and steady rate, fair waiting, cancellation, bounded keys, Redis."""

from __future__ import annotations

import asyncio
import logging

import pytest

from deep_tree_echo.errors import EchoError
from deep_tree_echo.resilience import RateLimiter, RateLimitExceeded, RedisRateLimitBackend
from deep_tree_echo.resilience._registry import iter_limiters
from deep_tree_echo.testing._process import free_port


class FakeClock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ManualSleep:
    """An injected sleep that records each delay and returns only when the test says so."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.futures: list[asyncio.Future[None]] = []
        self._changed = asyncio.Condition()

    async def __call__(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with self._changed:
            self.delays.append(delay)
            self.futures.append(fut)
            self._changed.notify_all()
        await fut

    async def until_sleeping(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.delays) >= n)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_burst_then_steady_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(10, 1.0, clock=clock)
    assert [await limiter.acquire() for _ in range(10)] == [True] * 10
    assert await limiter.acquire() is False
    assert limiter.rejections == 1
    assert limiter.retry_after() == pytest.approx(0.1, abs=1e-3)
    clock.advance(0.1)
    assert await limiter.acquire() is True
    assert await limiter.acquire() is False
    clock.advance(1.0)  # idle for a full window: the whole burst is back
    assert sum([await limiter.acquire() for _ in range(12)]) == 10


async def test_never_more_than_max_requests_per_window_on_average(clock: FakeClock) -> None:
    limiter = RateLimiter(5, 10.0, clock=clock)
    admitted = 0
    for _ in range(1000):  # 100 seconds in steps of 0.1 s, trying every step
        admitted += await limiter.acquire()
        clock.advance(0.1)
    assert admitted <= 5 + 5 * 100 / 10  # burst + steady rate
    assert admitted >= 5 * 100 / 10


async def test_keys_are_independent(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 60, clock=clock)
    assert await limiter.acquire("a")
    assert not await limiter.acquire("a")
    assert await limiter.acquire("b")


async def test_acquire_or_raise(clock: FakeClock) -> None:
    limiter = RateLimiter(2, 10, name="api", clock=clock)
    await limiter.acquire_or_raise("user")
    await limiter.acquire_or_raise("user")
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.acquire_or_raise("user")
    assert info.value.key == "user"
    assert info.value.retry_after == pytest.approx(5, abs=0.01)
    assert isinstance(info.value, EchoError)


async def test_per_key_state_is_bounded_and_idle_keys_go_first(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 1.0, clock=clock, max_keys=10)
    for i in range(1000):
        assert await limiter.acquire(f"k{i}")
        clock.advance(0.5)  # keys inserted more than 1 s ago are idle
        assert len(limiter) <= 10
    assert limiter.evictions == 0  # always an idle key to evict
    busy = RateLimiter(1, 100.0, clock=clock, max_keys=3)
    for i in range(5):
        assert await busy.acquire(f"b{i}")
    assert len(busy) == 3
    assert busy.evictions == 2


async def test_wait_is_fifo_and_acquire_cannot_overtake(clock: FakeClock) -> None:
    sleep = ManualSleep()
    limiter = RateLimiter(2, 1.0, clock=clock, sleep=sleep)
    assert await limiter.acquire() and await limiter.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        assert await limiter.wait()
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await sleep.until_sleeping(3)
    assert sleep.delays == pytest.approx([0.5, 1.0, 1.5], abs=1e-3)
    clock.advance(0.6)
    assert await limiter.acquire() is False  # the freed slot belongs to waiter 0
    for fut in sleep.futures:
        fut.set_result(None)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]


async def test_wait_timeout_refuses_without_reserving(clock: FakeClock) -> None:
    sleep = ManualSleep()
    limiter = RateLimiter(1, 10.0, clock=clock, sleep=sleep)
    assert await limiter.wait()
    assert await limiter.wait(timeout=5) is False
    assert sleep.delays == []
    assert limiter.rejections == 1
    clock.advance(10)
    assert await limiter.acquire()


async def test_cancelled_waiter_gives_back_its_slot(clock: FakeClock) -> None:
    sleep = ManualSleep()
    limiter = RateLimiter(1, 1.0, clock=clock, sleep=sleep)
    assert await limiter.acquire()
    first = asyncio.create_task(limiter.wait())
    second = asyncio.create_task(limiter.wait())
    await sleep.until_sleeping(2)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    third = asyncio.create_task(limiter.wait())
    await sleep.until_sleeping(3)
    assert sleep.delays[2] == pytest.approx(sleep.delays[1])  # got the cancelled slot
    # cancelling a waiter that is not the last one keeps state consistent
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    sleep.futures[2].set_result(None)
    assert await third is True
    clock.advance(10)
    assert await limiter.acquire()


async def test_async_with_waits(clock: FakeClock) -> None:
    sleep = ManualSleep()
    limiter = RateLimiter(1, 2.0, clock=clock, sleep=sleep)
    async with limiter:
        pass
    entered = asyncio.Event()

    async def second() -> None:
        async with limiter:
            entered.set()

    task = asyncio.create_task(second())
    await sleep.until_sleeping(1)
    assert not entered.is_set()
    assert sleep.delays == [pytest.approx(2.0, abs=1e-2)]
    sleep.futures[0].set_result(None)
    await task
    assert entered.is_set()


def test_limiter_registered_with_rejections_counter() -> None:
    limiter = RateLimiter(1, 1, name="reg")
    assert limiter in list(iter_limiters())
    assert limiter.rejections == 0
    assert limiter.try_acquire() and not limiter.try_acquire()
    assert limiter.rejections == 1


async def test_redis_backend_limit_is_shared_between_limiters(redis_url: str) -> None:
    backend_a = RedisRateLimitBackend(redis_url)
    backend_b = RedisRateLimitBackend(redis_url)
    a = RateLimiter(5, 60, backend=backend_a)
    b = RateLimiter(5, 60, backend=backend_b)
    results = await asyncio.gather(*[(a if i % 2 else b).acquire("shared") for i in range(40)])
    assert sum(results) == 5
    assert a.rejections + b.rejections == 35
    assert await a.acquire("other")
    assert a.retry_after("shared") > 0
    with pytest.raises(RateLimitExceeded):
        await b.acquire_or_raise("shared")
    await backend_a.aclose()
    await backend_b.aclose()


async def test_redis_backend_wait_reserves_in_order(redis_url: str) -> None:
    sleep = ManualSleep()
    backend = RedisRateLimitBackend(redis_url)
    limiter = RateLimiter(2, 100.0, backend=backend, sleep=sleep)
    other = RateLimiter(2, 100.0, backend=RedisRateLimitBackend(backend.client))
    assert await limiter.acquire("q") and await limiter.acquire("q")
    waiter = asyncio.create_task(limiter.wait("q"))
    await sleep.until_sleeping(1)
    assert 0 < sleep.delays[0] <= 50.001
    assert await other.wait("q", timeout=1.0) is False  # the next slot is even later
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    late = asyncio.create_task(limiter.wait("q"))
    await sleep.until_sleeping(2)
    assert sleep.delays[1] == pytest.approx(sleep.delays[0], abs=0.5)  # slot was given back
    sleep.futures[1].set_result(None)
    assert await late
    await backend.aclose()


async def test_redis_backend_unreachable_falls_back_to_local(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = RedisRateLimitBackend(f"redis://127.0.0.1:{free_port()}")
    limiter = RateLimiter(2, 60, backend=backend, clock=clock)
    with caplog.at_level(logging.WARNING):
        assert await limiter.acquire()
        assert await limiter.acquire()
        assert not await limiter.acquire()
        clock.advance(30)  # past the retry interval (Redis is tried again) and one slot free
        assert await limiter.wait(timeout=100)
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    await backend.aclose()
