"""RateLimiter edges that plausible one-token bugs would break (found by mutation testing).

The idle reset (a key idle for long gets one burst, not everything it "saved"), exact
``retry_after`` and wait delays, the eviction arithmetic and the configuration limits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.resilience import RateLimiter, RateLimitExceeded, RedisRateLimitBackend
from deep_tree_echo.resilience.rate_limiter import BACKEND_RETRY_INTERVAL
from deep_tree_echo.testing._process import free_port


class FakeClock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """Records each delay and returns at once (the tests read the delays, not the time)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def test_an_hour_idle_key_gets_one_burst_not_an_hour_of_permits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, clock=clock)
    assert sum(limiter.try_acquire("k") for _ in range(10)) == 10
    clock.advance(3600)  # idle well past the stored arrival time
    assert sum(limiter.try_acquire("k") for _ in range(50)) == 10


async def test_idle_reset_also_bounds_acquire_and_wait() -> None:
    clock = FakeClock()
    sleep = RecordingSleep()
    limiter = RateLimiter(4, 1.0, clock=clock, sleep=sleep)
    assert [await limiter.acquire("k") for _ in range(5)] == [True] * 4 + [False]
    clock.advance(3600)
    assert sum([await limiter.wait("k", timeout=0) for _ in range(10)]) == 4
    assert sleep.delays == []  # every admitted wait was immediate
    clock.advance(3600)
    assert sum([await limiter.acquire("k") for _ in range(10)]) == 4


def test_a_key_idle_for_exactly_one_interval_earns_exactly_one_permit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, 1.0, clock=clock)
    assert sum(limiter.try_acquire() for _ in range(6)) == 4
    clock.advance(0.25)
    assert limiter.try_acquire() is True
    assert limiter.try_acquire() is False
    assert limiter.rejections == 3


def test_retry_after_is_the_exact_time_to_the_next_permit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, 2.0, clock=clock)  # one permit every 0.5 s
    assert limiter.retry_after("k") == 0.0  # unknown key
    for _ in range(4):
        assert limiter.try_acquire("k")
    assert limiter.retry_after("k") == pytest.approx(0.5, abs=1e-3)
    clock.advance(0.2)
    assert limiter.retry_after("k") == pytest.approx(0.3, abs=1e-3)
    clock.advance(0.3)
    assert limiter.retry_after("k") == 0.0
    assert limiter.try_acquire("k")
    clock.advance(100)
    assert limiter.retry_after("k") == 0.0  # never negative


async def test_acquire_or_raise_carries_the_exact_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 30.0, name="api", clock=clock)
    await limiter.acquire_or_raise("u")
    clock.advance(10)
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.acquire_or_raise("u")
    assert info.value.retry_after == pytest.approx(20.0, abs=0.05)
    assert info.value.key == "u"


async def test_wait_delays_are_exact_and_within_the_timeout_boundary() -> None:
    clock = FakeClock()
    sleep = RecordingSleep()
    limiter = RateLimiter(2, 1.0, clock=clock, sleep=sleep)  # one permit every 0.5 s
    assert await limiter.wait("k") and await limiter.wait("k")
    assert sleep.delays == []
    assert await limiter.wait("k", timeout=0.4) is False  # next slot is 0.5 s away
    assert limiter.rejections == 1
    assert await limiter.wait("k", timeout=0.5) is True
    assert sleep.delays == [pytest.approx(0.5, abs=1e-3)]
    assert await limiter.wait("k") is True
    assert sleep.delays[1] == pytest.approx(1.0, abs=1e-3)


async def test_a_cancelled_last_waiter_gives_its_slot_back_exactly() -> None:
    clock = FakeClock()
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()

    async def blocking_sleep(delay: float) -> None:
        started.set()
        await gate

    limiter = RateLimiter(1, 1.0, clock=clock, sleep=blocking_sleep)
    assert limiter.try_acquire("k")
    waiter = asyncio.create_task(limiter.wait("k"))
    await started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.retry_after("k") == pytest.approx(1.0, abs=1e-2)
    clock.advance(1.0)
    assert limiter.try_acquire("k") is True


def test_eviction_keeps_the_newest_half_of_busy_keys() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 100.0, clock=clock, max_keys=4)
    for key in ("a", "b", "c", "d"):
        assert limiter.try_acquire(key)
    assert limiter.try_acquire("e")  # full: "a" and "b" (oldest busy) go, down to half
    assert len(limiter) == 3
    assert limiter.evictions == 2
    assert limiter.try_acquire("a") is True  # forgotten: a fresh burst
    assert limiter.try_acquire("c") is False  # kept: still limited


def test_eviction_drops_idle_keys_before_busy_ones() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 10.0, clock=clock, max_keys=2)
    assert limiter.try_acquire("old")
    clock.advance(10)  # "old" is idle now: its arrival time has come
    assert limiter.try_acquire("busy")
    assert limiter.try_acquire("new")
    assert limiter.evictions == 0
    assert len(limiter) == 2
    assert limiter.try_acquire("busy") is False


