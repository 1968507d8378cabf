"""Echo memory: versioned memory records, durable stores, ranked search and replication.

``MemoryManager`` is the entry point; ``DistributedMemoryCoordinator`` places and copies
memories across nodes. ``RedisStore`` and ``PostgresStore`` are loaded on first access, so
importing this package never imports ``redis`` or ``sqlalchemy``.
"""

from typing import TYPE_CHECKING, Any

from deep_tree_echo.aar_core.memory._inmemory import InMemoryStore
from deep_tree_echo.aar_core.memory.coordinator import DistributedMemoryCoordinator
from deep_tree_echo.aar_core.memory.hlc import HybridLogicalClock
from deep_tree_echo.aar_core.memory.manager import MEMORY_UPDATE_EVENT, MemoryManager
from deep_tree_echo.aar_core.memory.ranking import RankWeights, SearchResult
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.sqlite import SQLiteStore
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT, MemoryStore
from deep_tree_echo.aar_core.memory.tenancy import TenantMemory, validate_tenant

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.memory.postgres_store import PostgresStore
    from deep_tree_echo.aar_core.memory.redis_store import RedisStore

__all__ = [
    "DEFAULT_TENANT",
    "MEMORY_UPDATE_EVENT",
    "DistributedMemoryCoordinator",
    "HybridLogicalClock",
    "InMemoryStore",
    "MemoryManager",
    "MemoryRecord",
    "MemoryStore",
    "PostgresStore",
    "RankWeights",
    "RedisStore",
    "SQLiteStore",
    "SearchResult",
    "TenantMemory",
    "Version",
    "validate_tenant",
]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``RedisStore`` (and ``redis``) load only when asked for."""
    if name == "RedisStore":
        from deep_tree_echo.aar_core.memory.redis_store import RedisStore

        return RedisStore
    if name == "PostgresStore":
        from deep_tree_echo.aar_core.memory.postgres_store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
