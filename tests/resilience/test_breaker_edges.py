"""CircuitBreaker edges that plausible one-token bugs would break (found by mutation testing).

Each test pins a boundary or an exact value: the generation check on permit release, slow
half-open trials, the ``>=`` in thresholds, exact ``retry_after`` figures, config limits.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from _breaker_helpers import Boom, FakeClock

from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.resilience import CircuitBreaker, CircuitOpenError, CircuitState, Permit


def open_breaker(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    breaker = CircuitBreaker(1, 10, clock=clock, **kwargs)  # type: ignore[arg-type]
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_failure(permit, Boom())
    assert breaker.state is CircuitState.OPEN
    return breaker


def trials(breaker: CircuitBreaker, limit: int = 10) -> list[Permit]:
    """Take trial permits until the breaker refuses (at most ``limit``)."""
    got: list[Permit] = []
    while len(got) < limit and (p := breaker.try_acquire()) is not None:
        got.append(p)
    return got


def test_late_release_from_an_older_half_open_round_frees_no_trial() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, half_open_max_calls=2)
    clock.advance(10)
    first, second = trials(breaker)
    breaker.on_failure(first, Boom())  # round one fails: OPEN again
    clock.advance(10)
    assert breaker.state is CircuitState.HALF_OPEN  # round two
    breaker.release(second)  # the older round's permit comes back late
    assert len(trials(breaker)) == 2


def test_release_in_the_current_round_frees_exactly_one_trial() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, half_open_max_calls=2)
    clock.advance(10)
    first, _second = trials(breaker)
    breaker.release(first)
    breaker.release(first)  # a second release of the same permit frees nothing
    assert len(trials(breaker)) == 1


def test_release_of_a_closed_permit_changes_nothing() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(2, 10, clock=clock)
    permit = breaker.try_acquire()
    assert permit is not None and not permit.trial
    breaker.release(permit)
    assert permit.done is False
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("duration", [2.0, 3.5])
def test_a_slow_half_open_trial_reopens_the_circuit(duration: float) -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, slow_call_duration=2.0, half_open_max_calls=1)
    clock.advance(10)
    (permit,) = trials(breaker)
    generation = breaker.generation
    breaker.on_success(permit, duration=duration)
    assert breaker.state is CircuitState.OPEN
    assert breaker.generation == generation + 1
    assert breaker.retry_after() == 10.0  # a fresh recovery timer


def test_a_trial_just_under_the_slow_threshold_closes_the_circuit() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, slow_call_duration=2.0)
    clock.advance(10)
    (permit,) = trials(breaker)
    breaker.on_success(permit, duration=1.999)
    assert breaker.state is CircuitState.CLOSED


async def test_a_slow_trial_through_call_reopens_the_circuit() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, slow_call_duration=1.0)
    clock.advance(10)

    async def slow() -> str:
        clock.advance(1.5)
        return "late"

    assert await breaker.call(slow) == "late"
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(slow)
    assert info.value.retry_after == 10.0


def test_slow_sync_call_through_call_sync_counts_as_failure() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10, clock=clock, slow_call_duration=1.0)

    def slow() -> int:
        clock.advance(1.0)
        return 7

    assert breaker.call_sync(slow) == 7
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        breaker.call_sync(slow)


def test_a_success_report_for_an_already_reported_trial_is_ignored() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, half_open_max_calls=2)
    clock.advance(10)
    first, _second = trials(breaker)
    breaker.on_success(first)
    breaker.on_success(first)  # reported twice: still one success of two
    assert breaker.state is CircuitState.HALF_OPEN


def test_a_failure_report_for_an_already_reported_trial_is_ignored() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, half_open_max_calls=2)
    clock.advance(10)
    first, second = trials(breaker)
    breaker.on_success(first)
    breaker.release(second)
    breaker.on_failure(second, Boom())  # already handed back: no outcome any more
    assert breaker.state is CircuitState.HALF_OPEN


def test_consecutive_threshold_is_reached_not_exceeded() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 10, clock=clock)
    for expected in (1, 2):
        permit = breaker.try_acquire()
        assert permit is not None
        breaker.on_failure(permit, Boom())
        assert breaker.failure_count == expected
        assert breaker.state is CircuitState.CLOSED
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_failure(permit, Boom())
    assert breaker.state is CircuitState.OPEN


def test_a_success_resets_the_consecutive_count_reported_through_on_success() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(2, 10, clock=clock)
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_failure(permit, Boom())
    breaker.on_success(permit)
    assert breaker.failure_count == 0
    breaker.on_failure(permit, Boom())
    assert breaker.state is CircuitState.CLOSED


def test_failure_rate_exactly_at_the_threshold_opens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, sliding_window_size=4, minimum_calls=4, clock=clock
    )
    outcomes = [True, False, True]  # 2 of 3 failed, but fewer than minimum_calls
    for failed in outcomes:
        permit = breaker.try_acquire()
        assert permit is not None
        if failed:
            breaker.on_failure(permit, Boom())
        else:
            breaker.on_success(permit)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_success(permit)  # 2 of 4 = 0.5: at the threshold
    assert breaker.state is CircuitState.OPEN


def test_minimum_calls_is_capped_by_the_window_size() -> None:
    breaker = CircuitBreaker(failure_rate_threshold=1.0, sliding_window_size=3, minimum_calls=50)
    assert breaker.minimum_calls == 3


def test_retry_after_is_exact_in_each_state() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, half_open_max_calls=1)
    assert breaker.retry_after() == 10.0
    clock.advance(4)
    assert breaker.retry_after() == 6.0
    with pytest.raises(CircuitOpenError) as info:
        breaker.call_sync(lambda: None)
    assert info.value.retry_after == 6.0
    assert info.value.state == "open"
    clock.advance(6)
    assert breaker.retry_after() == 0.0  # half-open with a trial free
    (permit,) = trials(breaker)
    assert breaker.retry_after() == 10.0  # half-open, every trial taken
    breaker.on_success(permit)
    assert breaker.retry_after() == 0.0


def test_open_reads_open_until_exactly_the_recovery_timeout() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.advance(9.999)
    assert breaker.try_acquire() is None
    assert breaker.peek_state() is CircuitState.OPEN
    clock.advance(0.001)
    assert breaker.peek_state() is CircuitState.HALF_OPEN
    assert breaker.try_acquire() is not None


def test_closing_starts_a_fresh_generation_and_count() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.advance(10)
    (trial,) = trials(breaker)
    breaker.on_success(trial)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.generation == 3  # closed -> open -> half_open -> closed
    permit = breaker.try_acquire()
    assert permit is not None
    assert permit.generation == 3
    assert breaker.failure_count == 0


def test_reset_forces_closed_and_a_new_generation_even_when_closed() -> None:
    breaker = CircuitBreaker(2, 10, clock=FakeClock())
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_failure(permit, Boom())
    breaker.reset()
    assert breaker.generation == 1
    assert breaker.failure_count == 0
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be >= 1"),
        ({"recovery_timeout": -0.5}, "recovery_timeout must be >= 0"),
        ({"failure_rate_threshold": 0.0}, "failure_rate_threshold is a fraction in (0, 1]"),
        ({"failure_rate_threshold": 1.01}, "failure_rate_threshold is a fraction in (0, 1]"),
        ({"sliding_window_size": 0}, "sliding_window_size and minimum_calls must be >= 1"),
        ({"minimum_calls": 0}, "sliding_window_size and minimum_calls must be >= 1"),
        ({"half_open_max_calls": 0}, "half_open_max_calls must be >= 1"),
    ],
)
def test_each_invalid_setting_is_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_the_smallest_valid_settings_are_accepted() -> None:
    breaker = CircuitBreaker(
        1, 0, failure_rate_threshold=1.0, sliding_window_size=1, minimum_calls=1,
        half_open_max_calls=1,
    )
    assert breaker.recovery_timeout == 0.0
    assert breaker.failure_threshold == 1


def test_names_and_reprs() -> None:
    breaker = CircuitBreaker(name="svc", clock=FakeClock())
    assert repr(breaker) == "<CircuitBreaker 'svc' closed gen=0>"
    anonymous = CircuitBreaker()
    assert anonymous.name == f"breaker-{id(anonymous):x}"
    assert repr(Permit(4, trial=True)) == "Permit(generation=4, trial=True, shared=False)"


async def test_the_general_call_path_passes_arguments_and_records_outcomes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10, clock=clock, slow_call_duration=5.0)

    async def echo(a: int, *, b: int) -> tuple[int, int]:
        return a, b

    assert await breaker.call(echo, 1, b=2) == (1, 2)
    assert breaker.state is CircuitState.CLOSED  # a fast success is not slow
    assert breaker.failure_count == 0

    async def fail() -> None:
        raise Boom()

    with pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is CircuitState.OPEN  # the failure was recorded, not just released


async def test_async_with_measures_the_body_and_records_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10, clock=clock, slow_call_duration=1.0)
    async with breaker:
        clock.advance(0.5)
    assert breaker.state is CircuitState.CLOSED
    async with breaker:
        clock.advance(1.0)
    assert breaker.state is CircuitState.OPEN


async def test_nested_async_with_restores_the_outer_permit() -> None:
    breaker = CircuitBreaker(1, 10, clock=FakeClock())
    with pytest.raises(Boom):
        async with breaker:
            async with breaker:
                pass
            raise Boom()
    assert breaker.state is CircuitState.OPEN


async def test_a_cancelled_trial_inside_async_with_frees_its_permit() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.advance(10)
    entered = asyncio.Event()

    async def body() -> None:
        async with breaker:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await entered.wait()
    assert breaker.try_acquire() is None  # the only trial is taken
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.try_acquire() is not None  # given back


async def test_listeners_get_the_breaker_and_their_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[object] = []

    def broken(breaker: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("listener bug")

    async def broken_async(breaker: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("async listener bug")

    breaker = CircuitBreaker(
        1, 10, name="svc", clock=FakeClock(),
        listeners=[lambda b, old, new: seen.append(b), broken, broken_async],
    )  # fmt: skip
    with caplog.at_level(logging.ERROR):
        permit = breaker.try_acquire()
        assert permit is not None
        breaker.on_failure(permit, Boom())
        await breaker.drain()
    assert seen == [breaker]
    messages = [r.getMessage() for r in caplog.records]
    assert f"circuit svc: state listener {broken!r} failed" in messages
    assert "circuit svc: background notification failed" in messages


def test_call_sync_measures_fast_calls_as_fast_and_passes_keywords() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10, name="sync", clock=clock, slow_call_duration=1.0)

    def add(a: int, *, b: int) -> int:
        clock.advance(0.5)
        return a + b

    assert breaker.call_sync(add, 1, b=2) == 3
    assert breaker.state is CircuitState.CLOSED  # 0.5 s is under the slow threshold
    with pytest.raises(Boom):
        breaker.call_sync(lambda: (_ for _ in ()).throw(Boom()))
    with pytest.raises(CircuitOpenError) as info:
        breaker.call_sync(add, 1, b=2)
    assert (info.value.name, info.value.state) == ("sync", "open")
