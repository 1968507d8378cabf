"""Echo memory: versioned memory records, durable stores, ranked search and replication.

``MemoryManager`` is the entry point; ``DistributedMemoryCoordinator`` places and copies
memories across nodes.
"""

from deep_tree_echo.aar_core.memory._inmemory import InMemoryStore
from deep_tree_echo.aar_core.memory.coordinator import DistributedMemoryCoordinator
from deep_tree_echo.aar_core.memory.hlc import HybridLogicalClock
from deep_tree_echo.aar_core.memory.manager import MEMORY_UPDATE_EVENT, MemoryManager
from deep_tree_echo.aar_core.memory.ranking import RankWeights, SearchResult
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.sqlite import SQLiteStore
from deep_tree_echo.aar_core.memory.store import MemoryStore

__all__ = [
    "MEMORY_UPDATE_EVENT",
    "DistributedMemoryCoordinator",
    "HybridLogicalClock",
    "InMemoryStore",
    "MemoryManager",
    "MemoryRecord",
    "MemoryStore",
    "RankWeights",
    "SQLiteStore",
    "SearchResult",
    "Version",
]
