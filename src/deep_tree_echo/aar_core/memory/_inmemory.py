"""A dict-backed :class:`MemoryStore`: fast, process-local, gone on exit (library default, tests).

Each tenant has its own records, incremental BM25 index (``_bm25.BM25Index``), importance map
and expiry heap. Writes change the records and the index together with no await in between,
so a search never sees one without the other.

Records are kept as rows the garbage collector does not track (see :data:`Row`): plain tuples
of strings and numbers, the data as JSON text, like the SQL stores keep it. A served store of
many memories then adds nothing to what each full collection scans, so collection pauses do
not grow with the store (``bench/gc_heap.py`` measures both).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

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

#: A stored record: an exact tuple of strings and numbers, ``(data JSON, nested keys,
#: (wall_ms, logical, node_id), created_at, updated_at, access_count, last_access,
#: expires_at, deleted, extra JSON or None)``. CPython stops tracking such a tuple at its first
#: collection; a ``NamedTuple``, a slotted class or a tuple holding any dict stays tracked.
Row = tuple[
    str, tuple[str, ...], tuple[int, int, str],
    float, float, int, float | None, float | None, bool, str | None,
]  # fmt: skip
_DATA: Final = 0
_NESTED: Final = 1  # the data's top-level keys whose values are not in its ``Fields``
_VERSION: Final = 2
_CREATED: Final = 3
_UPDATED: Final = 4
_COUNT: Final = 5
_LAST: Final = 6
_EXPIRES: Final = 7
_DELETED: Final = 8
_EXTRA: Final = 9
#: A live record's top-level numbers, booleans, nulls and short strings, for search filters
#: without parsing its JSON: a dict of such values only is untracked too (but makes any tuple
#: holding it tracked, hence its own map).
Fields = dict[str, Any]
#: Longer top-level strings (typically ``content``) are filtered from the JSON, not kept twice.
_FIELD_CHARS = 64
#: Exact types kept as fields (subclasses, such as enums, are read from the JSON).
_ATOMIC: Final = frozenset({bool, int, float, type(None)})


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _version_key(v: Version) -> tuple[int, int, str]:
    """``v`` as a plain tuple: same order as :class:`Version`, untracked by the collector."""
    return (v.wall_ms, v.logical, v.node_id)


def _split(data: dict[str, Any]) -> tuple[Fields, tuple[str, ...]]:
    """``data``'s atomic top-level values, and the names of its other top-level keys."""
    fields: Fields = {}
    nested: list[str] = []
    for key, value in data.items():
        kind = type(value)
        if kind in _ATOMIC or (kind is str and len(value) <= _FIELD_CHARS):
            fields[key] = value
        else:
            nested.append(key)
    return fields, tuple(nested)


def _row(r: MemoryRecord, nested: tuple[str, ...]) -> Row:
    """The untracked stored form of ``r`` (``data`` and ``extra`` copied as JSON)."""
    return (
        _dumps(r.data), nested, _version_key(r.version), r.created_at, r.updated_at,
        r.access_count, r.last_access, r.expires_at, r.deleted,
        _dumps(r.extra) if r.extra else None,
    )  # fmt: skip


def _record(memory_id: str, row: Row) -> MemoryRecord:
    """A fresh record from ``row``: callers own it, data included."""
    extra = row[_EXTRA]
    return MemoryRecord(
        memory_id,
        json.loads(row[_DATA]),
        Version(*row[_VERSION]),
        row[_CREATED],
        row[_UPDATED],
        row[_COUNT],
        row[_LAST],
        row[_EXPIRES],
        row[_DELETED],
        json.loads(extra) if extra is not None else {},
    )


def _field(fields: Fields, row: Row, key: str) -> Any:
    """The data's top-level ``key`` (``_MISSING`` when absent), read from JSON only if nested."""
    value = fields.get(key, _MISSING)
    if value is _MISSING and key in row[_NESTED]:
        return json.loads(row[_DATA])[key]
    return value


def _is_live(row: Row, now: float) -> bool:
    expires = row[_EXPIRES]
    return not row[_DELETED] and (expires is None or expires > now)


