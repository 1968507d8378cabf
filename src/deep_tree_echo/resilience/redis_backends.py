"""Redis backends: circuit state and GCRA rate limits shared by every process that names them.

All updates run as Lua scripts, so each read-modify-write is atomic on the server, and every
script reads the clock with ``TIME`` so all replicas agree on one clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from deep_tree_echo._redis import redis_client

logger = logging.getLogger(__name__)

#: Errors that mean "Redis is unreachable or unhealthy": callers fall back to local state.
REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

_STATE_CODES = ("closed", "open", "half_open")


def _make_client(client_or_url: aioredis.Redis | str) -> tuple[aioredis.Redis, bool]:
    """Return ``(client, owned)``; a URL gets a client with short timeouts and no retries."""
    if isinstance(client_or_url, str):
        return redis_client(client_or_url, fail_fast=True), True
    return client_or_url, False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- circuit breaker

_CB_ACQUIRE = """
local k = KEYS[1]
local rt = tonumber(ARGV[1])
local hmax = tonumber(ARGV[2])
local v = redis.call('HMGET', k, 'st', 'gen', 'oa', 'hp')
local st = tonumber(v[1] or '0')
local gen = tonumber(v[2] or '0')
if st == 0 then return {1, 0, gen, '0', 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hp = tonumber(v[4] or '0')
if st == 1 then
  local oa = tonumber(v[3] or '0')
  if now < oa + rt then return {0, 1, gen, string.format('%.6f', oa + rt - now), 0} end
  gen = gen + 1
  hp = hmax
  redis.call('HSET', k, 'st', 2, 'gen', gen, 'hp', hmax, 'hs', 0)
end
if hp > 0 then
  redis.call('HSET', k, 'hp', hp - 1)
  return {1, 2, gen, '0', 1}
end
return {0, 2, gen, string.format('%.6f', rt), 0}
"""

_CB_RECORD = """
local k = KEYS[1]
local wk = KEYS[2]
local pgen = tonumber(ARGV[1])
local failed = tonumber(ARGV[2])
local trial = tonumber(ARGV[3])
local thr = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local wsize = tonumber(ARGV[6])
local minc = tonumber(ARGV[7])
local hmax = tonumber(ARGV[8])
local v = redis.call('HMGET', k, 'st', 'gen', 'cf', 'hs', 'wn', 'wf', 'wi')
local st = tonumber(v[1] or '0')
local gen = tonumber(v[2] or '0')
if pgen ~= gen then return {st, gen} end
local function open()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  gen = gen + 1
  st = 1
  redis.call('HSET', k, 'st', 1, 'gen', gen, 'oa', string.format('%.6f', now), 'cf', 0,
             'hp', 0, 'hs', 0, 'wn', 0, 'wf', 0, 'wi', 0)
  redis.call('DEL', wk)
end
if st == 2 then
  if trial == 0 then return {st, gen} end
  if failed == 1 then
    open()
  else
    local hs = tonumber(v[4] or '0') + 1
    if hs >= hmax then
      gen = gen + 1
      st = 0
      redis.call('HSET', k, 'st', 0, 'gen', gen, 'cf', 0, 'hp', 0, 'hs', 0,
                 'wn', 0, 'wf', 0, 'wi', 0)
      redis.call('DEL', wk)
    else
      redis.call('HSET', k, 'hs', hs)
    end
  end
  return {st, gen}
end
if st ~= 0 then return {st, gen} end
if rate < 0 then
  local cf = tonumber(v[3] or '0')
  if failed == 1 then
    cf = cf + 1
    if cf >= thr then open() else redis.call('HSET', k, 'cf', cf) end
  elseif cf ~= 0 then
    redis.call('HSET', k, 'cf', 0)
  end
  return {st, gen}
end
local wn = tonumber(v[5] or '0')
local wf = tonumber(v[6] or '0')
local wi = tonumber(v[7] or '0')
if wn >= wsize then
  if redis.call('GETRANGE', wk, wi, wi) == '1' then wf = wf - 1 end
else
  wn = wn + 1
end
if failed == 1 then
  redis.call('SETRANGE', wk, wi, '1')
  wf = wf + 1
else
  redis.call('SETRANGE', wk, wi, '0')
end
wi = (wi + 1) % wsize
if wn >= minc and wf >= wn * rate then
  open()
else
  redis.call('HSET', k, 'wn', wn, 'wf', wf, 'wi', wi)
end
return {st, gen}
"""

_CB_RELEASE = """
local v = redis.call('HMGET', KEYS[1], 'st', 'gen', 'hp')
if tonumber(v[1] or '0') == 2 and tonumber(v[2] or '0') == tonumber(ARGV[1]) then
  local hp = tonumber(v[3] or '0') + 1
  if hp > tonumber(ARGV[2]) then hp = tonumber(ARGV[2]) end
  redis.call('HSET', KEYS[1], 'hp', hp)
end
return 1
"""

_CB_TRANSITION = """
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') + 1
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'st', tonumber(ARGV[1]), 'gen', gen, 'oa', string.format('%.6f', now),
           'cf', 0, 'hp', tonumber(ARGV[2]), 'hs', 0, 'wn', 0, 'wf', 0, 'wi', 0)
