"""The memory manager: validated writes, versioned last-writer-wins storage, ranked search.

A :class:`MemoryManager` owns one :class:`MemoryStore` and keeps no copy of its records: every
read, list and search asks the store, which also runs the search (its own index, kept in step
with the records). So any number of managers in any number of processes can share one store
and each sees every write the others had acknowledged. ``for_tenant(name)`` gives the same API
bound to one tenant namespace; the manager's own methods act on tenant ``"default"``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

from deep_tree_echo._events import EventSink
from deep_tree_echo.aar_core.errors import InvalidMemoryError, NotInitializedError, StoreError
from deep_tree_echo.aar_core.ids import MEMORY_ID, is_unicode_text, new_memory_id
from deep_tree_echo.aar_core.memory._bm25 import tokenize
from deep_tree_echo.aar_core.memory._inmemory import InMemoryStore
from deep_tree_echo.aar_core.memory.hlc import HybridLogicalClock
from deep_tree_echo.aar_core.memory.ranking import RankWeights, SearchResult
from deep_tree_echo.aar_core.memory.record import MemoryRecord
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT, MemoryStore
from deep_tree_echo.aar_core.memory.tenancy import TenantMemory, validate_tenant

logger = logging.getLogger(__name__)

#: Event emitted on the bus after every acknowledged change.
MEMORY_UPDATE_EVENT = "memory.update"
#: Key of a ``memory.update`` payload holding the event id the store logged the change under
#: in the write's own transaction (only with a store that :attr:`~MemoryStore.logs_changes`;
#: underscored like the NATS bridge's origin key: bookkeeping, not part of the event).
LOGGED_EVENT_ID = "_logged_event_id"
MAX_ID_LENGTH = MEMORY_ID.max_length
#: Ids handed to ``store.purge`` per call, so one purge never holds the writer for long.
PURGE_BATCH = 1000
#: The most results one search asks the store for while making up for excluded memories.
MAX_SEARCH_FETCH = 5000
_MISSING = object()

Action = Literal["created", "updated", "deleted"]
#: Attempts of a local write that keeps meeting a newer version written by another process.
WRITE_ATTEMPTS = 16
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
    if not is_unicode_text(memory_id):
        raise InvalidMemoryError("memory id is not valid unicode text")
    if not MEMORY_ID.matches(memory_id):  # the one rule the OpenAPI schema states too
        raise InvalidMemoryError(
            "memory id must not contain '/' or control characters", memory_id=repr(memory_id)
        )
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
    Methods act on tenant ``"default"``; :meth:`for_tenant` binds them to another tenant.
    """

    def __init__(
        self,
        store: MemoryStore | None = None,
        *,
        node_id: str | None = None,
        clock: HybridLogicalClock | None = None,
        event_bus: EventSink | None = None,
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
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._closed = False
        self._views: dict[str, TenantMemory] = {}
        self._stats: dict[str, int] = dict.fromkeys(
            (
                "stores", "updates", "deletes", "retrieves", "searches", "errors",
                "remote_applied", "purged",
            ),
            0,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the store (creating or migrating its schema). Idempotent."""
        if self._opened:
            return
        async with self._open_lock:
            if self._opened:
                return
            if self._closed:
                raise NotInitializedError("MemoryManager is closed")
            try:
                await self.store.open()
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(f"cannot open the {self.store.kind} store: {exc}") from exc
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

    def for_tenant(self, tenant: str) -> TenantMemory:
        """The manager's API bound to ``tenant`` (validated: :class:`InvalidTenantError`)."""
        view = self._views.get(tenant)
        if view is None:
            view = TenantMemory(self, validate_tenant(tenant))
            if len(self._views) < 1024:  # a bounded cache of views, not a registry
                self._views[tenant] = view
        return view

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

    # -- store calls -----------------------------------------------------------------------

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

    async def _get(self, tenant: str, memory_id: str) -> MemoryRecord | None:
        return await self._store_call("read", self.store.get(memory_id, tenant=tenant))

    async def _put(
        self, tenant: str, record: MemoryRecord, change: dict[str, Any] | None = None
    ) -> bool:
        """Write ``record`` if newer; ``change`` is its ``memory.update`` payload (None: the
        write announces nothing), logged with the write when the store can
        (:data:`LOGGED_EVENT_ID` is then set in it)."""
        store = self.store
        if change is not None and store.logs_changes:
            event_id = await self._store_call(
                "write", store.put_logged(record, change, tenant=tenant)
            )
            if event_id is None:
                return False
            change[LOGGED_EVENT_ID] = event_id
            return True
        return await self._store_call("write", store.put_if_newer(record, tenant=tenant))

    @staticmethod
    def _change(
        tenant: str, memory_id: str, action: Action, data: dict[str, Any], version: str
    ) -> dict[str, Any]:
        """The ``memory.update`` payload of a write."""
        return {
            "memory_id": memory_id,
            "action": action,
            "session_id": _session_of(data),
            "version": version,
            "tenant": tenant,
        }

    async def _emit(self, change: dict[str, Any]) -> None:
        if self.event_bus is None:
            return
        try:
            await self.event_bus.emit(MEMORY_UPDATE_EVENT, change)
        except Exception:  # an observer must never fail a write that is already durable
            logger.warning(
                "emitting %s for %r failed", MEMORY_UPDATE_EVENT, change["memory_id"],
                exc_info=True,
            )

    # -- writes (tenant-bound; the public methods below and TenantMemory call these) -----------

    def _validated(
        self, memory_id: str, data: dict[str, Any], ttl: float | None
    ) -> tuple[str, float | None]:
        """``data`` as JSON text and the TTL in seconds, or :class:`InvalidMemoryError`."""
        try:
            validate_memory_id(memory_id)
            return self._validate_data(data), self._validate_ttl(ttl)
        except InvalidMemoryError:
            self._stats["errors"] += 1
            raise

    def _record(
        self, memory_id: str, text: str, seconds: float | None, current: MemoryRecord | None,
        now: float,
    ) -> MemoryRecord:
        """The record that replaces ``current`` (a live memory, or None) with ``text``."""
        return MemoryRecord(
            id=memory_id,
            data=json.loads(text),
            version=self.clock.now(),
            created_at=current.created_at if current else now,
            updated_at=now,
            access_count=current.access_count if current else 0,
            last_access=current.last_access if current else None,
            expires_at=now + seconds if seconds is not None else None,
        )

    async def _upsert(
        self, tenant: str, memory_id: str, data: dict[str, Any], ttl: float | None
    ) -> tuple[MemoryRecord, bool]:
        text, seconds = self._validated(memory_id, data, ttl)
        await self._ensure_open()
        for _ in range(WRITE_ATTEMPTS):
            now = self.wall_clock()
            stored = await self._get(tenant, memory_id)
            if stored is not None:  # our stamp must beat whatever any process wrote
                self.clock.update(stored.version)
            current = stored if stored is not None and stored.is_live(now) else None
            record = self._record(memory_id, text, seconds, current, now)
            change = self._change(tenant, memory_id, "updated" if current else "created",
                                  record.data, record.version.to_str())
            if await self._put(tenant, record, change):
                break
        else:
            self._stats["errors"] += 1
            raise StoreError(f"write of {memory_id!r} kept losing to newer concurrent writes")
        return await self._written(record, text, change)

    async def _add(self, tenant: str, data: dict[str, Any], ttl: float | None) -> MemoryRecord:
        """Store ``data`` under a fresh id (:func:`new_memory_id`): no memory can hold it yet,
        so unlike :meth:`_upsert` nothing is read first (one store call per memory, not two)."""
        memory_id = new_memory_id()
        text, seconds = self._validated(memory_id, data, ttl)
        await self._ensure_open()
        record = self._record(memory_id, text, seconds, None, self.wall_clock())
        change = self._change(tenant, memory_id, "created", record.data,
                              record.version.to_str())
        if not await self._put(tenant, record, change):  # only a newer record under 74 bits
            self._stats["errors"] += 1
            raise StoreError(f"new memory id {memory_id!r} is already taken")
        stored, _ = await self._written(record, text, change)
        return stored

    async def _written(
        self, record: MemoryRecord, text: str, change: dict[str, Any]
    ) -> tuple[MemoryRecord, bool]:
        """Count and announce an acknowledged write (``change`` is its ``memory.update``
        payload); the record as returned to the caller, and whether it was created."""
        created = change["action"] == "created"
        self._stats["stores" if created else "updates"] += 1
        await self._emit(change)
        return dataclasses.replace(record, data=json.loads(text)), created

    async def _delete(self, tenant: str, memory_id: str) -> bool:
        validate_memory_id(memory_id)
        await self._ensure_open()
        for _ in range(WRITE_ATTEMPTS):
            now = self.wall_clock()
            current = await self._get(tenant, memory_id)
            if current is None or current.deleted:
                return False
            self.clock.update(current.version)
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
            change = (self._change(tenant, memory_id, "deleted", current.data,
                                   tombstone.version.to_str()) if was_live else None)
            if await self._put(tenant, tombstone, change):
                break
        else:
            self._stats["errors"] += 1
            raise StoreError(f"delete of {memory_id!r} kept losing to newer concurrent writes")
        if change is not None:  # the memory was live: its deletion is news
            self._stats["deletes"] += 1
            await self._emit(change)
        return was_live

    async def _apply_remote(self, tenant: str, record: MemoryRecord) -> bool:
        validate_memory_id(record.id)
        if not isinstance(record.data, dict):
            raise InvalidMemoryError("replicated record data must be a dict")
        await self._ensure_open()
        self.clock.update(record.version)
        now = self.wall_clock()
        before = await self._get(tenant, record.id)
        was_live = before if before is not None and before.is_live(now) else None
        incoming = dataclasses.replace(record, data=json.loads(self._validate_data(record.data)))
        change: dict[str, Any] | None = None
        if incoming.deleted:  # a tombstone is news only when it deletes a live memory
            if was_live:
                change = self._change(tenant, record.id, "deleted", was_live.data,
                                      incoming.version.to_str())
        else:
            change = self._change(tenant, record.id, "updated" if was_live else "created",
                                  incoming.data, incoming.version.to_str())
        applied = await self._put(tenant, incoming, change)
        if applied:
            self._stats["remote_applied"] += 1
            if change is not None:
                await self._emit(change)
        return applied

    # -- reads (tenant-bound) --------------------------------------------------------------

    async def _retrieve(self, tenant: str, memory_id: str) -> dict[str, Any] | None:
        if not isinstance(memory_id, str):
            return None
        await self._ensure_open()
        self._stats["retrieves"] += 1
        now = self.wall_clock()
        record = await self._get(tenant, memory_id)
        if record is None or not record.is_live(now):
            return None
        try:
            await self.store.record_access(memory_id, now, tenant=tenant)
        except Exception:  # access statistics are best effort, the read itself succeeded
            self._stats["errors"] += 1
            logger.warning("recording access to %r failed", memory_id, exc_info=True)
        return _json_copy(record.data)

    async def _get_record(
        self, tenant: str, memory_id: str, include_deleted: bool
    ) -> MemoryRecord | None:
        await self._ensure_open()
        record = await self._get(tenant, memory_id)
        if record is None or not (include_deleted or record.is_live(self.wall_clock())):
            return None
        return dataclasses.replace(record, data=_json_copy(record.data))

    async def _records(self, tenant: str, include_deleted: bool) -> AsyncIterator[MemoryRecord]:
        await self._ensure_open()
        async for record in self.store.scan(tenant=tenant):
            if include_deleted or record.is_live(self.wall_clock()):
                yield dataclasses.replace(record, data=_json_copy(record.data))

    async def _all(self, tenant: str) -> dict[str, dict[str, Any]]:
        return {r.id: r.data async for r in self._records(tenant, False)}

    async def _count(self, tenant: str) -> int:
        await self._ensure_open()
        return await self._store_call(
            "count", self.store.count(tenant=tenant, live_at=self.wall_clock())
        )

    async def _search(
        self,
        tenant: str,
        query: str,
        limit: int,
        filters: dict[str, Any],
        exclude: dict[str, Any] | None = None,
    ) -> list[SearchResult]:
        await self._ensure_open()
        self._stats["searches"] += 1
        if limit <= 0:
            return []
        terms = tokenize(query) if isinstance(query, str) else []
        dropped = list((exclude or {}).items())
        # excluded memories are rare (stored questions): ask for a few more, and more again
        # only when too many of them were dropped
        fetch = limit * 2 if dropped else limit
        while True:
            results = await self._store_call(
                "search",
                self.store.search(
                    terms,
                    limit=fetch,
                    weights=self.weights,
                    now=self.wall_clock(),
                    filters=filters,
                    tenant=tenant,
                ),
            )
            if not dropped:
                return results
            kept = [r for r in results
                    if not any(r.data.get(k, _MISSING) == v for k, v in dropped)]
            if len(kept) >= limit or len(results) < fetch or fetch >= MAX_SEARCH_FETCH:
                return kept[:limit]
            fetch *= 4

    # -- the public API on tenant "default" ------------------------------------------------

    async def upsert(
        self, memory_id: str, data: dict[str, Any], *, ttl: float | None = None
    ) -> tuple[MemoryRecord, bool]:
        """Create or replace a memory; returns the stored record and whether it was created.

        An existing live memory keeps its ``created_at`` and access statistics.
        """
        return await self._upsert(DEFAULT_TENANT, memory_id, data, ttl)

    async def store_memory(
        self, memory_id: str, data: dict[str, Any], *, ttl: float | None = None
    ) -> MemoryRecord:
        """Store ``data`` under ``memory_id`` (upsert); ``ttl`` seconds until it expires."""
        record, _ = await self._upsert(DEFAULT_TENANT, memory_id, data, ttl)
        return record

    async def add_memory(self, data: dict[str, Any], *, ttl: float | None = None) -> MemoryRecord:
        """Store ``data`` as a new memory under a fresh id (``record.id``, ``mem-<hex>``): one
        store call, where :meth:`store_memory` first reads what the id holds."""
        return await self._add(DEFAULT_TENANT, data, ttl)

    async def update_memory(self, memory_id: str, data: dict[str, Any]) -> MemoryRecord:
        """Replace the data of ``memory_id`` (creating it when absent)."""
        record, _ = await self._upsert(DEFAULT_TENANT, memory_id, data, None)
        return record

    async def delete_memory(self, memory_id: str) -> bool:
        """Delete by writing a newer tombstone; True when a live memory was deleted."""
        return await self._delete(DEFAULT_TENANT, memory_id)

    async def apply_remote(self, record: MemoryRecord) -> bool:
        """Apply a record replicated from another node (last writer wins on its version).

        Returns True when it was newer than what the store holds and so was applied.
        """
        return await self._apply_remote(DEFAULT_TENANT, record)

    async def retrieve_memory(self, memory_id: str) -> dict[str, Any] | None:
        """A copy of the memory's data, or None when absent, deleted or expired.

        Counts as an access: bumps ``access_count`` and ``last_access`` (used by recency).
        """
        return await self._retrieve(DEFAULT_TENANT, memory_id)

    async def get_record(
        self, memory_id: str, *, include_deleted: bool = False
    ) -> MemoryRecord | None:
        """The live record with its metadata (no access bump), or None.

        With ``include_deleted``, whatever record the store holds for the id, tombstones and
        expired records too (what replication compares versions against); None only for an id
        it never saw (or purged).
        """
        return await self._get_record(DEFAULT_TENANT, memory_id, include_deleted)

    async def get_all_memories(self) -> dict[str, dict[str, Any]]:
        """Copies of the data of every live memory, keyed by id."""
        return await self._all(DEFAULT_TENANT)

    def records(self, *, include_deleted: bool = False) -> AsyncIterator[MemoryRecord]:
        """Copies of the records, sorted by id: the live ones, or with ``include_deleted``
        every record the store holds (tombstones and expired ones too)."""
        return self._records(DEFAULT_TENANT, include_deleted)

    async def count(self) -> int:
        """Number of live memories."""
        return await self._count(DEFAULT_TENANT)

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
        return await self._search(DEFAULT_TENANT, query, limit, filters, exclude)

    # -- maintenance (every tenant) --------------------------------------------------------

    async def purge(self, older_than: float) -> int:
        """Physically remove tombstones and expired records older than ``older_than`` seconds,
        in every tenant.

        A tombstone goes once its ``updated_at`` is more than ``older_than`` seconds ago, an
        expired record once its ``expires_at`` is; live records are never touched. Tombstones
        must outlive replication lag (a purged id forgets its delete, so a stale replica could
        bring an older version back), hence ``settings.tombstone_ttl``. The store removes only
        the exact versions chosen, so a record rewritten meanwhile survives.
        """
        if isinstance(older_than, bool) or not older_than >= 0 or math.isinf(older_than):
            raise ValueError(f"older_than must be a finite number of seconds >= 0: {older_than!r}")
        await self._ensure_open()
        cutoff = self.wall_clock() - older_than
        removed = 0
        for tenant in await self._store_call("list tenants", self.store.tenants()):
            while True:
                batch = await self._store_call(
                    "purge scan",
                    self.store.purge_candidates(cutoff, tenant=tenant, limit=PURGE_BATCH),
                )
                if not batch:
                    break
                gone = await self._store_call("purge", self.store.purge(batch, tenant=tenant))
                removed += len(gone)
                if len(gone) < len(batch) or len(batch) < PURGE_BATCH:
                    break  # what is left was rewritten meanwhile (or cannot be removed)
        self._stats["purged"] += removed
        if removed:
            logger.info("purged %d tombstoned or expired memories", removed)
        return removed

    @property
    def stats(self) -> dict[str, int]:
        """Operation counters (a copy): stores, updates, deletes, retrieves, searches, errors."""
        return dict(self._stats)

    def __repr__(self) -> str:
        return f"MemoryManager(store={self.store!r}, node_id={self.node_id!r})"
