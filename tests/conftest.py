"""Suite-wide fixtures: real redis-server, PostgreSQL and nats-server, started once per session."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _services import nats_server, postgres_server, redis_server


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """URL of a real redis-server on loopback for this test session."""
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    """The session's redis URL, flushed before each test so tests do not see each other."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server_url)
    await client.flushall()
    await client.aclose()
    yield redis_server_url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL server on loopback for this test session."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of a real nats-server on loopback for this test session (no auth)."""
    with nats_server() as url:
        yield url
