"""CircuitBreaker state machine, permits, the traps (locks, cancellation, generations), events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from _breaker_helpers import Boom, FakeClock, fail, ok

from deep_tree_echo.errors import EchoError
from deep_tree_echo.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Permit,
)
from deep_tree_echo.resilience._registry import iter_breakers


async def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await breaker.call(fail)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_consecutive_failures_open_and_success_resets(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 10, name="svc", clock=clock)
    await trip(breaker, 2)
    assert breaker.failure_count == 2
    assert await breaker.call(ok) == "ok"
    assert breaker.failure_count == 0
    await trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


async def test_open_rejects_with_retry_after_and_name(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 30, name="payments", clock=clock)
    await trip(breaker, 1)
    clock.advance(10)
    calls: list[int] = []

    async def counted() -> None:
        calls.append(1)

    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(counted)
    assert calls == []
    assert info.value.name == "payments"
    assert info.value.retry_after == pytest.approx(20)
    assert isinstance(info.value, EchoError)
    assert info.value.to_dict()["code"] == "circuit_open"


async def test_state_reads_open_until_recovery_timeout(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 30, clock=clock)
    await trip(breaker, 1)
    clock.advance(29.999)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.001)
    assert breaker.state is CircuitState.HALF_OPEN


async def test_half_open_admits_exactly_max_trials_then_closes(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 5, half_open_max_calls=2, clock=clock)
    await trip(breaker, 1)
    clock.advance(5)
    gates = {1: asyncio.Event(), 2: asyncio.Event()}
    started = {1: asyncio.Event(), 2: asyncio.Event()}

    async def trial(i: int) -> int:
        started[i].set()
        await gates[i].wait()
        return i

    t1 = asyncio.create_task(breaker.call(trial, 1))
    t2 = asyncio.create_task(breaker.call(trial, 2))
    await started[1].wait()
    await started[2].wait()
    # both trials are in flight at once: no lock is held across the awaited call
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert info.value.state == "half_open"
    assert breaker.state is CircuitState.HALF_OPEN
    gates[1].set()
    assert await t1 == 1
    assert breaker.state is CircuitState.HALF_OPEN  # one of two trials done
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)  # a finished trial does not free a new permit
    gates[2].set()
    assert await t2 == 2
    assert breaker.state is CircuitState.CLOSED


async def test_half_open_trial_failure_reopens_with_new_timer(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 5, clock=clock)
    await trip(breaker, 1)
    clock.advance(5)
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    clock.advance(4)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() == pytest.approx(1)
    clock.advance(1)
    assert breaker.state is CircuitState.HALF_OPEN


async def test_no_lock_held_while_call_runs_in_closed_state(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def slow() -> str:
        entered.set()
        await gate.wait()
        return "slow"

    task = asyncio.create_task(breaker.call(slow))
    await entered.wait()
    assert await breaker.call(ok, "fast") == "fast"  # would deadlock if a lock were held
    gate.set()
    assert await task == "slow"


async def test_cancelled_trial_returns_its_permit(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 5, clock=clock)
    await trip(breaker, 1)
    clock.advance(5)
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call(hang))
    await entered.wait()
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.HALF_OPEN  # cancellation is not a failure
    assert await breaker.call(ok, "probe") == "probe"  # the permit came back
    assert breaker.state is CircuitState.CLOSED


async def test_cancellation_is_neither_failure_nor_success(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, clock=clock)
    await trip(breaker, 2)
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call(hang))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.failure_count == 2  # not reset (success) nor incremented (failure)


async def test_call_from_earlier_generation_does_not_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 5, clock=clock)
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def stale(outcome: str) -> str:
        entered.set()
        await gate.wait()
        if outcome == "fail":
            raise Boom(outcome)
        return outcome

    old_success = asyncio.create_task(breaker.call(stale, "ok"))
    await entered.wait()
    await trip(breaker, 2)  # opens: new generation
    clock.advance(5)
    assert breaker.state is CircuitState.HALF_OPEN
    gen = breaker.generation
    gate.set()
    assert await old_success == "ok"
    # the success admitted while CLOSED must not close the half-open circuit
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.generation == gen

    breaker.reset()
    entered.clear()
    gate.clear()
    old_failure = asyncio.create_task(breaker.call(stale, "fail"))
    await entered.wait()
    breaker.reset()  # another generation
    gate.set()
    with pytest.raises(Boom):
        await old_failure
    assert breaker.failure_count == 0


async def test_try_acquire_hot_path(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 5, clock=clock)
    for _ in range(2):
        permit = breaker.try_acquire()
        assert isinstance(permit, Permit)
        breaker.on_failure(permit, Boom(), 0.01)
    assert breaker.try_acquire() is None
    clock.advance(5)
    trial = breaker.try_acquire()
    assert trial is not None and trial.trial
    assert breaker.try_acquire() is None
    breaker.release(trial)
    trial = breaker.try_acquire()
    assert trial is not None
    breaker.on_success(trial, 0.01)
    breaker.on_success(trial, 0.01)  # reporting twice changes nothing
    assert breaker.state is CircuitState.CLOSED


async def test_ignored_and_unrecorded_exceptions_pass_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        1, 5, record_exceptions=(Boom, KeyError), ignore_exceptions=(KeyError,), clock=clock
    )

    async def value_error() -> None:
        raise ValueError("bad input")

    async def key_error() -> None:
        raise KeyError("missing")

    with pytest.raises(ValueError):
        await breaker.call(value_error)
    with pytest.raises(KeyError):
        await breaker.call(key_error)
    assert breaker.state is CircuitState.CLOSED
    await trip(breaker, 1)
    clock.advance(5)
    with pytest.raises(KeyError):
        await breaker.call(key_error)  # takes the only trial permit, must give it back
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_failure_rate_mode_waits_for_minimum_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, sliding_window_size=10, minimum_calls=4, clock=clock
    )
    await trip(breaker, 3)
    assert breaker.state is CircuitState.CLOSED  # 100% but only 3 calls recorded
    assert breaker.failure_count == 3
    await breaker.call(ok)
    assert breaker.state is CircuitState.OPEN  # 3/4


async def test_failure_rate_mode_window_slides(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, sliding_window_size=4, minimum_calls=4, clock=clock
    )
    await trip(breaker, 1)
    for _ in range(4):
        await breaker.call(ok)  # the failure slides out of the window
    assert breaker.failure_count == 0
    await trip(breaker, 1)  # 1/4
    await breaker.call(ok)  # 1/4
    assert breaker.state is CircuitState.CLOSED
    await trip(breaker, 1)  # 2/4 >= 50%
    assert breaker.state is CircuitState.OPEN


async def test_slow_calls_count_as_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate_threshold=1.0, sliding_window_size=2, minimum_calls=2,
        slow_call_duration=2.0, clock=clock,
    )

    async def slow() -> str:
        clock.advance(2.0)
        return "late"

    assert await breaker.call(slow) == "late"
    assert breaker.failure_count == 1
    assert await breaker.call(slow) == "late"
    assert breaker.state is CircuitState.OPEN


async def test_decorator_on_async_and_sync_functions(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 5, clock=clock)

    @breaker
    async def async_fn(x: int) -> int:
        if x < 0:
            raise Boom()
        return x * 2

    @breaker
    def sync_fn(x: int) -> int:
        if x < 0:
            raise Boom()
        return x + 1

    assert await async_fn(2) == 4
    assert sync_fn(2) == 3
    assert async_fn.__name__ == "async_fn"
    with pytest.raises(Boom):
        await async_fn(-1)
    with pytest.raises(Boom):
        sync_fn(-1)
    with pytest.raises(CircuitOpenError):
        sync_fn(1)


async def test_call_accepts_sync_callables(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, clock=clock)
    assert await breaker.call(lambda a, b: a + b, 2, b=3) == 5

    def broken() -> None:
        raise Boom()

    with pytest.raises(Boom):
        await breaker.call(broken)
    assert breaker.state is CircuitState.OPEN


async def test_async_with_counts_exceptions_in_body(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 5, clock=clock)
    async with breaker:
        pass
    for _ in range(2):
        with pytest.raises(Boom):
            async with breaker:
                raise Boom()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("body must not run")


async def test_listeners_and_event_bus_get_transitions(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, str]] = []
    async_seen: list[str] = []
    emitted: list[tuple[str, dict[str, Any]]] = []
    got_event = asyncio.Event()

    def listener(b: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        seen.append((old.value, new.value))

    async def async_listener(b: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        async_seen.append(new.value)

    def broken(b: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("listener bug")

    class Bus:
        async def emit(self, event: str, payload: dict[str, Any]) -> None:
            emitted.append((event, payload))
            got_event.set()

    breaker = CircuitBreaker(
        1, 5, name="bus", clock=clock, listeners=[broken, listener, async_listener],
        event_bus=Bus(),
    )
    with caplog.at_level(logging.ERROR):
        await trip(breaker, 1)
    assert seen == [("closed", "open")]
    assert "listener bug" in caplog.text
    await got_event.wait()
    await breaker.drain()
    assert async_seen == ["open"]
    event, payload = emitted[0]
    assert event == "circuit.state_changed"
    assert payload["name"] == "bus" and payload["old"] == "closed" and payload["new"] == "open"
    assert isinstance(payload["timestamp"], float)


async def test_slow_event_bus_does_not_block_calls(clock: FakeClock) -> None:
    gate = asyncio.Event()

    class SlowBus:
        async def emit(self, event: str, payload: dict[str, Any]) -> None:
            await gate.wait()

    breaker = CircuitBreaker(1, 5, clock=clock, event_bus=SlowBus())
    await trip(breaker, 1)  # returns although emit is still waiting
    assert breaker.state is CircuitState.OPEN
    gate.set()
    await breaker.drain()


async def test_breakers_are_registered() -> None:
    breaker = CircuitBreaker(name="registered")
    assert breaker in list(iter_breakers())
    assert breaker.state is CircuitState.CLOSED


def test_invalid_configuration_is_rejected() -> None:
    from deep_tree_echo.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        CircuitBreaker(failure_rate_threshold=50)
    with pytest.raises(ConfigurationError):
        CircuitBreaker(0)


async def test_peek_state_reports_half_open_without_transitioning(clock: FakeClock) -> None:
    changes: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=10, clock=clock,
        listeners=[lambda b, old, new: changes.append((old, new))],
    )  # fmt: skip
    await trip(breaker, 1)
    assert breaker.peek_state() is CircuitState.OPEN
    generation = breaker.generation
    clock.advance(10)
    assert breaker.peek_state() is CircuitState.HALF_OPEN  # what `state` would say...
    assert breaker.peek_state() is CircuitState.HALF_OPEN
    assert breaker.generation == generation  # ...but nothing moved
    assert changes == [(CircuitState.CLOSED, CircuitState.OPEN)]
    assert breaker.state is CircuitState.HALF_OPEN  # the real read transitions and notifies
    assert breaker.generation == generation + 1
    assert changes[-1] == (CircuitState.OPEN, CircuitState.HALF_OPEN)
