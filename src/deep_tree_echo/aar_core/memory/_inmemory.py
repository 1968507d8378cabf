"""A dict-backed :class:`MemoryStore`: fast, process-local, gone on exit (library default, tests).

Each tenant has its own records, incremental BM25 index (``_bm25.BM25Index``), importance map
and expiry heap. Writes change the records and the index together with no await in between,
so a search never sees one without the other.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from deep_tree_echo.aar_core.memory._bm25 import BM25Index, document_text
from deep_tree_echo.aar_core.memory.ranking import (
    Candidate,
    RankWeights,
    SearchResult,
    candidate_pool,
    normalise_importance,
    rank,
)
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT, MemoryStore

_MISSING = object()


def _clone(r: MemoryRecord) -> MemoryRecord:
    """A shallow copy (``data`` shared: the manager never mutates it); faster than replace()."""
    return MemoryRecord(
        r.id,
        r.data,
        r.version,
        r.created_at,
        r.updated_at,
        r.access_count,
        r.last_access,
        r.expires_at,
        r.deleted,
        r.extra,
    )


def _json_copy(data: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(data))
    return copied


class _Tenant:
    """One tenant's records and the search index over exactly its live ones."""

    __slots__ = ("expiry", "importance", "index", "records")

    def __init__(self) -> None:
        self.records: dict[str, MemoryRecord] = {}  # tombstones too
        self.index = BM25Index()  # the live (not deleted, not known expired) records
        self.importance: dict[str, float] = {}
        self.expiry: list[tuple[float, str, Version]] = []

    def apply(self, record: MemoryRecord) -> None:
        self.records[record.id] = record
        if not record.deleted:
            self.index.add(record.id, document_text(record.data))
            self.importance[record.id] = normalise_importance(record.data.get("importance"))
            if record.expires_at is not None:
                heapq.heappush(self.expiry, (record.expires_at, record.id, record.version))
        else:
            self.unindex(record.id)

    def unindex(self, memory_id: str) -> None:
        self.index.remove(memory_id)
        self.importance.pop(memory_id, None)

    def drop_expired(self, now: float) -> None:
        heap = self.expiry
        while heap and heap[0][0] <= now:
            _, memory_id, version = heapq.heappop(heap)
            record = self.records.get(memory_id)
            if record is not None and record.version == version:
                self.unindex(memory_id)


class InMemoryStore(MemoryStore):
    """Keeps records in dicts, one per tenant. Writes are atomic (no await inside a write)."""

    kind = "memory"

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}

    def _tenant(self, tenant: str) -> _Tenant:
        t = self._tenants.get(tenant)
        if t is None:
            t = self._tenants[tenant] = _Tenant()
        return t

    async def get(self, memory_id: str, *, tenant: str = DEFAULT_TENANT) -> MemoryRecord | None:
        t = self._tenants.get(tenant)
        rec = t.records.get(memory_id) if t is not None else None
        # A shallow copy so callers cannot change our bookkeeping; ``data`` is shared and
        # treated as immutable by the manager.
        return _clone(rec) if rec is not None else None

    async def put_if_newer(self, record: MemoryRecord, *, tenant: str = DEFAULT_TENANT) -> bool:
        t = self._tenant(tenant)
        current = t.records.get(record.id)
        if current is not None and current.version >= record.version:
            return False
        t.apply(_clone(record))
        return True

    async def record_access(
        self, memory_id: str, at: float, count: int = 1, *, tenant: str = DEFAULT_TENANT
    ) -> None:
        t = self._tenants.get(tenant)
        rec = t.records.get(memory_id) if t is not None else None
        if rec is None:
            return
        rec.access_count += count
        if rec.last_access is None or at > rec.last_access:
            rec.last_access = at

    async def scan(self, *, tenant: str = DEFAULT_TENANT) -> AsyncIterator[MemoryRecord]:
        t = self._tenants.get(tenant)
        if t is None:
            return
        for memory_id in sorted(t.records):
            rec = t.records.get(memory_id)  # may be purged while we yield
            if rec is not None:
                yield _clone(rec)

    async def count(self, *, tenant: str = DEFAULT_TENANT, live_at: float | None = None) -> int:
        t = self._tenants.get(tenant)
        if t is None:
            return 0
        if live_at is None:
            return len(t.records)
        t.drop_expired(live_at)
        return len(t.index)

    async def tenants(self) -> list[str]:
        return sorted(name for name, t in self._tenants.items() if t.records)

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
        t = self._tenants.get(tenant)
        if t is None or limit <= 0:
            return []
        t.drop_expired(now)
        records = t.records

        wanted = list((filters or {}).items())
        if len(wanted) == 1:  # the common case (a session): one lookup, no generator
            [(key, value)] = wanted

            def keep(memory_id: str) -> bool:
                return bool(records[memory_id].data.get(key, _MISSING) == value)
        else:

            def keep(memory_id: str) -> bool:
                data = records[memory_id].data
                return all(data.get(k, _MISSING) == v for k, v in wanted)

        scored: list[tuple[str, float]]
        if terms:
            scored = t.index.top(terms, candidate_pool(limit), keep if filters else None)
        else:
            ids = t.importance.keys()
            scored = [(d, 0.0) for d in ids if keep(d)] if filters else [(d, 0.0) for d in ids]
        candidates = []
        for memory_id, bm25 in scored:
            record = records[memory_id]
            if record.is_live(now):
                touched = record.last_access or record.updated_at
                imp = t.importance[memory_id]
                candidates.append(Candidate(memory_id, record.data, bm25, touched, imp))
        results = rank(candidates, weights=weights, now=now, limit=limit)
        for i, hit in enumerate(results):  # callers own what they get
            results[i] = SearchResult(
                hit.id, _json_copy(hit.data), hit.score, hit.relevance, hit.recency, hit.importance
            )
        return results

    async def purge(
        self, expected: Mapping[str, Version], *, tenant: str = DEFAULT_TENANT
    ) -> list[str]:
        t = self._tenants.get(tenant)
        if t is None:
            return []
        records = t.records
        removed = [
            rid for rid, version in expected.items()
            if (rec := records.get(rid)) is not None and rec.version == version
        ]  # fmt: skip
        for rid in removed:  # no await between the check and the removal: atomic
            del records[rid]
            t.unindex(rid)
        if not records:
            del self._tenants[tenant]
        return removed
