"""The seed's Distributed Memory pattern: write locally, replicate to hash-chosen nodes.

Placement is rendezvous hashing (``DistributedMemoryCoordinator.select_nodes``), so every
node computes the same replicas for an id without coordination. A write succeeds when the
local store plus enough replicas acknowledged it (``write_quorum``, default the
replication factor); a read falls back through the replicas in preference order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deep_tree_echo.aar_core.memory import DistributedMemoryCoordinator, MemoryManager
from deep_tree_echo.errors import ConfigurationError


@dataclass(slots=True)
class ReplicationOutcome:
    """How a distributed write went: who acknowledged, who failed and why."""

    memory_id: str
    acknowledged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    quorum: int = 1

    @property
    def ok(self) -> bool:
        return len(self.acknowledged) >= self.quorum


class DistributedMemoryIntegration:
    """Store and fetch memories across Echo nodes (the seed's names and return values)."""

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        local_manager: MemoryManager | None = None,
        coordinator: DistributedMemoryCoordinator | None = None,
        replication_factor: int = 2,
        write_quorum: int | None = None,
        local_node_id: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if replication_factor < 1:
            raise ConfigurationError("replication_factor must be at least 1")
        self.coordinator = coordinator or DistributedMemoryCoordinator(
            list(nodes), local_node_id=local_node_id, api_key=api_key
        )
        self.local_manager = local_manager or MemoryManager()
        self.replication_factor = replication_factor
        self.write_quorum = write_quorum
        self.logger = logging.getLogger("deep_tree_echo.integration.distributed_memory")
        self.last_outcome: ReplicationOutcome | None = None

    async def store_distributed_memory(self, memory_id: str, memory_data: dict[str, Any]) -> bool:
        """Store locally, replicate to the other target nodes; True when the quorum acked."""
        targets = self.coordinator.select_nodes(memory_id, self.replication_factor)
        await self.local_manager.store_memory(memory_id, memory_data)
        local = self.coordinator.local_node_id
        outcome = ReplicationOutcome(memory_id, acknowledged=[local or "local"])
        remote = [node for node in targets if node != local]
        results = await asyncio.gather(
            *(self.coordinator.replicate_to_node(node, memory_id, memory_data) for node in remote),
            return_exceptions=True,
        )
        for node, result in zip(remote, results, strict=True):
            if isinstance(result, BaseException):
                outcome.failed[node] = str(result) or type(result).__name__
            else:
                outcome.acknowledged.append(node)
        outcome.quorum = min(self.write_quorum or self.replication_factor, len(targets) + 1)
        if outcome.failed:
            self.logger.warning("replication failures for %s: %s", memory_id, outcome.failed)
        self.last_outcome = outcome
        return outcome.ok

    async def retrieve_distributed_memory(self, memory_id: str) -> dict[str, Any] | None:
        """Local first, then each replica in preference order; a remote hit is cached here."""
        memory = await self.local_manager.retrieve_memory(memory_id)
        if memory:
            return memory
        for node in self.coordinator.get_nodes_for_memory(memory_id):
            if node == self.coordinator.local_node_id:
                continue
            try:
                memory = await self.coordinator.retrieve_from_node(node, memory_id)
            except Exception as exc:
                self.logger.warning("failed to retrieve %s from node %s: %s", memory_id, node, exc)
                continue
            if memory:
                await self.local_manager.store_memory(memory_id, memory)
                return memory
        return None

    async def aclose(self) -> None:
        await self.coordinator.aclose()
