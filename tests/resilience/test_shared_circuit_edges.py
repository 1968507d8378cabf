"""Redis-shared circuit state, exactly: slow calls, ignored errors in trials, sync reports,
and Redis going away between admission and report (a real redis-server, stopped mid-test).

Found by mutation testing: outcomes reported through the sync API with shared permits, the
release of a shared trial that ended in an ignored error, and the warning naming the Redis
error were not checked by any test.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from _breaker_helpers import Boom, FakeClock, fail, ok
from _services import redis_server

from deep_tree_echo.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RedisCircuitState,
)
from deep_tree_echo.resilience.redis_backends import REDIS_UNAVAILABLE


class Ignored(Exception):
    pass


def pair(url: str, name: str, *args: float, **kwargs: object) -> tuple[CircuitBreaker, ...]:
    """Two breakers of one name on one Redis: two processes sharing a circuit."""
    return tuple(
        CircuitBreaker(*args, name=name, shared_state=RedisCircuitState(url), **kwargs)  # type: ignore[arg-type]
        for _ in range(2)
    )


async def close(*breakers: CircuitBreaker) -> None:
    for breaker in breakers:
        await breaker.aclose()


async def test_a_shared_call_as_slow_as_the_threshold_opens_the_circuit(redis_url: str) -> None:
    clock = FakeClock()
    a, b = pair(redis_url, "slow", 1, 60, slow_call_duration=1.0, clock=clock)

    async def takes_one_second() -> str:
        clock.advance(1.0)
        return "late"

    assert await a.call(takes_one_second) == "late"
    with pytest.raises(CircuitOpenError):
        await b.call(ok)
    await close(a, b)


async def test_a_failed_shared_call_with_a_slow_threshold_raises_its_own_error(
    redis_url: str,
) -> None:
    a, b = pair(redis_url, "slowfail", 2, 60, slow_call_duration=1.0, clock=FakeClock())
    with pytest.raises(Boom):
        await a.call(fail)
    assert await b.call(ok) == "ok"  # one failure of two: still closed
    with pytest.raises(Boom):
        await a.call(fail)
    with pytest.raises(Boom):
        await a.call(fail)
    with pytest.raises(CircuitOpenError):
        await b.call(ok)
    await close(a, b)


async def test_an_ignored_error_in_a_shared_trial_gives_the_trial_back(redis_url: str) -> None:
    a, b = pair(redis_url, "ign", 1, 0, ignore_exceptions=(Ignored,))
    with pytest.raises(Boom):
        await a.call(fail)
    trial = await a.acquire()  # recovery 0: the single half-open trial
    assert (trial.shared, trial.trial) == (True, True)
    with pytest.raises(CircuitOpenError):
        await b.acquire()  # taken
    await a.complete(trial, Ignored())
    assert trial.done is True
    assert await b.call(ok) == "ok"  # the trial was given back, and it closed the circuit
    assert b.state is CircuitState.CLOSED
    await close(a, b)


async def test_an_ignored_error_through_call_releases_the_shared_trial(redis_url: str) -> None:
    a, b = pair(redis_url, "ign2", 1, 0, ignore_exceptions=(Ignored,))
    with pytest.raises(Boom):
        await a.call(fail)

    async def ignored() -> None:
        raise Ignored()

    with pytest.raises(Ignored):
        await a.call(ignored)
    assert await b.call(ok) == "ok"
    await close(a, b)


async def test_sync_reports_of_shared_permits_reach_redis(redis_url: str) -> None:
    a, b = pair(redis_url, "sync", 1, 0)
    permit = await a.acquire()
    assert (permit.shared, permit.trial) == (True, False)
    a.on_failure(permit, Boom())
    await a.drain()
    assert permit.done is True
    trial = await b.acquire()  # the failure opened the circuit: recovery 0, so b gets a trial
    assert trial.trial is True
    with pytest.raises(CircuitOpenError):
        await a.acquire()  # the one trial is taken
    b.release(trial)
    await b.drain()
    trial = await a.acquire()  # given back: a takes it
    assert trial.trial is True
    a.on_success(trial)
    await a.drain()
    assert trial.done is True
    assert a.state is CircuitState.CLOSED
    closed = await b.acquire()
    assert closed.trial is False
    assert b.state is CircuitState.CLOSED
    await close(a, b)


async def test_a_sync_reset_resets_the_shared_state(redis_url: str) -> None:
    a, b = pair(redis_url, "reset", 1, 60)
    with pytest.raises(Boom):
        await a.call(fail)
    with pytest.raises(CircuitOpenError):
        await b.call(ok)
    a.reset()
    await a.drain()
    assert await b.call(ok) == "ok"
    await close(a, b)


async def test_a_second_cancellation_during_the_trial_release_is_absorbed(
    redis_url: str,
) -> None:
    a, b = pair(redis_url, "cancel2", 1, 0)
    with pytest.raises(Boom):
        await a.call(fail)
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(a.call(hang))
    await entered.wait()
    task.cancel()
    await asyncio.sleep(0)  # the task runs: it catches the cancellation and starts the release
    assert not task.done()
    task.cancel()  # cancelled again while the release is in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    await a.drain()  # the shielded release still completes
    assert await b.call(ok) == "ok"
    await close(a, b)


def unreachable_warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[object, ...]]:
    return [tuple(r.args) for r in caplog.records
            if isinstance(r.args, tuple) and "unreachable" in r.getMessage()]


async def test_redis_lost_between_admission_and_report_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with redis_server() as url:
        rec = CircuitBreaker(1, 60, name="rec", shared_state=RedisCircuitState(url))
        rel = CircuitBreaker(1, 0, name="rel", shared_state=RedisCircuitState(url),
                             ignore_exceptions=(Ignored,))
        force = CircuitBreaker(1, 60, name="force", shared_state=RedisCircuitState(url))
        permit = await rec.acquire()
        with pytest.raises(Boom):
            await rel.call(fail)
        trial = await rel.acquire()
        assert trial.trial
    # the server is gone now
    with caplog.at_level(logging.WARNING):
        await rec.complete(permit, Boom())
        await rel.complete(trial, Ignored())
        await force.areset()
    warnings = unreachable_warnings(caplog)
    assert [w[0] for w in warnings] == [
        "circuit rec: shared state", "circuit rel: shared state", "circuit force: shared state"
    ]
    assert all(isinstance(w[1], REDIS_UNAVAILABLE) for w in warnings)
    assert rec.state is CircuitState.CLOSED  # the failure was not recorded anywhere
    await close(rec, rel, force)


async def test_redis_down_at_admission_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with redis_server() as url:
        breaker = CircuitBreaker(1, 60, name="adm", shared_state=RedisCircuitState(url))
    with caplog.at_level(logging.WARNING):
        assert await breaker.call(ok) == "ok"  # local state
    (warning,) = unreachable_warnings(caplog)
    assert warning[0] == "circuit adm: shared state"
    assert isinstance(warning[1], REDIS_UNAVAILABLE)
    await close(breaker)


async def test_a_slow_success_reported_through_the_sync_api_reopens_a_shared_trial(
    redis_url: str,
) -> None:
    a, b = pair(redis_url, "slowsync", 1, 0, slow_call_duration=1.0)
    with pytest.raises(Boom):
        await a.call(fail)
    trial = await a.acquire()
    assert trial.trial is True
    a.on_success(trial, duration=1.0)  # as slow as the threshold: a failed trial
    await a.drain()
    reopened = await b.acquire()  # recovery 0: a new round, a new trial
    assert reopened.trial is True
    assert reopened.generation > trial.generation
    await close(a, b)