return {tonumber(ARGV[1]), gen}
"""


@dataclass(frozen=True, slots=True)
class SharedDecision:
    """Answer of :meth:`RedisCircuitState.acquire`."""

    allowed: bool
    state: str
    generation: int
    retry_after: float
    trial: bool


class RedisCircuitState:
    """Circuit-breaker state kept in Redis so breakers with the same ``name`` share it.

    Keys: ``{prefix}{name}`` (a hash: state, generation, counters) and ``{prefix}{name}:w`` (the
    sliding window as a string of ``0``/``1``). Pass a ``redis.asyncio.Redis`` or a URL.
    """

    #: Errors meaning Redis is unreachable: the breaker falls back to its local state.
    unavailable_errors: tuple[type[BaseException], ...] = REDIS_UNAVAILABLE

    def __init__(self, client_or_url: aioredis.Redis | str, *, prefix: str = "dte:cb:") -> None:
        self.client, self._owned = _make_client(client_or_url)
        self.prefix = prefix
        self._acquire = self.client.register_script(_CB_ACQUIRE)
        self._record = self.client.register_script(_CB_RECORD)
        self._release = self.client.register_script(_CB_RELEASE)
        self._transition = self.client.register_script(_CB_TRANSITION)

    def _keys(self, name: str) -> list[str]:
        key = self.prefix + name
        return [key, key + ":w"]

    async def acquire(
        self, name: str, *, recovery_timeout: float, half_open_max_calls: int
    ) -> SharedDecision:
        """Ask for a permit; moves OPEN to HALF_OPEN once the recovery timeout has passed."""
        res = await self._acquire(
            keys=self._keys(name)[:1], args=[recovery_timeout, half_open_max_calls]
        )
        return SharedDecision(
            allowed=int(res[0]) == 1,
            state=_STATE_CODES[int(res[1])],
            generation=int(res[2]),
            retry_after=float(_text(res[3])),
            trial=int(res[4]) == 1,
        )

    async def record(
        self,
        name: str,
        generation: int,
        *,
        failed: bool,
        trial: bool,
        failure_threshold: int,
        failure_rate_threshold: float | None,
        window_size: int,
        minimum_calls: int,
        half_open_max_calls: int,
    ) -> tuple[str, int]:
        """Record one outcome of a call admitted in ``generation``; ``(state, generation)``."""
        res = await self._record(
            keys=self._keys(name),
            args=[
                generation,
                1 if failed else 0,
                1 if trial else 0,
                failure_threshold,
                -1 if failure_rate_threshold is None else failure_rate_threshold,
                window_size,
                minimum_calls,
                half_open_max_calls,
            ],
        )
        return _STATE_CODES[int(res[0])], int(res[1])

    async def release(self, name: str, generation: int, *, half_open_max_calls: int) -> None:
        """Give back a half-open trial permit whose call neither succeeded nor failed."""
        await self._release(keys=self._keys(name)[:1], args=[generation, half_open_max_calls])

    async def transition(
        self, name: str, state: str, *, half_open_max_calls: int = 0
    ) -> tuple[str, int]:
        """Force ``state`` (``"closed"``, ``"open"``, ``"half_open"``), clearing the counters."""
        res = await self._transition(
            keys=self._keys(name), args=[_STATE_CODES.index(state), half_open_max_calls]
        )
        return _STATE_CODES[int(res[0])], int(res[1])

    async def aclose(self) -> None:
        """Close the client if this object created it from a URL."""
        if self._owned:
            await self.client.aclose()


# --------------------------------------------------------------------------- rate limiter

_RL_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local maxw = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval
local delay = new - now - limit
if delay > maxw then return {0, string.format('%.6f', delay), ''} end
local snew = string.format('%.6f', new)
redis.call('SET', KEYS[1], snew, 'PX', math.ceil((new - now) * 1000) + 1000)
if delay < 0 then delay = 0 end
return {1, string.format('%.6f', delay), snew}
"""

_RL_CANCEL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local back = tonumber(ARGV[1]) - tonumber(ARGV[2])
  redis.call('SET', KEYS[1], string.format('%.6f', back), 'KEEPTTL')
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Answer of :meth:`RedisRateLimitBackend.reserve`: granted or not, and the delay."""

    granted: bool
    delay: float
    token: str


class RedisRateLimitBackend:
    """GCRA state in Redis (one float per key, expiring when idle) shared by every limiter."""

    #: Errors meaning Redis is unreachable: the limiter falls back to its local state.
    unavailable_errors: tuple[type[BaseException], ...] = REDIS_UNAVAILABLE

    def __init__(self, client_or_url: aioredis.Redis | str, *, prefix: str = "dte:rl:") -> None:
        self.client, self._owned = _make_client(client_or_url)
        self.prefix = prefix
        self._reserve = self.client.register_script(_RL_RESERVE)
        self._cancel = self.client.register_script(_RL_CANCEL)

    async def reserve(
        self, key: str, *, interval: float, limit: float, max_wait: float
    ) -> Reservation:
        """Take the next slot if it starts within ``max_wait`` seconds (0: only if free now).

        When refused, ``delay`` is how long until a slot frees up.
        """
        res = await self._reserve(keys=[self.prefix + key], args=[interval, limit, max_wait])
        return Reservation(int(res[0]) == 1, max(0.0, float(_text(res[1]))), _text(res[2]))

    async def cancel(self, key: str, token: str, *, interval: float) -> bool:
        """Give back a reservation if nobody reserved after it; True when given back."""
        res = await self._cancel(keys=[self.prefix + key], args=[token, interval])
        return int(res) == 1

    async def aclose(self) -> None:
        """Close the client if this object created it from a URL."""
        if self._owned:
            await self.client.aclose()


__all__ = [
    "REDIS_UNAVAILABLE",
    "RedisCircuitState",
    "RedisRateLimitBackend",
    "Reservation",
    "SharedDecision",
]
