"""The interface every memory store implements (in-memory, SQLite, PostgreSQL, Redis).

Stores persist whole :class:`MemoryRecord` objects and apply a write only when its version is
newer than what they hold (last-writer-wins on the HLC stamp). Every method works inside one
*tenant* namespace: rows are keyed by ``(tenant, id)`` in the store itself (a column or a key
prefix), so two tenants never see each other's memories. Search runs in the store, so every
process sharing a store ranks exactly its committed state: the manager keeps no mirror.
Physical removal happens only through :meth:`MemoryStore.purge`, which the manager calls for
tombstones and expired records past their grace period.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from deep_tree_echo.aar_core.memory.ranking import RankWeights, SearchResult
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version

#: The namespace used when a caller names none (the seed API acts on it).
DEFAULT_TENANT = "default"


class MemoryStore(ABC):
    """Durable (or not) home of memory records, keyed by ``(tenant, id)``."""

    #: Short name used in logs and metrics, e.g. ``"memory"`` or ``"sqlite"``.
    kind: str = "abstract"

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Open connections / create or migrate the schema. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""

    @abstractmethod
    async def get(self, memory_id: str, *, tenant: str = DEFAULT_TENANT) -> MemoryRecord | None:
        """The record for ``memory_id`` including tombstones, or None."""

    @abstractmethod
    async def put_if_newer(self, record: MemoryRecord, *, tenant: str = DEFAULT_TENANT) -> bool:
        """Store ``record`` unless a record with an equal or newer version exists.

        Returns True when written. When this returns, the write is durable to the store's
        guarantee (for SQLite: committed to the WAL and the WAL synced to disk) and visible to every
        later read and search of any process sharing the store. The search index changes in
        the same atomic step as the record.
        """

    @property
    def logs_changes(self) -> bool:
        """True when :meth:`put_logged` can store a change event in the write's own
        transaction (a SQLite store whose file holds the server's event outbox)."""
        return False

    async def put_logged(
        self, record: MemoryRecord, change: Mapping[str, Any], *, tenant: str = DEFAULT_TENANT
    ) -> int | None:
        """:meth:`put_if_newer` that also stores ``change`` (the ``memory.update`` payload of
        this write) in the same transaction, so a committed write never lacks its event.

        Returns the event's id, or None when the write lost (then nothing is stored). Only
        for stores whose :attr:`logs_changes` is true.
        """
        raise NotImplementedError(f"the {self.kind} store does not log changes")

    @abstractmethod
    async def record_access(
        self, memory_id: str, at: float, count: int = 1, *, tenant: str = DEFAULT_TENANT
    ) -> None:
        """Bump access_count and last_access without changing the version."""

    @abstractmethod
    def scan(self, *, tenant: str = DEFAULT_TENANT) -> AsyncIterator[MemoryRecord]:
        """Every record of ``tenant``, tombstones and expired ones included, sorted by id."""

    @abstractmethod
    async def count(self, *, tenant: str = DEFAULT_TENANT, live_at: float | None = None) -> int:
        """Number of records of ``tenant``; with ``live_at`` only those live at that time
        (not deleted, not expired), else tombstones included."""

    @abstractmethod
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
        """The ``limit`` best live memories of ``tenant`` for the query ``terms``.

        ``terms`` is the output of ``_bm25.tokenize(query)`` (stores index the same function's
        output, never their own analysis). Ranking is :func:`ranking.rank`: the BM25 best
        candidates (those matching at least one term; every live memory when ``terms`` is
        empty), relevance normalised by the best one, plus recency and importance.
        ``filters`` keep memories whose top-level ``data[key] == value`` (Python equality),
        applied before the candidates are chosen.
        """

    @abstractmethod
    async def tenants(self) -> list[str]:
        """Every tenant holding at least one record (tombstones count), sorted."""

    async def purge_candidates(
        self, cutoff: float, *, tenant: str = DEFAULT_TENANT, limit: int = 1000
    ) -> dict[str, Version]:
        """Up to ``limit`` records of ``tenant`` that purging may remove, with their versions:
        tombstones whose ``updated_at`` is before ``cutoff`` and records that expired before it.

        The default scans the tenant; SQL stores answer from an index.
        """
        found: dict[str, Version] = {}
        async for rec in self.scan(tenant=tenant):
            if (rec.deleted and rec.updated_at < cutoff) or (
                not rec.deleted and rec.expires_at is not None and rec.expires_at < cutoff
            ):
                found[rec.id] = rec.version
                if len(found) >= limit:
                    break
        return found

    async def purge(
        self, expected: Mapping[str, Version], *, tenant: str = DEFAULT_TENANT
    ) -> list[str]:
        """Physically remove each id whose stored version is exactly ``expected[id]``.

        All-or-nothing: either every matching row goes or none does. The version guard means a
        record rewritten since the caller chose it survives. Returns the ids removed. The
        default removes nothing (a store that cannot delete just keeps its tombstones).
        """
        return []
