"""A :class:`MemoryStore` on Redis, shared by any number of processes (scale-out).

Layout under ``prefix`` (default ``"dte:mem:"``) for tenant ``default``: one hash per record
at ``{prefix}r:{id}`` and a sorted set ``{prefix}ids`` (every score 0) indexing the ids; any
other tenant ``T`` has the same keys under ``{prefix}@T:`` (tenant names hold no ``:`` or
``@``), and ``{prefix}tenants`` lists the tenants. Search runs in Redis: each tenant keeps BM25
postings of its live records (``_redis_lua``), changed by the same script as the record, and a
search script scores them there, so every process sees exactly the committed state. Writes
that must be atomic are Lua scripts, which Redis runs without interleaving other commands:

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
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from deep_tree_echo._redis import redis_client
from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory._bm25 import document_text, tokenize
from deep_tree_echo.aar_core.memory._redis_lua import (
    LUA_PURGE,
    LUA_PUT_IF_NEWER,
    LUA_RECORD_ACCESS,
    LUA_SEARCH,
)
from deep_tree_echo.aar_core.memory.ranking import (
    Candidate,
    RankWeights,
    SearchResult,
    candidate_pool,
    matches_filters,
    normalise_importance,
    rank,
)
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT, MemoryStore

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

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




def _hex(token: str) -> str:
    return token.encode("utf-8").hex()



def _candidate(record: MemoryRecord, bm25: float) -> Candidate:
    importance = normalise_importance(record.data.get("importance"))
    touched = record.last_access or record.updated_at
    return Candidate(record.id, record.data, bm25, touched, importance)


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
        self._tenants_key = f"{prefix}tenants"
        self._url: str | None = client_or_url if isinstance(client_or_url, str) else None
        self._client: Redis | None = None if isinstance(client_or_url, str) else client_or_url
        self._owns_client = isinstance(client_or_url, str)
        self._redis_errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)
        self._scripts: dict[str, AsyncScript] = {}
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._closed = False

    def _base(self, tenant: str) -> str:
        """Key prefix of a tenant (``default`` keeps the original, tenant-less layout)."""
        return self.prefix if tenant == DEFAULT_TENANT else f"{self.prefix}@{tenant}:"

    def _key(self, memory_id: str, tenant: str = DEFAULT_TENANT) -> str:
        return f"{self._base(tenant)}r:{memory_id}"

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
                    "put": client.register_script(LUA_PUT_IF_NEWER),
                    "access": client.register_script(LUA_RECORD_ACCESS),
                    "purge": client.register_script(LUA_PURGE),
                    "search": client.register_script(LUA_SEARCH),
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

    async def get(self, memory_id: str, *, tenant: str = DEFAULT_TENANT) -> MemoryRecord | None:
        client = await self._ready()
        with self._errors("read"):
            raw = await client.hgetall(self._key(memory_id, tenant))
        return _from_fields(memory_id, raw) if raw else None

    async def put_if_newer(self, record: MemoryRecord, *, tenant: str = DEFAULT_TENANT) -> bool:
        base = self._base(tenant)
        if record.deleted:
            dl, postings = -1, []
        else:
            tokens = tokenize(document_text(record.data))
            dl = len(tokens)
            postings = [x for t, n in Counter(tokens).items() for x in (_hex(t), str(n))]
        args = [
            record.id, record.version.to_str(), base, tenant, str(dl), str(len(postings) // 2),
            *postings, *_to_fields(record),
        ]  # fmt: skip
        keys = [self._key(record.id, tenant), f"{base}ids", self._tenants_key]
        written = await self._run("put", keys, args)
        return int(written) == 1

    async def record_access(
        self, memory_id: str, at: float, count: int = 1, *, tenant: str = DEFAULT_TENANT
    ) -> None:
        await self._run("access", [self._key(memory_id, tenant)], [int(count), repr(float(at))])

    async def purge(
        self, expected: Mapping[str, Version], *, tenant: str = DEFAULT_TENANT
    ) -> list[str]:
        if not expected:
            return []
        ids = list(expected)
        base = self._base(tenant)
        keys = [*(self._key(rid, tenant) for rid in ids), f"{base}ids"]
        args = [*(expected[rid].to_str() for rid in ids), *ids, base]
        removed = await self._run("purge", keys, args)
        return [_text(rid) for rid in removed]

    async def scan(self, *, tenant: str = DEFAULT_TENANT) -> AsyncIterator[MemoryRecord]:
        client = await self._ready()
        index = f"{self._base(tenant)}ids"
        lower = "-"  # keyset pagination over the lexicographically ordered index
        while True:
            with self._errors("scan"):
                ids = [
                    _text(rid)
                    for rid in await client.zrange(
                        index, lower, "+", bylex=True, offset=0, num=self.scan_chunk
                    )
                ]
                if not ids:
                    return
                async with client.pipeline(transaction=False) as pipe:
                    for rid in ids:
                        pipe.hgetall(self._key(rid, tenant))
                    rows = await pipe.execute()
            for rid, raw in zip(ids, rows, strict=True):
                if raw:  # an id purged between the two reads is simply gone
                    yield _from_fields(rid, raw)
            if len(ids) < self.scan_chunk:
                return
            lower = f"({ids[-1]}"

    async def count(self, *, tenant: str = DEFAULT_TENANT, live_at: float | None = None) -> int:
        client = await self._ready()
        base = self._base(tenant)
        with self._errors("count"):
            if live_at is None:
                return int(await client.zcard(f"{base}ids"))
            indexed = await client.hget(f"{base}stats", "n")
            expired = await client.zcount(f"{base}exp", "-inf", live_at)
            return int(_text(indexed or b"0")) - int(expired)

    async def tenants(self) -> list[str]:
        client = await self._ready()
        with self._errors("tenants"):
            names = [_text(t) for t in await client.smembers(self._tenants_key)]
            found = []
            for name in sorted(names):
                if await client.zcard(f"{self._base(name)}ids"):
                    found.append(name)
        return found

    async def search(
        self,
        terms: Sequence[str],
        *,
        limit: int,
        weights: RankWeights,
        now: float,
        filters: Mapping[str, Any] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> list[SearchResult]:
        if limit <= 0:
            return []
        pool = candidate_pool(limit)
        base = self._base(tenant)
        found: list[Candidate] = []
        if not terms:
            async for record in self.scan(tenant=tenant):
                if record.is_live(now) and (not filters or matches_filters(record.data, filters)):
                    found.append(_candidate(record, 0.0))
            return rank(found, weights=weights, now=now, limit=limit)
        qtf = [x for t, n in Counter(terms).items() for x in (_hex(t), str(n))]
        offset = 0
        while len(found) < pool:  # pages of the ranking until the pool is full (filters)
            flat = await self._run(
                "search", [base], [repr(now), "1.2", "0.75", str(offset), str(pool), *qtf]
            )
            ids = [_text(x) for x in flat[0::2]]
            if not ids:
                break
            client = await self._ready()
            with self._errors("search read"):
                async with client.pipeline(transaction=False) as pipe:
                    for rid in ids:
                        pipe.hgetall(self._key(rid, tenant))
                    rows = await pipe.execute()
            for rid, score, raw in zip(ids, flat[1::2], rows, strict=True):
                if not raw:
                    continue
                record = _from_fields(rid, raw)
                if record.is_live(now) and (not filters or matches_filters(record.data, filters)):
                    found.append(_candidate(record, float(_text(score))))
            if len(ids) < pool:
                break
            offset += pool
        return rank(found[:pool], weights=weights, now=now, limit=limit)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"
