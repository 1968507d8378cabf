"""The memory manager: validated writes, versioned last-writer-wins storage, ranked search.

A :class:`MemoryManager` owns one :class:`MemoryStore` and keeps an in-memory mirror of it
(records, a BM25 index, an expiry heap), loaded from ``store.scan()`` when it opens. Every
change is written to the store first; the mirror and the index change only once the store has
acknowledged the write, so a failing store never leaves them ahead of the data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

from deep_tree_echo.aar_core.errors import InvalidMemoryError, NotInitializedError, StoreError
from deep_tree_echo.aar_core.memory._bm25 import BM25Index, document_text, tokenize
from deep_tree_echo.aar_core.memory._inmemory import InMemoryStore
from deep_tree_echo.aar_core.memory.hlc import HybridLogicalClock
from deep_tree_echo.aar_core.memory.ranking import (
    RankWeights,
    SearchResult,
    normalise_importance,
    recency,
)
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.store import MemoryStore

logger = logging.getLogger(__name__)

#: Event emitted on the bus after every acknowledged change.
MEMORY_UPDATE_EVENT = "memory.update"
MAX_ID_LENGTH = 256
#: Ids handed to ``store.purge`` per call, so one purge never holds the writer for long.
PURGE_BATCH = 1000

Action = Literal["created", "updated", "deleted"]
_MISSING = object()
T = TypeVar("T")


def _json_copy(data: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON-safe data (faster than ``copy.deepcopy`` for plain JSON)."""
    copied: dict[str, Any] = json.loads(json.dumps(data))
    return copied


def validate_memory_id(memory_id: object) -> str:
    """Return ``memory_id`` if it is a usable id, else raise :class:`InvalidMemoryError`."""
    if not isinstance(memory_id, str) or not memory_id:
        raise InvalidMemoryError("memory id must be a non-empty string", memory_id=repr(memory_id))
    if len(memory_id) > MAX_ID_LENGTH:
        raise InvalidMemoryError(f"memory id is longer than {MAX_ID_LENGTH} characters")
    if "/" in memory_id or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in memory_id):
        raise InvalidMemoryError(
            "memory id must not contain '/' or control characters", memory_id=repr(memory_id)
        )
    try:
        memory_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMemoryError("memory id is not valid unicode text") from exc
    return memory_id


def parse_filter_value(raw: str) -> Any:
    """A textual filter value (query string, ``--filter``) as what it most likely means.

    JSON numbers, ``true``/``false`` and ``null`` become that value, so ``importance=0.7``
    matches the number 0.7; a quoted JSON string is unquoted (``'"0.7"'`` matches the string
    "0.7"); anything else (arrays, objects, non-finite numbers, plain text) stays the raw string.
    """
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return raw


def _session_of(data: dict[str, Any]) -> Any:
    session = data.get("session_id")
    if session is None:
        context = data.get("context")
        if isinstance(context, dict):
            session = context.get("session_id")
    return session


