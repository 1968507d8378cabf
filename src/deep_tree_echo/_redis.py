"""The one Redis client factory: every ``redis.asyncio`` client of the package is made here.

Three uses, three profiles: the memory store (bytes, default timeouts), the database plugin
(``text=True``: replies decoded as UTF-8) and the shared resilience state (``fail_fast=True``:
one-second timeouts and no retries, so an unreachable Redis falls back to local state at once).
``redis`` is imported on first call, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["redis_client"]

#: Connect and socket timeout (seconds) of a ``fail_fast`` client.
FAIL_FAST_TIMEOUT = 1.0


def redis_client(url: str, *, text: bool = False, fail_fast: bool = False) -> aioredis.Redis:
    """A client for ``url``; ``text`` decodes replies, ``fail_fast`` never waits or retries."""
    import redis.asyncio as aioredis

    options: dict[str, Any] = {}
    if text:
        options["decode_responses"] = True
    if fail_fast:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options.update(
            socket_connect_timeout=FAIL_FAST_TIMEOUT,
            socket_timeout=FAIL_FAST_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
    client: aioredis.Redis = aioredis.from_url(url, **options)
    return client