class _Tenant:
    """One tenant's records and the search index over exactly its live ones."""

    __slots__ = ("expiry", "fields", "importance", "index", "records")

    def __init__(self) -> None:
        self.records: dict[str, Row] = {}  # tombstones too
        self.index = BM25Index()  # the live (not deleted, not known expired) records
        self.importance: dict[str, float] = {}
        self.fields: dict[str, Fields] = {}  # of the indexed records
        self.expiry: list[tuple[float, str, tuple[int, int, str]]] = []

    def apply(self, record: MemoryRecord) -> None:
        fields, nested = _split(record.data)
        row = _row(record, nested)
        self.records[record.id] = row
        if not record.deleted:
            self.index.add(record.id, document_text(record.data))
            self.importance[record.id] = normalise_importance(record.data.get("importance"))
            self.fields[record.id] = fields
            if record.expires_at is not None:
                heapq.heappush(self.expiry, (record.expires_at, record.id, row[_VERSION]))
        else:
            self.unindex(record.id)

    def unindex(self, memory_id: str) -> None:
        self.index.remove(memory_id)
        self.importance.pop(memory_id, None)
        self.fields.pop(memory_id, None)

    def drop_expired(self, now: float) -> None:
        heap = self.expiry
        while heap and heap[0][0] <= now:
            _, memory_id, version = heapq.heappop(heap)
            row = self.records.get(memory_id)
            if row is not None and row[_VERSION] == version:
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
        row = t.records.get(memory_id) if t is not None else None
        return _record(memory_id, row) if row is not None else None

    async def put_if_newer(self, record: MemoryRecord, *, tenant: str = DEFAULT_TENANT) -> bool:
        t = self._tenant(tenant)
        current = t.records.get(record.id)
        if current is not None and current[_VERSION] >= _version_key(record.version):
            return False
        t.apply(record)
        return True

    async def record_access(
        self, memory_id: str, at: float, count: int = 1, *, tenant: str = DEFAULT_TENANT
    ) -> None:
        t = self._tenants.get(tenant)
        row = t.records.get(memory_id) if t is not None else None
        if t is None or row is None:
            return
        last = row[_LAST]
        if last is None or at > last:
            last = at
        t.records[memory_id] = (*row[:_COUNT], row[_COUNT] + count, last, *row[_EXPIRES:])

    async def scan(self, *, tenant: str = DEFAULT_TENANT) -> AsyncIterator[MemoryRecord]:
        t = self._tenants.get(tenant)
        if t is None:
            return
        for memory_id in sorted(t.records):
            row = t.records.get(memory_id)  # may be purged while we yield
            if row is not None:
                yield _record(memory_id, row)

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
        records, fields = t.records, t.fields

        wanted = list((filters or {}).items())
        if len(wanted) == 1:  # the common case (a session): one lookup, no generator
            [(key, value)] = wanted

            def keep(memory_id: str) -> bool:
                return bool(_field(fields[memory_id], records[memory_id], key) == value)
        else:

            def keep(memory_id: str) -> bool:
                own, row = fields[memory_id], records[memory_id]
                return all(_field(own, row, k) == v for k, v in wanted)

        scored: list[tuple[str, float]]
        if terms:
            scored = t.index.top(terms, candidate_pool(limit), keep if filters else None)
        else:
            ids = t.importance.keys()
            scored = [(d, 0.0) for d in ids if keep(d)] if filters else [(d, 0.0) for d in ids]
        candidates = []
        for memory_id, bm25 in scored:
            row = records[memory_id]
            if _is_live(row, now):
                touched = row[_LAST] or row[_UPDATED]
                imp = t.importance[memory_id]
                # ``fields`` stands in for the data, read from JSON for the results only
                candidates.append(Candidate(memory_id, fields[memory_id], bm25, touched, imp))
        results = rank(candidates, weights=weights, now=now, limit=limit)
        for i, hit in enumerate(results):  # callers own what they get
            data = json.loads(records[hit.id][_DATA])
            results[i] = SearchResult(
                hit.id, data, hit.score, hit.relevance, hit.recency, hit.importance
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
            if (row := records.get(rid)) is not None and row[_VERSION] == _version_key(version)
        ]  # fmt: skip
        for rid in removed:  # no await between the check and the removal: atomic
            del records[rid]
            t.unindex(rid)
        if not records:
            del self._tenants[tenant]
        return removed
