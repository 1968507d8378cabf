"""CircuitBreaker (local state): defaults, trial permits, reports and background work, exactly.

Found by mutation testing: each test pins a value a one-token bug would change (a default,
a permit's ``done`` flag, the count of freed trials, the state named in a rejection, the
transition log line, ``drain`` never raising the background work's errors).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from typing import Any

import pytest
from _breaker_helpers import Boom, FakeClock

from deep_tree_echo.resilience import CircuitBreaker, CircuitOpenError, CircuitState, Permit


class Fatal(BaseException):
    """Escapes ``except Exception``: what a background task may end with."""


def half_open(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    """A breaker (threshold 1, recovery 10 s) tripped once and past its recovery timeout."""
    breaker = CircuitBreaker(1, 10, clock=clock, **kwargs)
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_failure(permit, Boom())
    clock.advance(10)
    assert breaker.state is CircuitState.HALF_OPEN
    return breaker


def take_trials(breaker: CircuitBreaker) -> list[Permit]:
    got: list[Permit] = []
    while len(got) < 20 and (p := breaker.try_acquire()) is not None:
        got.append(p)
    return got


def test_the_documented_defaults() -> None:
    breaker = CircuitBreaker()
    assert breaker.failure_threshold == 5
    assert breaker.recovery_timeout == 60.0
    assert breaker.sliding_window_size == 100
    assert breaker.minimum_calls == 10
    assert breaker.half_open_max_calls == 1
    assert breaker.slow_call_duration is None
    assert breaker.failure_rate is None


def test_a_released_trial_adds_one_to_the_trials_left() -> None:
    clock = FakeClock()
    breaker = half_open(clock, half_open_max_calls=3)
    first = breaker.try_acquire()
    assert first is not None and first.trial
    breaker.release(first)  # two were left: now three again
    assert first.done is True
    assert len(take_trials(breaker)) == 3


def test_reports_mark_the_permit_done() -> None:
    clock = FakeClock()
    breaker = half_open(clock, half_open_max_calls=2)
    good, bad = take_trials(breaker)
    breaker.on_success(good)
    assert good.done is True
    breaker.on_failure(bad, Boom())
    assert bad.done is True
    assert breaker.state is CircuitState.OPEN


def test_stale_reports_mark_the_permit_done_and_change_nothing() -> None:
    clock = FakeClock()
    breaker = half_open(clock, half_open_max_calls=2)
    first, second = take_trials(breaker)
    breaker.reset()  # a new generation: both trials are stale
    generation = breaker.generation
    breaker.on_success(first)
    breaker.on_failure(second, Boom())
    assert (first.done, second.done) == (True, True)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.generation == generation
    assert breaker.failure_count == 0


def test_a_default_duration_is_a_fast_call() -> None:
    breaker = CircuitBreaker(1, 10, slow_call_duration=1.0, clock=FakeClock())
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_success(permit)  # no duration given: not slow
    assert breaker.state is CircuitState.CLOSED


async def test_complete_without_a_duration_is_a_fast_call() -> None:
    breaker = CircuitBreaker(1, 10, slow_call_duration=1.0, clock=FakeClock())
    permit = await breaker.acquire()
    await breaker.complete(permit)
    assert breaker.state is CircuitState.CLOSED
    assert permit.done is False  # a closed-state permit is shared by every call


async def test_a_closed_breaker_reset_still_clears_the_count_and_starts_a_generation() -> None:
    breaker = CircuitBreaker(3, 10, clock=FakeClock())
    with pytest.raises(Boom):
        breaker.call_sync(lambda: (_ for _ in ()).throw(Boom()))
    assert breaker.failure_count == 1
    await breaker.areset()
    assert breaker.generation == 1
    assert breaker.failure_count == 0
    assert breaker.state is CircuitState.CLOSED


async def test_rejections_name_the_breaker_and_its_state() -> None:
    clock = FakeClock()
    breaker = half_open(clock, name="pay")
    (trial,) = take_trials(breaker)
    for reject in (breaker.acquire(), breaker.call(lambda: None)):
        with pytest.raises(CircuitOpenError) as info:
            await reject
        assert (info.value.name, info.value.state) == ("pay", "half_open")
        assert info.value.retry_after == 10.0  # every trial taken
    with pytest.raises(CircuitOpenError) as sync_info:
        breaker.call_sync(lambda: None)
    assert (sync_info.value.name, sync_info.value.state) == ("pay", "half_open")
    breaker.on_success(trial)
    assert breaker.state is CircuitState.CLOSED


def test_retry_after_counts_down_below_one_second() -> None:
    clock = FakeClock()
    breaker = half_open(clock)
    (trial,) = take_trials(breaker)
    breaker.on_failure(trial, Boom())  # OPEN again, new timer
    clock.advance(9.75)
    assert breaker.retry_after() == 0.25


class _Ready:
    """An awaitable that is not a coroutine (like a Future or a Twisted Deferred)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, str]:
        if False:
            yield
        return self.value


async def test_call_awaits_awaitables_that_are_not_coroutines() -> None:
    clock = FakeClock()
    closed = CircuitBreaker(1, 10, clock=clock)
    assert await closed.call(lambda: _Ready("plain")) == "plain"
    breaker = half_open(clock)
    assert await breaker.call(lambda: _Ready("trial")) == "trial"
    assert breaker.state is CircuitState.CLOSED


async def test_transitions_are_logged_with_name_and_states(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="deep_tree_echo.resilience.circuit_breaker"):
        half_open(clock, name="inv")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["circuit inv: closed -> open", "circuit inv: open -> half_open"]


def test_async_work_without_an_event_loop_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def listener(breaker: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        calls.append(new.value)

    breaker = CircuitBreaker(1, 10, name="noloop", clock=FakeClock(), listeners=[listener])
    logger = "deep_tree_echo.resilience.circuit_breaker"
    with caplog.at_level(logging.WARNING, logger=logger), pytest.raises(Boom):
        breaker.call_sync(lambda: (_ for _ in ()).throw(Boom()))
    assert breaker.state is CircuitState.OPEN
    assert [r.getMessage() for r in caplog.records] == [
        "circuit noloop: no running event loop, async notification dropped"
    ]
    assert calls == []


async def test_drain_waits_for_background_work_and_never_raises_its_errors() -> None:
    finished: list[str] = []

    async def fatal(breaker: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        raise Fatal()

    async def slow(breaker: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        await asyncio.sleep(0)
        finished.append(new.value)

    breaker = CircuitBreaker(1, 10, clock=FakeClock(), listeners=[fatal, slow])
    with pytest.raises(Boom):
        await breaker.call(_raise_boom)
    await breaker.drain()  # Fatal escaped its task, but drain does not re-raise it
    assert finished == ["open"]


async def _raise_boom() -> None:
    raise Boom()


async def test_aclose_of_a_local_breaker_waits_and_returns() -> None:
    done: list[str] = []

    async def listener(breaker: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        done.append(new.value)

    breaker = CircuitBreaker(1, 10, clock=FakeClock(), listeners=[listener])
    with pytest.raises(Boom):
        await breaker.call(_raise_boom)
    await breaker.aclose()
    assert done == ["open"]
