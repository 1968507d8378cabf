"""The seed's Memory Synchronization pattern over versioned records.

Policies: ``latest`` (last writer wins on the HLC version; tombstones propagate),
``merge`` (the seed's merge: highest importance, merged content, a ``last_sync`` stamp) and
``conflict_resolution`` (records that differ are logged and settled by a resolver).
Synchronising twice changes nothing the second time: results are written once and copied
with their version, so every manager ends with the same record.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deep_tree_echo.aar_core.memory import MemoryManager, MemoryRecord

SYNC_POLICIES = ("merge", "latest", "conflict_resolution")

Resolver = Callable[[str, list[MemoryRecord]], dict[str, Any]]


@dataclass(slots=True)
class SyncReport:
    """What one synchronisation did."""

    policy: str
    examined: int = 0
    updated: int = 0
    conflicts: list[str] = field(default_factory=list)


def default_resolver(memory_id: str, versions: list[MemoryRecord]) -> dict[str, Any]:
    """Keep the most important version; the newest breaks ties."""
    best = max(versions, key=lambda r: (float(r.data.get("importance", 0) or 0), r.version))
    return dict(best.data)


class MemorySynchronization:
    """Bring several MemoryManagers to the same state under a sync policy."""

    def __init__(
        self,
        memory_managers: Sequence[MemoryManager],
        *,
        resolver: Resolver = default_resolver,
        max_conflict_log: int = 1000,
    ) -> None:
        self.managers = list(memory_managers)
        self.sync_lock = asyncio.Lock()
        self.last_sync: dict[str, str] = {}
        self.resolver = resolver
        self.conflict_log: deque[dict[str, Any]] = deque(maxlen=max_conflict_log)

    async def synchronize_memories(self, sync_policy: str = "merge") -> SyncReport:
        """Synchronise all managers; an unknown policy raises ``ValueError``."""
        if sync_policy not in SYNC_POLICIES:
            raise ValueError(
                f"unknown sync policy {sync_policy!r}; expected one of {', '.join(SYNC_POLICIES)}"
            )
        async with self.sync_lock:
            if sync_policy == "merge":
                report = await self._merge_synchronization()
            elif sync_policy == "latest":
                report = await self._latest_wins_synchronization()
            else:
                report = await self._conflict_resolution_synchronization()
            self.last_sync[sync_policy] = datetime.now(UTC).isoformat()
            return report

    # collection --------------------------------------------------------------------------
    async def _collect(self) -> dict[str, list[tuple[MemoryManager, MemoryRecord]]]:
        """Every record (tombstones too) by id, with the manager holding it."""
        by_id: dict[str, list[tuple[MemoryManager, MemoryRecord]]] = {}
        for manager in self.managers:
            async for record in manager.records(include_deleted=True):
                by_id.setdefault(record.id, []).append((manager, record))
        return by_id

    async def _copy_everywhere(self, record: MemoryRecord) -> int:
        """Apply ``record`` to every manager that holds an older version; count the updates."""
        updated = 0
        for manager in self.managers:
            if await manager.apply_remote(record):
                updated += 1
        return updated

    async def _write_once(
        self, memory_id: str, data: dict[str, Any], seen: list[MemoryRecord]
    ) -> int:
        """Write the settled data once, newer than every version seen, then copy it."""
        writer = self.managers[0]
        writer.clock.update(max(r.version for r in seen))
        record = await writer.update_memory(memory_id, data)
        return 1 + await self._copy_everywhere(record)

    # policies ----------------------------------------------------------------------------
    async def _latest_wins_synchronization(self) -> SyncReport:
        report = SyncReport("latest")
        for _memory_id, held in (await self._collect()).items():
            report.examined += 1
            newest = max((r for _, r in held), key=lambda r: r.version)
            report.updated += await self._copy_everywhere(newest)
        return report

    async def _merge_synchronization(self) -> SyncReport:
        report = SyncReport("merge")
        for memory_id, held in (await self._collect()).items():
            report.examined += 1
            newest = max((r for _, r in held), key=lambda r: r.version)
            versions = {r.version for _, r in held}
            if newest.deleted or (len(versions) == 1 and len(held) == len(self.managers)):
                report.updated += await self._copy_everywhere(newest)
                continue
            live = sorted(((m, r) for m, r in held if not r.deleted), key=lambda p: p[1].version,
                          reverse=True)
            merged = await self._merge_memory_versions([(m, dict(r.data)) for m, r in live])
            report.updated += await self._write_once(memory_id, merged, [r for _, r in held])
        return report

    async def _conflict_resolution_synchronization(self) -> SyncReport:
        report = SyncReport("conflict_resolution")
        for memory_id, held in (await self._collect()).items():
            report.examined += 1
            live = [r for _, r in held if not r.deleted]
            newest = max((r for _, r in held), key=lambda r: r.version)
            distinct = {repr(sorted(r.data.items(), key=lambda kv: kv[0])) for r in live}
            if newest.deleted or len(distinct) <= 1:
                report.updated += await self._copy_everywhere(newest)
                continue
            chosen = self.resolver(memory_id, live)
            report.conflicts.append(memory_id)
            self.conflict_log.append({
                "memory_id": memory_id,
                "versions": [r.version.to_str() for r in live],
                "chosen": chosen,
                "at": datetime.now(UTC).isoformat(),
            })
            report.updated += await self._write_once(memory_id, chosen, [r for _, r in held])
        return report

    # merging (the seed's hooks) ----------------------------------------------------------
    async def _merge_memory_versions(
        self, versions: list[tuple[MemoryManager, dict[str, Any]]]
    ) -> dict[str, Any]:
        """Merge versions, newest first: max importance, merged content, a sync stamp."""
        if len(versions) == 1:
            return versions[0][1]
        base = dict(versions[0][1])
        for _, memory in versions[1:]:
            base["importance"] = max(base.get("importance", 0) or 0,
                                     memory.get("importance", 0) or 0)
            if "content" in memory:
                base["content"] = self._merge_content(base.get("content", {}), memory["content"])
        base["last_sync"] = datetime.now(UTC).isoformat()
        return base

    def _merge_content(self, newer: Any, older: Any) -> Any:
        """Dicts merge key by key (newer wins), lists union in order, otherwise newer wins."""
        if isinstance(newer, dict) and isinstance(older, dict):
            merged = dict(older)
            for key, value in newer.items():
                merged[key] = self._merge_content(value, older[key]) if key in older else value
            return merged
        if isinstance(newer, list) and isinstance(older, list):
            out = list(newer)
            out.extend(item for item in older if item not in newer)
            return out
        return newer if newer not in (None, "", {}) else older
