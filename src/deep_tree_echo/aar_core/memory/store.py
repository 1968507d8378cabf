"""The interface every memory store implements (in-memory, SQLite, later Redis).

Stores are deliberately dumb: they persist whole :class:`MemoryRecord` objects and apply
a write only when its version is newer than what they hold (last-writer-wins on the HLC
stamp). Indexing, ranking and clocks live in :class:`MemoryManager`, so a replica or a
scale-out store only has to honour ``put_if_newer``. Physical removal happens only through
:meth:`MemoryStore.purge`, which the manager calls for tombstones and expired records past
their grace period.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping

from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version


class MemoryStore(ABC):
    """Durable (or not) home of memory records, keyed by id."""

    #: Short name used in logs and metrics, e.g. ``"memory"`` or ``"sqlite"``.
    kind: str = "abstract"

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Open connections / create schema. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""

    @abstractmethod
    async def get(self, memory_id: str) -> MemoryRecord | None:
        """The record for ``memory_id`` including tombstones, or None."""

    @abstractmethod
    async def put_if_newer(self, record: MemoryRecord) -> bool:
        """Store ``record`` unless a record with an equal or newer version exists.

        Returns True when written. When this returns, the write is durable to the store's
        guarantee (for SQLite: committed to the WAL with synchronous=FULL).
        """

    @abstractmethod
    async def record_access(self, memory_id: str, at: float, count: int = 1) -> None:
        """Bump access_count and last_access without changing the version."""

    @abstractmethod
    def scan(self) -> AsyncIterator[MemoryRecord]:
        """Every record, tombstones included, in no particular order."""

    @abstractmethod
    async def count(self) -> int:
        """Number of records, tombstones included."""

    async def purge(self, expected: Mapping[str, Version]) -> list[str]:
        """Physically remove each id whose stored version is exactly ``expected[id]``.

        All-or-nothing: either every matching row goes or none does. The version guard means a
        record rewritten since the caller chose it survives. Returns the ids removed. The
        default removes nothing (a store that cannot delete just keeps its tombstones).
        """
        return []