class MemoryManager:
    """Stores, retrieves and searches memories (the ``aar_core.memory`` public API).

    ``MemoryManager()`` works at once on an :class:`InMemoryStore`; it opens lazily on first
    use, or explicitly with ``await initialize()``. ``await close()`` releases the store.
    """

    def __init__(
        self,
        store: MemoryStore | None = None,
        *,
        node_id: str | None = None,
        clock: HybridLogicalClock | None = None,
        event_bus: Any = None,
        weights: RankWeights | None = None,
        max_data_bytes: int = 256 * 1024,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store: MemoryStore = store if store is not None else InMemoryStore()
        if clock is None:
            clock = HybridLogicalClock(node_id or f"node-{uuid.uuid4().hex[:12]}", wall_clock)
        elif node_id is not None and node_id != clock.node_id:
            raise ValueError(f"node_id {node_id!r} differs from clock.node_id {clock.node_id!r}")
        self.clock = clock
        self.node_id = clock.node_id
        self.event_bus = event_bus
        self.weights = weights or RankWeights()
        self.max_data_bytes = max_data_bytes
        self.wall_clock = wall_clock
        self._records: dict[str, MemoryRecord] = {}  # latest known version, tombstones too
        self._index = BM25Index()  # exactly the live (unexpired, not deleted) records
        self._importance: dict[str, float] = {}
        self._expiry: list[tuple[float, str, Version]] = []
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._closed = False
        self._stats: dict[str, int] = dict.fromkeys(
            (
                "stores", "updates", "deletes", "retrieves", "searches", "errors",
                "remote_applied", "purged",
            ),
            0,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the store and load the mirror and search index from it. Idempotent."""
        if self._opened:
            return
        async with self._open_lock:
            if self._opened:
                return
            if self._closed:
                raise NotInitializedError("MemoryManager is closed")
            try:
                await self.store.open()
                newest: Version | None = None
                async for record in self.store.scan():
                    self._absorb(record)
                    if newest is None or record.version > newest:
                        newest = record.version
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(
                    f"cannot load memories from {self.store.kind} store: {exc}"
                ) from exc
            if newest is not None:
                # Local stamps must beat everything stored, even if the wall clock went back.
                self.clock.update(newest)
            self._opened = True

    async def close(self) -> None:
        """Close the store. Idempotent; the manager cannot be used afterwards."""
        async with self._open_lock:
            if self._closed:
                return
            self._closed = True
            if self._opened:
                self._opened = False
                await self.store.close()

    async def _ensure_open(self) -> None:
        if not self._opened:
            await self.initialize()

    async def __aenter__(self) -> MemoryManager:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- validation ------------------------------------------------------------------------

    def _validate_data(self, data: object) -> str:
        """Check ``data`` and return its JSON text (from which private copies are made)."""
        if not isinstance(data, dict):
            raise InvalidMemoryError(f"memory data must be a dict, got {type(data).__name__}")
        try:
            text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            size = len(text.encode("utf-8"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidMemoryError(f"memory data is not JSON-serialisable: {exc}") from exc
        if size > self.max_data_bytes:
            raise InvalidMemoryError(
                f"memory data is {size} bytes, more than the {self.max_data_bytes} allowed",
                size=size,
                limit=self.max_data_bytes,
            )
        return text

    @staticmethod
    def _validate_ttl(ttl: object) -> float | None:
        if ttl is None:
            return None
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise InvalidMemoryError(f"ttl must be a number of seconds > 0, got {ttl!r}")
        if ttl == float("inf"):
            return None
        return float(ttl)

    # -- mirror ----------------------------------------------------------------------------

    def _absorb(self, record: MemoryRecord) -> bool:
        """Make ``record`` the mirror's version of its id if it is newer; True when it was."""
        current = self._records.get(record.id)
        if current is not None and current.version >= record.version:
            return False
        self._records[record.id] = record
        if record.is_live(self.wall_clock()):
            self._index.add(record.id, document_text(record.data))
            self._importance[record.id] = normalise_importance(record.data.get("importance"))
            if record.expires_at is not None:
                heapq.heappush(self._expiry, (record.expires_at, record.id, record.version))
        else:
            self._index.remove(record.id)
            self._importance.pop(record.id, None)
        return True

    def _purge_expired(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, memory_id, version = heapq.heappop(heap)
            record = self._records.get(memory_id)
            if record is not None and record.version == version:
                self._index.remove(memory_id)
                self._importance.pop(memory_id, None)

    def _live(self, memory_id: str, now: float) -> MemoryRecord | None:
        record = self._records.get(memory_id)
        return record if record is not None and record.is_live(now) else None

    async def _store_call(self, what: str, call: Awaitable[T]) -> T:
        """Await a store call; count a failure and raise it as :class:`StoreError`."""
        try:
            return await call
        except StoreError:
            self._stats["errors"] += 1
            raise
        except Exception as exc:
            self._stats["errors"] += 1
            raise StoreError(f"{self.store.kind} store {what} failed: {exc}") from exc

    async def _put(self, record: MemoryRecord) -> bool:
        return await self._store_call("write", self.store.put_if_newer(record))

    async def _emit(self, memory_id: str, action: Action, data: dict[str, Any], v: Version) -> None:
        if self.event_bus is None:
            return
        payload = {
            "memory_id": memory_id,
            "action": action,
            "session_id": _session_of(data),
            "version": v.to_str(),
        }
        try:
            await self.event_bus.emit(MEMORY_UPDATE_EVENT, payload)
        except Exception:  # an observer must never fail a write that is already durable
            logger.warning(
                "emitting %s for %r failed", MEMORY_UPDATE_EVENT, memory_id, exc_info=True
            )

    # -- writes ----------------------------------------------------------------------------

    async def upsert(
        self, memory_id: str, data: dict[str, Any], *, ttl: float | None = None
    ) -> tuple[MemoryRecord, bool]:
        """Create or replace a memory; returns the stored record and whether it was created.

        An existing live memory keeps its ``created_at`` and access statistics.
        """
        try:
            validate_memory_id(memory_id)
            text = self._validate_data(data)
            seconds = self._validate_ttl(ttl)
        except InvalidMemoryError:
            self._stats["errors"] += 1
            raise
        await self._ensure_open()
        now = self.wall_clock()
        current = self._live(memory_id, now)
        copied: dict[str, Any] = json.loads(text)
        record = MemoryRecord(
            id=memory_id,
            data=copied,
            version=self.clock.now(),
            created_at=current.created_at if current else now,
            updated_at=now,
            access_count=current.access_count if current else 0,
            last_access=current.last_access if current else None,
            expires_at=now + seconds if seconds is not None else None,
        )
        if await self._put(record):
            self._absorb(record)
        created = current is None
        self._stats["stores" if created else "updates"] += 1
        await self._emit(memory_id, "created" if created else "updated", copied, record.version)
        return dataclasses.replace(record, data=json.loads(text)), created

    async def store_memory(
        self, memory_id: str, data: dict[str, Any], *, ttl: float | None = None
    ) -> MemoryRecord:
        """Store ``data`` under ``memory_id`` (upsert); ``ttl`` seconds until it expires."""
        record, _ = await self.upsert(memory_id, data, ttl=ttl)
        return record

    async def update_memory(self, memory_id: str, data: dict[str, Any]) -> MemoryRecord:
        """Replace the data of ``memory_id`` (creating it when absent)."""
        record, _ = await self.upsert(memory_id, data)
        return record

    async def delete_memory(self, memory_id: str) -> bool:
        """Delete by writing a newer tombstone; True when a live memory was deleted."""
        validate_memory_id(memory_id)
        await self._ensure_open()
        now = self.wall_clock()
        current = self._records.get(memory_id)
        if current is None or current.deleted:
            return False
        was_live = current.is_live(now)
        tombstone = MemoryRecord(
            id=memory_id,
            data={},
            version=self.clock.now(),
            created_at=current.created_at,
            updated_at=now,
            access_count=current.access_count,
            last_access=current.last_access,
            deleted=True,
        )
        if await self._put(tombstone):
            self._absorb(tombstone)
        if was_live:
            self._stats["deletes"] += 1
            await self._emit(memory_id, "deleted", current.data, tombstone.version)
        return was_live

    async def apply_remote(self, record: MemoryRecord) -> bool:
        """Apply a record replicated from another node (last writer wins on its version).

        Returns True when it was newer than what this node holds and so was applied.
        """
        validate_memory_id(record.id)
        if not isinstance(record.data, dict):
            raise InvalidMemoryError("replicated record data must be a dict")
        await self._ensure_open()
        self.clock.update(record.version)
        now = self.wall_clock()
        was_live = self._live(record.id, now)
        incoming = dataclasses.replace(record, data=json.loads(self._validate_data(record.data)))
        applied = await self._put(incoming)
        if applied and self._absorb(incoming):
            self._stats["remote_applied"] += 1
            action: Action
            if incoming.deleted:
                action = "deleted"
                data = was_live.data if was_live else {}
            else:
                action = "updated" if was_live else "created"
                data = incoming.data
            if not incoming.deleted or was_live:
                await self._emit(record.id, action, data, incoming.version)
        return applied

    async def purge(self, older_than: float) -> int:
        """Physically remove tombstones and expired records older than ``older_than`` seconds.

        A tombstone goes once its ``updated_at`` is more than ``older_than`` seconds ago, an
        expired record once its ``expires_at`` is; live records are never touched. Tombstones
        must outlive replication lag (a purged id forgets its delete, so a stale replica could
        bring an older version back), hence ``settings.tombstone_ttl``. Removes from the store
        first, then from the mirror and the index; returns how many records were removed.
        """
        if isinstance(older_than, bool) or not older_than >= 0 or math.isinf(older_than):
            raise ValueError(f"older_than must be a finite number of seconds >= 0: {older_than!r}")
        await self._ensure_open()
        now = self.wall_clock()
        self._purge_expired(now)
        cutoff = now - older_than
        doomed: dict[str, Version] = {}
        for rid, rec in list(self._records.items()):
            if rec.deleted:
                if rec.updated_at < cutoff:
                    doomed[rid] = rec.version
            elif rec.expires_at is not None and rec.expires_at < cutoff:
                doomed[rid] = rec.version
        removed = 0
        items = list(doomed.items())
        for start in range(0, len(items), PURGE_BATCH):
            batch = dict(items[start : start + PURGE_BATCH])
            gone = await self._store_call("purge", self.store.purge(batch))
            for rid in gone:
                record = self._records.get(rid)
                # A write may have landed in the mirror while the store was purging.
                if record is not None and record.version == doomed[rid]:
                    del self._records[rid]
                    self._index.remove(rid)
                    self._importance.pop(rid, None)
            removed += len(gone)
        self._stats["purged"] += removed
        if removed:
            logger.info("purged %d tombstoned or expired memories", removed)
        return removed

    # -- reads -----------------------------------------------------------------------------

    async def retrieve_memory(self, memory_id: str) -> dict[str, Any] | None:
        """A copy of the memory's data, or None when absent, deleted or expired.

        Counts as an access: bumps ``access_count`` and ``last_access`` (used by recency).
        """
        if not isinstance(memory_id, str):
            return None
        await self._ensure_open()
        self._stats["retrieves"] += 1
        now = self.wall_clock()
        record = self._live(memory_id, now)
        if record is None:
            return None
        record.access_count += 1
        record.last_access = now if record.last_access is None else max(record.last_access, now)
        try:
            await self.store.record_access(memory_id, now)
        except Exception:  # access statistics are best effort, the read itself succeeded
            self._stats["errors"] += 1
            logger.warning("recording access to %r failed", memory_id, exc_info=True)
        return _json_copy(record.data)

    async def get_record(
        self, memory_id: str, *, include_deleted: bool = False
    ) -> MemoryRecord | None:
        """The live record with its metadata (no access bump), or None.

        With ``include_deleted``, whatever record the manager holds for the id, tombstones and
        expired records too (what replication compares versions against); None only for an id
        it never saw (or purged).
        """
        await self._ensure_open()
        if include_deleted:
            record = self._records.get(memory_id)
        else:
            record = self._live(memory_id, self.wall_clock())
        return None if record is None else dataclasses.replace(record, data=_json_copy(record.data))

    async def get_all_memories(self) -> dict[str, dict[str, Any]]:
        """Copies of the data of every live memory, keyed by id."""
        await self._ensure_open()
        now = self.wall_clock()
        return {rid: _json_copy(rec.data) for rid, rec in self._records.items() if rec.is_live(now)}

    async def records(self, *, include_deleted: bool = False) -> AsyncIterator[MemoryRecord]:
        """Copies of the records, sorted by id: the live ones, or with ``include_deleted``
        every record the manager holds (tombstones and expired ones too)."""
        await self._ensure_open()
        for memory_id in sorted(self._records):
            record = self._records.get(memory_id)  # the mirror may change while we yield
            if record is None or not (include_deleted or record.is_live(self.wall_clock())):
                continue
            yield dataclasses.replace(record, data=_json_copy(record.data))

    async def count(self) -> int:
        """Number of live memories."""
        await self._ensure_open()
        self._purge_expired(self.wall_clock())
        return len(self._index)

    @property
    def stats(self) -> dict[str, int]:
        """Operation counters (a copy): stores, updates, deletes, retrieves, searches, errors."""
        return dict(self._stats)

    # -- search ----------------------------------------------------------------------------

    async def search(
        self,
        query: str,
        /,
        limit: int = 10,
        *,
        exclude: dict[str, Any] | None = None,
        **filters: Any,
    ) -> list[SearchResult]:
        """Live memories ranked by relevance to ``query``, recency and importance.

        Only memories matching at least one query term are candidates; an empty query (or one
        of stopwords only) ranks all live memories by recency and importance. ``filters``
        keep memories whose top-level ``data[key] == value``. ``self`` and ``query`` are
        positional-only so any data field name (``self``, ``query``) can be a filter; the one
        exceptions are ``limit``, which always means the result count, and ``exclude``, whose
        ``key: value`` pairs drop memories with ``data[key] == value`` (``{"is_question": True}``
        leaves out stored questions); filters on fields named ``limit`` or ``exclude`` cannot
        be expressed here.
        """
        await self._ensure_open()
        self._stats["searches"] += 1
        if limit <= 0:
            return []
        now = self.wall_clock()
        self._purge_expired(now)
        records = self._records

        dropped = list((exclude or {}).items())

        def keep(memory_id: str) -> bool:
            data = records[memory_id].data
            return all(data.get(k, _MISSING) == v for k, v in filters.items()) and not any(
                data.get(k, _MISSING) == v for k, v in dropped
            )

        filtering = bool(filters or dropped)
        terms = tokenize(query) if isinstance(query, str) else []
        pool = max(limit * 20, 200)
        candidates: list[tuple[str, float]]
        if terms:
            candidates = self._index.top(terms, pool, keep if filtering else None)
        else:
            ids = self._importance.keys()
            candidates = [(d, 0.0) for d in ids if not filtering or keep(d)]
        if not candidates:
            return []
        best = max(s for _, s in candidates)
        w = self.weights
        ranked: list[tuple[float, float, float, float, str]] = []
        for memory_id, bm25 in candidates:
            record = records[memory_id]
            if not record.is_live(now):
                continue
            rel = bm25 / best if best > 0 else 0.0
            rec = recency(w.decay, now, record.last_access or record.updated_at)
            imp = self._importance[memory_id]
            score = w.relevance * rel + w.recency * rec + w.importance * imp
            ranked.append((score, rel, rec, imp, memory_id))
        top = heapq.nlargest(limit, ranked)
        return [
            SearchResult(
                id=memory_id,
                data=_json_copy(records[memory_id].data),
                score=score,
                relevance=rel,
                recency=rec,
                importance=imp,
            )
            for score, rel, rec, imp, memory_id in top
        ]

    def __repr__(self) -> str:
        return f"MemoryManager(store={self.store!r}, node_id={self.node_id!r})"
