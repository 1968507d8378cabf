"""Circuit breakers sharing state through a real redis-server, and falling back without it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from _breaker_helpers import Boom, fail, ok

from deep_tree_echo.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RedisCircuitState,
)
from deep_tree_echo.testing._process import free_port


async def test_failures_through_one_breaker_open_the_other(redis_url: str) -> None:
    a = CircuitBreaker(3, 60, name="orders", shared_state=RedisCircuitState(redis_url))
    b = CircuitBreaker(3, 60, name="orders", shared_state=RedisCircuitState(redis_url))
    assert await b.call(ok) == "ok"
    for _ in range(3):
        with pytest.raises(Boom):
            await a.call(fail)
    assert a.state is CircuitState.OPEN
    calls: list[int] = []

    async def counted() -> None:
        calls.append(1)

    with pytest.raises(CircuitOpenError) as info:
        await b.call(counted)
    assert calls == []
    assert info.value.name == "orders"
    assert 59 < info.value.retry_after <= 60
    assert b.state is CircuitState.OPEN  # b's local view follows the shared state
    await b.areset()
    assert await a.call(ok) == "ok"
    await a.aclose()
    await b.aclose()


async def test_shared_half_open_trial_is_exclusive(redis_url: str) -> None:
    a = CircuitBreaker(1, 0, name="inv", shared_state=RedisCircuitState(redis_url))
    b = CircuitBreaker(1, 0, name="inv", shared_state=RedisCircuitState(redis_url))
    with pytest.raises(Boom):
        await a.call(fail)
    entered = asyncio.Event()
    gate = asyncio.Event()

    async def trial() -> str:
        entered.set()
        await gate.wait()
        return "trial"

    task = asyncio.create_task(a.call(trial))  # recovery_timeout 0: this is the trial
    await entered.wait()
    with pytest.raises(CircuitOpenError) as info:
        await b.call(ok)
    assert info.value.state == "half_open"
    gate.set()
    assert await task == "trial"
    assert await b.call(ok) == "ok"
    assert b.state is CircuitState.CLOSED
    await a.aclose()
    await b.aclose()


async def test_cancelled_shared_trial_returns_permit(redis_url: str) -> None:
    a = CircuitBreaker(1, 0, name="c", shared_state=RedisCircuitState(redis_url))
    b = CircuitBreaker(1, 0, name="c", shared_state=RedisCircuitState(redis_url))
    with pytest.raises(Boom):
        await a.call(fail)
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(a.call(hang))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await b.call(ok) == "ok"  # the trial permit was given back in Redis
    await a.aclose()
    await b.aclose()


async def test_shared_failure_rate_window(redis_url: str) -> None:
    a, b = (
        CircuitBreaker(
            name="r", shared_state=RedisCircuitState(redis_url),
            failure_rate_threshold=0.5, sliding_window_size=4, minimum_calls=4,
        )
        for _ in range(2)
    )
    with pytest.raises(Boom):
        await a.call(fail)
    for _ in range(4):
        await b.call(ok)  # the failure slides out
    with pytest.raises(Boom):
        await a.call(fail)
    await b.call(ok)
    assert b.state is CircuitState.CLOSED  # 1/4
    with pytest.raises(Boom):
        await a.call(fail)  # 2/4 >= 50%
    with pytest.raises(CircuitOpenError):
        await b.call(ok)
    await a.aclose()
    await b.aclose()


async def test_stale_generation_outcome_is_ignored_in_redis(redis_url: str) -> None:
    a = CircuitBreaker(2, 60, name="g", shared_state=RedisCircuitState(redis_url))
    b = CircuitBreaker(2, 60, name="g", shared_state=RedisCircuitState(redis_url))
    old = await a.acquire()
    await b.areset()  # new generation
    await a.complete(old, Boom())
    with pytest.raises(Boom):
        await b.call(fail)
    assert b.state is CircuitState.CLOSED  # only one failure counts in this generation
    await a.aclose()
    await b.aclose()


async def test_unreachable_redis_fails_open_to_local_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = RedisCircuitState(f"redis://127.0.0.1:{free_port()}")
    breaker = CircuitBreaker(2, 60, name="down", shared_state=shared)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert await breaker.call(ok) == "ok"
        for _ in range(2):
            with pytest.raises(Boom):
                await breaker.call(fail)
    assert breaker.state is CircuitState.OPEN  # the local breaker still protects
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    await breaker.aclose()
