"""A :class:`MemoryStore` on Redis, shared by any number of processes (scale-out).

Layout under ``prefix`` (default ``"dte:mem:"``): one hash per record at ``{prefix}r:{id}``
and a sorted set ``{prefix}ids`` (every score 0) indexing the ids. Writes that must be atomic
are Lua scripts, which Redis runs without interleaving other commands:

- ``put_if_newer`` compares the stored version with the incoming one and replaces the hash
  (and indexes the id) only when the incoming version is strictly newer;
- ``record_access`` bumps ``access_count`` (HINCRBY) and raises ``last_access`` for an existing
  record, leaving the version alone;
- ``purge`` checks every expected version first, then deletes the rows that still match.

Versions are compared as ``(wall_ms, logical, node_id)`` parsed from ``Version.to_str``, with the
node id compared bytewise, so Redis orders them exactly as Python does whatever its locale.
``scan`` pages through the index by id (ZRANGE BYLEX, keyset pagination): every record present
for the whole scan is returned exactly once, in chunks of ``scan_chunk``.

A write is acknowledged once the Redis primary has applied it; surviving a crash of Redis
itself depends on its persistence settings (``appendonly yes`` with ``appendfsync always`` for
the guarantee the SQLite store gives). ``redis`` is imported only when a store is created.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from deep_tree_echo._redis import redis_client
from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.store import MemoryStore

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

# ``newer(a, b)``: true when version text ``a`` orders after ``b``. Numbers are compared as
# numbers and node ids byte by byte (Lua's ``<`` on strings follows the server's locale).
_LUA_NEWER: Final = """
local function newer(a, b)
  local aw, al, an = string.match(a, '^(%d+)-(%d+)-(.*)$')
  local bw, bl, bn = string.match(b, '^(%d+)-(%d+)-(.*)$')
  if not aw then return redis.error_reply('malformed version ' .. a) end
  if not bw then return true end
  aw, al, bw, bl = tonumber(aw), tonumber(al), tonumber(bw), tonumber(bl)
  if aw ~= bw then return aw > bw end
  if al ~= bl then return al > bl end
  for i = 1, math.min(#an, #bn) do
    local x, y = string.byte(an, i), string.byte(bn, i)
    if x ~= y then return x > y end
  end
  return #an > #bn
end
"""

# KEYS: record, index. ARGV: id, version, then the hash's field/value pairs (``v`` included).
_LUA_PUT_IF_NEWER: Final = (
    _LUA_NEWER
    + """
local current = redis.call('HGET', KEYS[1], 'v')
if current then
  local ok = newer(ARGV[2], current)
  if type(ok) == 'table' then return ok end
  if not ok then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""
)

