"""Tenant namespaces: the name rule and :class:`TenantMemory`, the manager bound to one tenant.

A tenant's memories live under ``(tenant, id)`` keys in the store itself, so tenants never see
each other's records, searches or counts. ``MemoryManager.for_tenant(name)`` returns the view.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from deep_tree_echo.aar_core.errors import InvalidTenantError
from deep_tree_echo.aar_core.ids import TENANT

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.memory.manager import MemoryManager
    from deep_tree_echo.aar_core.memory.ranking import SearchResult
    from deep_tree_echo.aar_core.memory.record import MemoryRecord

#: A tenant name: 1-64 characters, letters, digits, ``_``, ``.`` and ``-``, not starting
#: with punctuation (safe as a key prefix, a column value and a path segment); the one rule
#: :data:`deep_tree_echo.aar_core.ids.TENANT`, which the OpenAPI schema states too.
TENANT_PATTERN: Final = re.compile(TENANT.pattern)


def validate_tenant(tenant: object) -> str:
    """Return ``tenant`` when it is a valid name, else raise :class:`InvalidTenantError`."""
    if not TENANT.matches(tenant):
        raise InvalidTenantError(
            "tenant must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or "
            f"digit, got {str(tenant)[:80]!r}",
            field="tenant",
        )
    return tenant


class TenantMemory:
    """The :class:`MemoryManager` API acting on one tenant (same methods, same semantics)."""

    __slots__ = ("manager", "tenant")

    def __init__(self, manager: MemoryManager, tenant: str) -> None:
        self.manager = manager
        self.tenant = tenant

    async def upsert(
        self, memory_id: str, data: dict[str, Any], *, ttl: float | None = None
    ) -> tuple[MemoryRecord, bool]:
        """Create or replace a memory; returns the stored record and whether it was created."""
        return await self.manager._upsert(self.tenant, memory_id, data, ttl)

    async def store_memory(
        self, memory_id: str, data: dict[str, Any], *, ttl: float | None = None
    ) -> MemoryRecord:
        """Store ``data`` under ``memory_id`` (upsert); ``ttl`` seconds until it expires."""
        record, _ = await self.manager._upsert(self.tenant, memory_id, data, ttl)
        return record

    async def add_memory(self, data: dict[str, Any], *, ttl: float | None = None) -> MemoryRecord:
        """Store ``data`` as a new memory under a fresh id (``record.id``): one store call."""
        return await self.manager._add(self.tenant, data, ttl)

    async def update_memory(self, memory_id: str, data: dict[str, Any]) -> MemoryRecord:
        """Replace the data of ``memory_id`` (creating it when absent)."""
        record, _ = await self.manager._upsert(self.tenant, memory_id, data, None)
        return record

    async def delete_memory(self, memory_id: str) -> bool:
        """Delete by writing a newer tombstone; True when a live memory was deleted."""
        return await self.manager._delete(self.tenant, memory_id)

    async def apply_remote(self, record: MemoryRecord) -> bool:
        """Apply a replicated record (last writer wins on its version)."""
        return await self.manager._apply_remote(self.tenant, record)

    async def retrieve_memory(self, memory_id: str) -> dict[str, Any] | None:
        """A copy of the memory's data (counts as an access), or None."""
        return await self.manager._retrieve(self.tenant, memory_id)

    async def get_record(
        self, memory_id: str, *, include_deleted: bool = False
    ) -> MemoryRecord | None:
        """The live record with its metadata (no access bump), or None."""
        return await self.manager._get_record(self.tenant, memory_id, include_deleted)

    async def get_all_memories(self) -> dict[str, dict[str, Any]]:
        """Copies of the data of every live memory of the tenant, keyed by id."""
        return await self.manager._all(self.tenant)

    def records(self, *, include_deleted: bool = False) -> AsyncIterator[MemoryRecord]:
        """Copies of the tenant's records, sorted by id."""
        return self.manager._records(self.tenant, include_deleted)

    async def count(self) -> int:
        """Number of live memories of the tenant."""
        return await self.manager._count(self.tenant)

    async def search(
        self,
        query: str,
        /,
        limit: int = 10,
        *,
        exclude: dict[str, Any] | None = None,
        **filters: Any,
    ) -> list[SearchResult]:
        """The tenant's live memories ranked as :meth:`MemoryManager.search` ranks them."""
        return await self.manager._search(self.tenant, query, limit, filters, exclude)

    async def search_where(
        self,
        query: str,
        limit: int = 10,
        filters: dict[str, Any] | None = None,
        exclude: dict[str, Any] | None = None,
    ) -> list[SearchResult]:
        """:meth:`search` with the filters as a dict, so any field name (``limit``,
        ``exclude``, ``""``...) can be filtered on: what the HTTP search route needs."""
        return await self.manager._search(self.tenant, query, limit, dict(filters or {}),
                                          exclude)

    def __repr__(self) -> str:
        return f"TenantMemory(tenant={self.tenant!r}, manager={self.manager!r})"
