"""GCRA rate limiter: O(1) time and one float of state per key, fair FIFO waiting.

Semantics: from idle, up to ``max_requests`` calls pass at once (the burst); after that permits
come at the steady rate of ``max_requests / time_window`` per second, one every
``time_window / max_requests`` seconds. In any interval of length ``time_window`` at most
``max_requests`` plus the calls earned during it are admitted, never more than ``2 * max_requests``
for a single window-sized interval and exactly ``max_requests`` per window on average.

Per key the state is the theoretical arrival time (TAT) of the next call. :meth:`RateLimiter.wait`
reserves the next slot by advancing the TAT, then sleeps until it, so waiters are served in
arrival order and a non-waiting :meth:`~RateLimiter.acquire` cannot overtake them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import types
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import TYPE_CHECKING

from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.resilience._backend_health import _BackendHealth
from deep_tree_echo.resilience._registry import register_limiter
from deep_tree_echo.resilience.errors import RateLimitExceeded

if TYPE_CHECKING:  # imported lazily: loading redis costs ~0.1 s, and only a backend needs it
    from deep_tree_echo.resilience.redis_backends import RedisRateLimitBackend

logger = logging.getLogger(__name__)

#: How long a limiter keeps to local state after its Redis backend failed.
BACKEND_RETRY_INTERVAL = 5.0


class RateLimiter:
    """Allow ``max_requests`` per ``time_window`` seconds per key (GCRA, burst = max_requests).

    ``backend`` (a :class:`RedisRateLimitBackend`) shares the limit across processes; when it is
    unreachable the limiter falls back to its local state and logs once. ``max_keys`` bounds the
    local per-key state: when it is full, idle keys (TAT in the past, holding no information)
    are evicted; if more than half the keys are still busy, the oldest-inserted busy keys are
    dropped down to half (counted in ``evictions``; such a key gets a fresh burst).
    """

    def __init__(
        self,
        max_requests: int,
        time_window: float,
        *,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        backend: RedisRateLimitBackend | None = None,
        max_keys: int = 100_000,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if max_requests < 1:
            raise ConfigurationError("max_requests must be >= 1")
        if time_window <= 0:
            raise ConfigurationError("time_window must be > 0")
        if max_keys < 1:
            raise ConfigurationError("max_keys must be >= 1")
        self.name = name if name is not None else f"limiter-{id(self):x}"
        self.max_requests = max_requests
        self.time_window = float(time_window)
        self.max_keys = max_keys
        self.backend = backend
        self.rejections = 0
        self.evictions = 0
        self._clock = clock
        self._sleep = sleep
        self._interval = self.time_window / max_requests
        # A call is admitted while (new TAT - now) <= window; the slack absorbs float rounding.
        self._limit = self.time_window + self._interval * 1e-3
        self._tats: dict[str, float] = {}
        self._hints: dict[str, float] = {}  # key -> local time a permit frees up
        self._backend_health = _BackendHealth(
            logger, f"rate limiter {self.name}: backend", BACKEND_RETRY_INTERVAL
        )
        register_limiter(self)

    @property
    def interval(self) -> float:
        """Seconds between permits at the steady rate."""
        return self._interval

    def __repr__(self) -> str:
        return f"<RateLimiter {self.name!r} {self.max_requests}/{self.time_window}s>"

    # ------------------------------------------------------------------ local GCRA

    def try_acquire(self, key: str = "default") -> bool:
        """Take a permit for ``key`` now if one is available (local state, never blocks)."""
        # Deliberately inlines ``_reserve_local(key, 0.0)``: the extra call costs ~15-25% on this
        # hot path (bench/resilience.py, try_acquire and acquire rows). Keep the two in step.
        now = self._clock()
        tat = self._tats.get(key)
        if tat is None:
            if len(self._tats) >= self.max_keys:
                self._evict(now)
            tat = now
        elif tat < now:
            tat = now
        tat += self._interval
        if tat - now > self._limit:
            self.rejections += 1
            return False
        self._tats[key] = tat
        return True

    def _evict(self, now: float) -> None:
        """Make room: drop idle keys; if over half are busy, drop the oldest-inserted busy ones.

        One O(n) sweep frees at least half of ``max_keys``, so the cost is O(1) amortised.
        """
        kept = {k: v for k, v in self._tats.items() if v > now}
        keep = self.max_keys // 2
        if len(kept) > keep:
            drop = len(kept) - keep
            self.evictions += drop
            kept = dict(islice(kept.items(), drop, None))
        self._tats = kept

    def _local_retry_after(self, key: str) -> float:
        tat = self._tats.get(key)
        if tat is None:
            return 0.0
        return max(0.0, tat + self._interval - self._limit - self._clock())

    def retry_after(self, key: str = "default") -> float:
        """Seconds until ``key`` may be admitted (for a Redis backend: from its last rejection)."""
        if self.backend is not None and self._backend_health.available(self._clock()):
            return max(0.0, self._hints.get(key, 0.0) - self._clock())
        return self._local_retry_after(key)

    def _reserve_local(self, key: str, max_wait: float) -> float | None:
        """Reserve the next slot for ``key`` if it starts within ``max_wait``; its delay or None."""
        now = self._clock()
        tat = self._tats.get(key)
        if tat is None:
            if len(self._tats) >= self.max_keys:
                self._evict(now)
            tat = now
        elif tat < now:
            tat = now
        new = tat + self._interval
        delay = new - now - self._limit
        if delay > max_wait:
            return None
        self._tats[key] = new
        return max(0.0, delay)

    # ------------------------------------------------------------------ backend

    def _remember_hint(self, key: str, retry_after: float) -> None:
        hints = self._hints
        if key not in hints and len(hints) >= self.max_keys:
            hints.clear()
        hints[key] = self._clock() + retry_after

    async def _backend_reserve(self, key: str, max_wait: float) -> tuple[bool, float, str] | None:
        """``(granted, delay, token)`` from the backend, or None when it is unavailable."""
        backend = self.backend
        if backend is None or not self._backend_health.available(self._clock()):
            return None
        try:
            res = await backend.reserve(
                key, interval=self._interval, limit=self._limit, max_wait=max_wait
            )
        except backend.unavailable_errors as exc:
            self._backend_health.failed(exc, self._clock())
            return None
        self._backend_health.ok()
        if not res.granted:
            self._remember_hint(key, res.delay)
        return res.granted, res.delay, res.token

    # ------------------------------------------------------------------ public async API

    async def acquire(self, key: str = "default") -> bool:
        """Take a permit for ``key`` if one is available now; never waits."""
        if self.backend is None:
            return self.try_acquire(key)
        res = await self._backend_reserve(key, 0.0)
        if res is None:
            return self.try_acquire(key)
        if not res[0]:
            self.rejections += 1
        return res[0]

    async def acquire_or_raise(self, key: str = "default") -> None:
        """Take a permit for ``key`` now or raise :class:`RateLimitExceeded`."""
        if not await self.acquire(key):
            raise RateLimitExceeded(self.retry_after(key), key, name=self.name)

    async def wait(
        self,
        key: str = "default",
        timeout: float | None = None,  # noqa: ASYNC109 - budget checked up front, no cancel
    ) -> bool:
        """Wait for a permit, first come first served; False at once if it would take > timeout.

        If cancelled while waiting, the reservation is given back when no later caller has
        reserved after it (otherwise that one slot goes unused; the state stays consistent).
        """
        max_wait = float("inf") if timeout is None else timeout
        res = await self._backend_reserve(key, max_wait) if self.backend is not None else None
        if res is not None:
            granted, delay, token = res
            if not granted:
                self.rejections += 1
                return False
            if delay > 0:
                try:
                    await self._sleep(delay)
                except asyncio.CancelledError:
                    await self._give_back(key, token)
                    raise
            return True
        local_delay = self._reserve_local(key, max_wait)
        if local_delay is None:
            self.rejections += 1
            return False
        if local_delay > 0:
            reserved = self._tats[key]
            try:
                await self._sleep(local_delay)
            except asyncio.CancelledError:
                if self._tats.get(key) == reserved:
                    self._tats[key] = reserved - self._interval
                raise
        return True

    async def _give_back(self, key: str, token: str) -> None:
        """Return a cancelled Redis reservation; shielded so a second cancel cannot skip it."""
        backend = self.backend
        assert backend is not None

        async def give_back() -> None:
            try:
                await backend.cancel(key, token, interval=self._interval)
            except backend.unavailable_errors as exc:
                self._backend_health.failed(exc, self._clock())

        task = asyncio.get_running_loop().create_task(give_back())
        _background.add(task)
        task.add_done_callback(_background.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def __aenter__(self) -> RateLimiter:
        await self.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        return None

    def reset(self, key: str | None = None) -> None:
        """Forget local state for ``key`` (all keys when None)."""
        if key is None:
            self._tats.clear()
            self._hints.clear()
        else:
            self._tats.pop(key, None)
            self._hints.pop(key, None)

    def __len__(self) -> int:
        """Number of keys with local state."""
        return len(self._tats)


_background: set[asyncio.Task[None]] = set()

__all__ = ["BACKEND_RETRY_INTERVAL", "RateLimiter"]