# KEYS: record. ARGV: count, at. No-op (0) when the record does not exist.
_LUA_RECORD_ACCESS: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'access_count', ARGV[1])
local last = redis.call('HGET', KEYS[1], 'last_access')
if not last or (tonumber(last) or -math.huge) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'last_access', ARGV[2])
end
return 1
"""

# KEYS: n record keys, then the index. ARGV: n expected versions, then the n ids.
# Every check runs before any removal; the script is atomic, so nothing sees a partial purge.
_LUA_PURGE: Final = """
local n = #KEYS - 1
local hits = {}
for i = 1, n do
  if redis.call('HGET', KEYS[i], 'v') == ARGV[i] then hits[#hits + 1] = i end
end
local removed = {}
for _, i in ipairs(hits) do
  redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[n + 1], ARGV[n + i])
  removed[#removed + 1] = ARGV[n + i]
end
return removed
"""


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _float_or_none(fields: Mapping[str, str], name: str) -> float | None:
    raw = fields.get(name)
    return None if raw is None else float(raw)


def _to_fields(record: MemoryRecord) -> list[str]:
    """The record as HSET field/value pairs; absent optional values have no field."""
    pairs = [
        "v", record.version.to_str(),
        "data", json.dumps(record.data, separators=(",", ":"), allow_nan=False),
        "created_at", repr(float(record.created_at)),
        "updated_at", repr(float(record.updated_at)),
        "access_count", str(int(record.access_count)),
        "deleted", "1" if record.deleted else "0",
    ]  # fmt: skip
    if record.last_access is not None:
        pairs += ["last_access", repr(float(record.last_access))]
    if record.expires_at is not None:
        pairs += ["expires_at", repr(float(record.expires_at))]
    if record.extra:
        pairs += ["extra", json.dumps(record.extra, separators=(",", ":"))]
    return pairs


def _from_fields(memory_id: str, raw: Mapping[Any, Any]) -> MemoryRecord:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return MemoryRecord(
        id=memory_id,
        data=json.loads(fields["data"]),
        version=Version.parse(fields["v"]),
        created_at=float(fields["created_at"]),
        updated_at=float(fields["updated_at"]),
        access_count=int(fields.get("access_count", "0")),
        last_access=_float_or_none(fields, "last_access"),
        expires_at=_float_or_none(fields, "expires_at"),
        deleted=fields.get("deleted") == "1",
        extra=json.loads(fields["extra"]) if "extra" in fields else {},
    )


class RedisStore(MemoryStore):
    """Redis-backed store; see the module docstring for the key layout and the guarantees.

    ``client_or_url`` is a ``redis.asyncio.Redis`` client (the caller keeps owning it) or a
    ``redis://`` / ``rediss://`` / ``unix://`` URL (the store creates and closes the client).
    """

    kind = "redis"

    def __init__(
        self,
        client_or_url: Redis | str,
        *,
        prefix: str = "dte:mem:",
        scan_chunk: int = 500,
    ) -> None:
        import redis.exceptions

        if scan_chunk <= 0:
            raise ValueError("scan_chunk must be positive")
        self.prefix = prefix
        self.scan_chunk = scan_chunk
        self._index_key = f"{prefix}ids"
        self._url: str | None = client_or_url if isinstance(client_or_url, str) else None
        self._client: Redis | None = None if isinstance(client_or_url, str) else client_or_url
        self._owns_client = isinstance(client_or_url, str)
        self._redis_errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)
        self._scripts: dict[str, AsyncScript] = {}
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._closed = False

    def _key(self, memory_id: str) -> str:
        return f"{self.prefix}r:{memory_id}"

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Re-raise a Redis failure (connection, script, server) as :class:`StoreError`."""
        try:
            yield
        except StoreError:
            raise
        except self._redis_errors as exc:
            raise StoreError(f"redis {what} failed: {exc}", prefix=self.prefix) from exc

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (creating the client from the URL), check the server answers, load scripts."""
        async with self._open_lock:
            if self._closed:
                raise StoreError("RedisStore is closed", prefix=self.prefix)
            if self._opened:
                return
            if self._client is None:
                assert self._url is not None
                self._client = redis_client(self._url)
            client = self._client
            with self._errors("connect"):
                await client.ping()
                self._scripts = {
                    "put": client.register_script(_LUA_PUT_IF_NEWER),
                    "access": client.register_script(_LUA_RECORD_ACCESS),
                    "purge": client.register_script(_LUA_PURGE),
                }
            self._opened = True

    async def close(self) -> None:
        async with self._open_lock:
            if self._closed:
                return
            self._closed = True
            self._opened = False
            client, self._client = self._client, None
            if client is not None and self._owns_client:
                await client.aclose()

    async def _ready(self) -> Redis:
        if not self._opened:
            await self.open()
        client = self._client
        if client is None or self._closed:
            raise StoreError("RedisStore is closed", prefix=self.prefix)
        return client

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        client = await self._ready()
        with self._errors(f"{script} script"):
            return await self._scripts[script](keys=keys, args=args, client=client)

    # -- MemoryStore API -------------------------------------------------------------------

    async def get(self, memory_id: str) -> MemoryRecord | None:
        client = await self._ready()
        with self._errors("read"):
            raw = await client.hgetall(self._key(memory_id))
        return _from_fields(memory_id, raw) if raw else None

    async def put_if_newer(self, record: MemoryRecord) -> bool:
        args = [record.id, record.version.to_str(), *_to_fields(record)]
        written = await self._run("put", [self._key(record.id), self._index_key], args)
        return int(written) == 1

    async def record_access(self, memory_id: str, at: float, count: int = 1) -> None:
        await self._run("access", [self._key(memory_id)], [int(count), repr(float(at))])

    async def purge(self, expected: Mapping[str, Version]) -> list[str]:
        if not expected:
            return []
        ids = list(expected)
        keys = [*(self._key(rid) for rid in ids), self._index_key]
        args = [*(expected[rid].to_str() for rid in ids), *ids]
        removed = await self._run("purge", keys, args)
        return [_text(rid) for rid in removed]

    async def scan(self) -> AsyncIterator[MemoryRecord]:
        client = await self._ready()
        lower = "-"  # keyset pagination over the lexicographically ordered index
        while True:
            with self._errors("scan"):
                ids = [
                    _text(rid)
                    for rid in await client.zrange(
                        self._index_key, lower, "+", bylex=True, offset=0, num=self.scan_chunk
                    )
                ]
                if not ids:
                    return
                async with client.pipeline(transaction=False) as pipe:
                    for rid in ids:
                        pipe.hgetall(self._key(rid))
                    rows = await pipe.execute()
            for rid, raw in zip(ids, rows, strict=True):
                if raw:  # an id purged between the two reads is simply gone
                    yield _from_fields(rid, raw)
            if len(ids) < self.scan_chunk:
                return
            lower = f"({ids[-1]}"

    async def count(self) -> int:
        client = await self._ready()
        with self._errors("count"):
            return int(await client.zcard(self._index_key))

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"
