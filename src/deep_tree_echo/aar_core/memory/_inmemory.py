"""A dict-backed :class:`MemoryStore`: fast, process-local, gone on exit (tests, caches)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.store import MemoryStore


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


class InMemoryStore(MemoryStore):
    """Keeps records in a dict. Writes are applied atomically (no await inside a write)."""

    kind = "memory"

    def __init__(self) -> None:
        self._records: dict[str, MemoryRecord] = {}

    async def get(self, memory_id: str) -> MemoryRecord | None:
        rec = self._records.get(memory_id)
        # A shallow copy so callers cannot change our bookkeeping; ``data`` is shared and
        # treated as immutable by the manager.
        return _clone(rec) if rec is not None else None

    async def put_if_newer(self, record: MemoryRecord) -> bool:
        current = self._records.get(record.id)
        if current is not None and current.version >= record.version:
            return False
        self._records[record.id] = _clone(record)
        return True

    async def record_access(self, memory_id: str, at: float, count: int = 1) -> None:
        rec = self._records.get(memory_id)
        if rec is None:
            return
        rec.access_count += count
        if rec.last_access is None or at > rec.last_access:
            rec.last_access = at

    async def scan(self) -> AsyncIterator[MemoryRecord]:
        for rec in list(self._records.values()):
            yield _clone(rec)

    async def count(self) -> int:
        return len(self._records)

    async def purge(self, expected: Mapping[str, Version]) -> list[str]:
        records = self._records
        removed = [
            rid for rid, version in expected.items()
            if (rec := records.get(rid)) is not None and rec.version == version
        ]  # fmt: skip
        for rid in removed:  # no await between the check and the removal: atomic
            del records[rid]
        return removed