def test_reset_forgets_one_key_or_all() -> None:
    limiter = RateLimiter(1, 60.0, clock=FakeClock())
    assert limiter.try_acquire("a") and limiter.try_acquire("b")
    limiter.reset("a")
    assert len(limiter) == 1
    assert limiter.try_acquire("a") is True
    assert limiter.try_acquire("b") is False
    limiter.reset()
    assert len(limiter) == 0
    assert limiter.try_acquire("b") is True


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 1.0), {}, "max_requests must be >= 1"),
        ((1, 0.0), {}, "time_window must be > 0"),
        ((1, 1.0), {"max_keys": 0}, "max_keys must be >= 1"),
    ],
)
def test_each_invalid_setting_is_named(
    args: tuple[int, float], kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimiter(*args, **kwargs)
    assert str(info.value) == message


def test_smallest_valid_settings_names_and_interval() -> None:
    limiter = RateLimiter(1, 0.5, max_keys=1, name="tiny")
    assert limiter.interval == 0.5
    assert limiter.time_window == 0.5
    assert repr(limiter) == "<RateLimiter 'tiny' 1/0.5s>"
    anonymous = RateLimiter(3, 1)
    assert anonymous.name == f"limiter-{id(anonymous):x}"
    assert anonymous.interval == pytest.approx(1 / 3)


async def test_the_default_key_is_one_shared_bucket() -> None:
    limiter = RateLimiter(1, 60.0, name="api", clock=FakeClock())
    await limiter.acquire_or_raise()
    assert limiter.try_acquire("default") is False
    assert limiter.try_acquire() is False
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.acquire_or_raise()
    assert (info.value.key, info.value.name) == ("default", "api")
    limiter.reset("never-seen")  # forgetting an unknown key is fine
    assert len(limiter) == 1


async def test_waiting_on_new_keys_also_keeps_the_key_bound() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 100.0, clock=clock, max_keys=2, sleep=RecordingSleep())
    for key in ("a", "b", "c"):
        assert await limiter.wait(key, timeout=0)
        assert len(limiter) <= 2
    assert limiter.evictions == 1
    assert await limiter.wait("c", timeout=0) is False
    assert await limiter.wait("c", timeout=0) is False
    assert limiter.rejections == 2


def test_a_key_exactly_at_its_arrival_time_counts_as_idle_for_eviction() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 10.0, clock=clock, max_keys=2)
    assert limiter.try_acquire("a")  # arrival time 510
    clock.advance(5)
    assert limiter.try_acquire("b")  # arrival time 515
    clock.advance(5)  # now 510: "a" holds no information any more
    assert limiter.try_acquire("c")
    assert limiter.evictions == 0
    assert limiter.try_acquire("b") is False  # kept


def test_evictions_accumulate_across_sweeps() -> None:
    limiter = RateLimiter(1, 100.0, clock=FakeClock(), max_keys=2)
    for key in ("a", "b", "c", "d", "e"):
        assert limiter.try_acquire(key)
    assert limiter.evictions == 3  # one busy key dropped at each of "c", "d" and "e"
    assert len(limiter) == 2


class CountingBackend(RedisRateLimitBackend):
    """The real backend, counting how often the limiter asks it."""

    calls = 0

    async def reserve(self, key: str, *, interval: float, limit: float, max_wait: float) -> Any:
        self.calls += 1
        return await super().reserve(key, interval=interval, limit=limit, max_wait=max_wait)


async def test_an_unreachable_backend_is_skipped_for_the_retry_interval_per_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    backend = CountingBackend(f"redis://127.0.0.1:{free_port()}")
    limiter = RateLimiter(1, 60.0, clock=clock, backend=backend, name="rl")
    with caplog.at_level(logging.WARNING):
        assert await limiter.acquire("a") is True
        assert await limiter.acquire("b") is True  # local fallback keeps keys apart
        assert await limiter.acquire("a") is False
    assert backend.calls == 1  # skipped until the retry interval has passed
    (warning,) = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert warning == (
        "rate limiter rl: backend unreachable (network:ConnectionError); using local state"
    )
    clock.advance(BACKEND_RETRY_INTERVAL)
    assert await limiter.acquire("c") is True
    assert backend.calls == 2
    await backend.aclose()


async def test_backend_answers_are_exact(redis_url: str) -> None:
    clock = FakeClock(now=0.5)  # a small clock: a hint defaulting to anything but 0 would show
    sleep = RecordingSleep()
    backend = RedisRateLimitBackend(redis_url)
    limiter = RateLimiter(2, 1.0, clock=clock, backend=backend, sleep=sleep)
    assert limiter.retry_after("k") == 0.0  # no rejection seen yet
    assert await limiter.wait("k") is True
    assert sleep.delays == []  # granted at once: no sleep, not even sleep(0)
    assert await limiter.acquire("k") is True
    assert await limiter.acquire("k") is False  # the next slot is ~0.5 s away: not "now"
    assert 0.0 < limiter.retry_after("k") <= 0.5
    assert await limiter.wait("k", timeout=0) is False
    assert await limiter.wait("k", timeout=0) is False
    assert limiter.rejections == 3
    assert await limiter.wait("k") is True
    assert len(sleep.delays) == 1 and 0.0 < sleep.delays[0] <= 0.5
    await backend.aclose()


async def test_backend_hints_are_bounded_like_keys(redis_url: str) -> None:
    backend = RedisRateLimitBackend(redis_url)
    limiter = RateLimiter(1, 60.0, backend=backend, max_keys=2)
    for key in ("a", "b"):
        assert await limiter.acquire(key) is True
        assert await limiter.acquire(key) is False
    assert limiter.retry_after("a") > 0 and limiter.retry_after("b") > 0
    assert await limiter.acquire("a") is False  # a known key: nothing is dropped
    assert limiter.retry_after("b") > 0
    assert await limiter.acquire("c") is True
    assert await limiter.acquire("c") is False  # a third hint: the table starts over
    assert limiter.retry_after("a") == 0.0 and limiter.retry_after("b") == 0.0
    assert limiter.retry_after("c") > 0
    limiter.reset("c")
    assert limiter.retry_after("c") == 0.0
    await backend.aclose()
