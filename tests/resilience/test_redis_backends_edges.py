"""Redis backends at their edges, against a real redis-server (found by mutation testing).

Exact reservation answers and give-backs, key layout under the prefix, clients that decode
responses, the state/generation a forced transition returns, and a Redis that never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from deep_tree_echo.resilience import RedisCircuitState, RedisRateLimitBackend
from deep_tree_echo.testing._process import free_port


async def test_reserve_answers_exactly_and_cancel_gives_back_only_the_last_slot(
    redis_url: str,
) -> None:
    backend = RedisRateLimitBackend(redis_url)
    first = await backend.reserve("k", interval=10.0, limit=10.0, max_wait=0)
    assert first.granted is True
    assert first.delay == 0.0  # free now: no wait, never a negative one
    assert first.token != ""
    refused = await backend.reserve("k", interval=10.0, limit=10.0, max_wait=0)
    assert refused.granted is False
    assert refused.token == ""
    assert 9.0 < refused.delay <= 10.0
    queued = await backend.reserve("k", interval=10.0, limit=10.0, max_wait=60)
    assert queued.granted is True and 9.0 < queued.delay <= 10.0
    assert await backend.cancel("k", first.token, interval=10.0) is False  # not the last one
    assert await backend.cancel("k", queued.token, interval=10.0) is True
    assert await backend.cancel("k", queued.token, interval=10.0) is False  # already given back
    assert await backend.client.exists("dte:rl:k") == 1
    await backend.aclose()


async def test_keys_live_under_the_configured_prefix(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    limiter_backend = RedisRateLimitBackend(client, prefix="t:rl:")
    await limiter_backend.reserve("user", interval=1.0, limit=1.0, max_wait=0)
    state = RedisCircuitState(client, prefix="t:cb:")
    await state.record(
        "svc", 0, failed=True, trial=False, failure_threshold=5, failure_rate_threshold=0.5,
        window_size=4, minimum_calls=4, half_open_max_calls=1,
    )  # fmt: skip
    keys = sorted(k.decode() for k in await client.keys("t:*"))
    assert keys == ["t:cb:svc", "t:cb:svc:w", "t:rl:user"]
    await client.aclose()


async def test_a_client_that_decodes_responses_works_the_same(redis_url: str) -> None:
    client = aioredis.from_url(redis_url, decode_responses=True)
    backend = RedisRateLimitBackend(client)
    got = await backend.reserve("d", interval=5.0, limit=5.0, max_wait=10)
    assert got.granted and got.delay == 0.0
    assert await backend.cancel("d", got.token, interval=5.0) is True
    state = RedisCircuitState(client)
    decision = await state.acquire("dec", recovery_timeout=1.0, half_open_max_calls=1)
    assert (decision.allowed, decision.state, decision.trial) == (True, "closed", False)
    assert decision.retry_after == 0.0
    await client.aclose()


async def test_forced_transitions_return_the_new_state_and_generation(redis_url: str) -> None:
    state = RedisCircuitState(redis_url)
    opened = await state.transition("gen", "open")
    assert opened[0] == "open"
    assert await state.client.exists("dte:cb:gen") == 1  # the default prefix
    closed = await state.transition("gen", "closed")
    assert closed == ("closed", opened[1] + 1)
    half = await state.transition("gen", "half_open", half_open_max_calls=2)
    assert half == ("half_open", opened[1] + 2)
    first = await state.acquire("gen", recovery_timeout=60.0, half_open_max_calls=2)
    assert (first.allowed, first.state, first.trial, first.generation) == (
        True, "half_open", True, half[1],
    )  # fmt: skip
    await state.aclose()


async def test_a_trial_outcome_is_recorded_as_a_trial(redis_url: str) -> None:
    state = RedisCircuitState(redis_url)
    _, gen = await state.transition("trial", "half_open", half_open_max_calls=2)
    common = {
        "failure_threshold": 1, "failure_rate_threshold": None, "window_size": 10,
        "minimum_calls": 10, "half_open_max_calls": 2,
    }  # fmt: skip
    # An outcome that is not a trial does not count towards closing a half-open circuit.
    assert await state.record("trial", gen, failed=False, trial=False, **common) == (
        "half_open", gen,
    )  # fmt: skip
    assert await state.record("trial", gen, failed=True, trial=False, **common) == (
        "half_open", gen,
    )  # fmt: skip
    # One successful trial of two: still half-open.
    assert await state.record("trial", gen, failed=False, trial=True, **common) == (
        "half_open", gen,
    )  # fmt: skip
    assert await state.record("trial", gen, failed=False, trial=True, **common) == (
        "closed", gen + 1,
    )  # fmt: skip
    # Closed now: a success is not a trial and changes nothing.
    assert await state.record("trial", gen + 1, failed=False, trial=False, **common) == (
        "closed", gen + 1,
    )  # fmt: skip
    await state.aclose()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    port = free_port()
    server = await asyncio.start_server(accept, "127.0.0.1", port)
    try:
        yield port
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_redis_that_never_answers_fails_the_call_instead_of_hanging() -> None:
    async with silent_server() as port:
        backend = RedisRateLimitBackend(f"redis://127.0.0.1:{port}")
        with pytest.raises(backend.unavailable_errors):
            await backend.reserve("k", interval=1.0, limit=1.0, max_wait=0)
        await backend.aclose()
        state = RedisCircuitState(f"redis://127.0.0.1:{port}")
        with pytest.raises(state.unavailable_errors):
            await state.acquire("svc", recovery_timeout=1.0, half_open_max_calls=1)
        await state.aclose()


async def test_aclose_closes_only_a_client_the_backend_created(redis_url: str) -> None:
    admin = aioredis.from_url(redis_url)

    async def connected_ids() -> set[int]:
        return {int(c["id"]) for c in await admin.client_list()}

    owned = RedisCircuitState(redis_url)
    await owned.acquire("svc", recovery_timeout=1.0, half_open_max_calls=1)
    owned_id = await owned.client.client_id()
    assert owned_id in await connected_ids()
    await owned.aclose()
    assert owned_id not in await connected_ids()  # the connection it opened is gone

    lent = aioredis.from_url(redis_url)
    lent_id = await lent.client_id()
    borrower = RedisCircuitState(lent)
    await borrower.acquire("svc", recovery_timeout=1.0, half_open_max_calls=1)
    await borrower.aclose()
    assert lent_id in await connected_ids()  # a lent client stays open for its owner
    assert await lent.client_id() == lent_id
    await lent.aclose()
    await admin.aclose()


async def test_a_forced_half_open_grants_the_trials_it_names(redis_url: str) -> None:
    state = RedisCircuitState(redis_url)
    await state.transition("none", "half_open")  # default: no trial permits
    refused = await state.acquire("none", recovery_timeout=60.0, half_open_max_calls=1)
    assert (refused.allowed, refused.state) == (False, "half_open")
    await state.transition("two", "half_open", half_open_max_calls=2)
    got = [await state.acquire("two", recovery_timeout=60.0, half_open_max_calls=2)
           for _ in range(3)]
    assert [(d.allowed, d.trial) for d in got] == [(True, True), (True, True), (False, False)]
    await state.aclose()
