"""The seed's Distributed Memory pattern: write locally, replicate to hash-chosen nodes.

Placement is rendezvous hashing (``DistributedMemoryCoordinator.select_nodes``), so every
node computes the same replicas for an id without coordination. Replication sends whole
records with their hybrid-logical-clock version (``/v1/replica/records``), so every replica
holds the same version and applies last-writer-wins. A write succeeds when the local store
plus enough replicas acknowledged it (``write_quorum``, default the replication factor). A
read that misses locally asks the replicas, keeps the newest version (a tombstone beats older
live copies) and pushes it to the replicas that answered with an older one or none (read
repair).

An integration acts for one tenant (``tenant=``, default ``default``): its local reads and
writes use that tenant's namespace, and every record it replicates or fetches is sent with
``X-Echo-Tenant`` (with the cluster key, which may name any tenant), so the peers file it
under the same tenant. Use one integration per tenant; they may share a coordinator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from deep_tree_echo.aar_core.memory import (
    DistributedMemoryCoordinator,
    MemoryManager,
    MemoryRecord,
)
from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.tenants import DEFAULT_TENANT, validate_tenant

T = TypeVar("T")


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


@dataclass(slots=True)
class ReadOutcome:
    """How a distributed read (or the lookup before a delete) went.

    ``version`` is the newest version found (None when no node had the id), ``responded``
    the nodes that answered, ``failed`` those that could not be asked or repaired (and why),
    ``repaired`` the replicas that were sent the newest record.
    """

    memory_id: str
    version: str | None = None
    responded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


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
        cluster_key: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        if replication_factor < 1:
            raise ConfigurationError("replication_factor must be at least 1")
        #: The tenant whose memories this integration stores, reads and replicates.
        self.tenant = validate_tenant(tenant)
        self.coordinator = coordinator or DistributedMemoryCoordinator(
            list(nodes), local_node_id=local_node_id, api_key=api_key, cluster_key=cluster_key
        )
        self.local_manager = local_manager or MemoryManager()
        #: The local store's view of :attr:`tenant` (what every local read and write uses).
        self.local = self.local_manager.for_tenant(self.tenant)
        self.replication_factor = replication_factor
        self.write_quorum = write_quorum
        self.logger = logging.getLogger("deep_tree_echo.integration.distributed_memory")
        #: The last write's (store or delete) outcome.
        self.last_outcome: ReplicationOutcome | None = None
        #: The last read's (or pre-delete lookup's) outcome, read repairs included.
        self.last_read: ReadOutcome | None = None
        #: Replicas brought up to date by read repair since this integration was created.
        self.repairs = 0

    # -- helpers ---------------------------------------------------------------------------

    def _remote_targets(self, memory_id: str) -> tuple[list[str], list[str]]:
        """The id's replica set and its members other than this node."""
        targets = self.coordinator.select_nodes(memory_id, self.replication_factor)
        local = self.coordinator.local_node_id
        return targets, [node for node in targets if node != local]

    @staticmethod
    async def _each(
        nodes: Sequence[str], calls: Sequence[Awaitable[T]]
    ) -> list[tuple[str, T | Exception]]:
        """Await ``calls`` concurrently; pairs of node and result (an Exception on failure)."""
        results = await asyncio.gather(*calls, return_exceptions=True)
        pairs: list[tuple[str, T | Exception]] = []
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation and the like are not a node's failure
            pairs.append((node, result))
        return pairs

    async def _replicate(self, record: MemoryRecord, targets: list[str],
                         remote: list[str]) -> bool:
        """Send ``record`` to the ``remote`` replicas; record the write outcome."""
        memory_id = record.id
        outcome = ReplicationOutcome(
            memory_id, acknowledged=[self.coordinator.local_node_id or "local"]
        )
        calls = [self.coordinator.replicate_record(node, record, tenant=self.tenant)
                 for node in remote]
        for node, result in await self._each(remote, calls):
            if isinstance(result, Exception):
                outcome.failed[node] = _reason(result)
            else:
                outcome.acknowledged.append(node)
        outcome.quorum = min(self.write_quorum or self.replication_factor, len(targets) + 1)
        if outcome.failed:
            self.logger.warning("replication failures for %s: %s", memory_id, outcome.failed)
        self.last_outcome = outcome
        return outcome.ok

    async def _converge(self, memory_id: str) -> MemoryRecord | None:
        """Find the newest record of ``memory_id`` among this node and its replicas.

        The replicas are asked concurrently; when neither they nor this node know the id,
        the other nodes are tried in preference order (the seed's fallback). The newest
        record is applied locally (keeping its version) and pushed to the replicas that
        answered with an older version or none. Returns the newest record, or None.
        """
        outcome = ReadOutcome(memory_id)
        self.last_read = outcome
        local = await self.local.get_record(memory_id, include_deleted=True)
        _, remote = self._remote_targets(memory_id)
        answers: dict[str, MemoryRecord | None] = {}

        async def ask(nodes: list[str]) -> None:
            calls = [self.coordinator.fetch_record(node, memory_id, tenant=self.tenant)
                     for node in nodes]
            for node, result in await self._each(nodes, calls):
                if isinstance(result, Exception):
                    outcome.failed[node] = _reason(result)
                    self.logger.warning("failed to fetch %s from node %s: %s",
                                        memory_id, node, result)
                else:
                    outcome.responded.append(node)
                    answers[node] = result

        await ask(remote)
        if local is None and not any(answers.values()):
            skip = {*remote, self.coordinator.local_node_id}
            for node in self.coordinator.get_nodes_for_memory(memory_id):
                if node not in skip:
                    await ask([node])
                    if answers.get(node) is not None:
                        break

        candidates = [r for r in (local, *answers.values()) if r is not None]
        if not candidates:
            return None
        newest = max(candidates, key=lambda r: r.version)
        outcome.version = newest.version.to_str()
        if local is None or local.version < newest.version:
            await self.local.apply_remote(newest)

        stale = []
        for node in remote:
            if node not in answers:
                continue  # unreachable: nothing to repair it with now
            held = answers[node]
            if held is None or held.version < newest.version:
                stale.append(node)
        calls = [self.coordinator.replicate_record(node, newest, tenant=self.tenant)
                 for node in stale]
        for node, result in await self._each(stale, calls):
            if isinstance(result, Exception):
                outcome.failed[node] = _reason(result)
                self.logger.warning("read repair of %s on %s failed: %s", memory_id, node, result)
            else:
                outcome.repaired.append(node)
                self.repairs += 1
        return newest

    # -- the seed's API --------------------------------------------------------------------

    async def store_distributed_memory(self, memory_id: str, memory_data: dict[str, Any]) -> bool:
        """Store locally, send the same record (same version) to the other target replicas;
        True when the write quorum acknowledged."""
        targets, remote = self._remote_targets(memory_id)
        record = await self.local.store_memory(memory_id, memory_data)
        return await self._replicate(record, targets, remote)

    async def retrieve_distributed_memory(self, memory_id: str) -> dict[str, Any] | None:
        """Local first; otherwise the newest version among the replicas, cached here with its
        version and repaired on stale replicas. None when absent or deleted (a tombstone
        newer than every live copy wins)."""
        memory = await self.local.retrieve_memory(memory_id)
        if memory is not None:
            return memory
        newest = await self._converge(memory_id)
        if newest is None or newest.deleted:
            return None
        return await self.local.retrieve_memory(memory_id)

    async def delete_distributed_memory(self, memory_id: str) -> bool:
        """Delete everywhere: learn the newest version from the replicas (so the tombstone is
        newer than all of them), write a tombstone locally and replicate it.

        True when a live memory was deleted and the tombstone reached the write quorum
        (``last_outcome`` says which replicas acknowledged). False when no node held a live
        copy; an existing tombstone is still sent to replicas that lack it.
        """
        await self._converge(memory_id)
        deleted = await self.local.delete_memory(memory_id)
        tombstone = await self.local.get_record(memory_id, include_deleted=True)
        if tombstone is None or not tombstone.deleted:
            return False  # no node knows the id
        targets, remote = self._remote_targets(memory_id)
        acknowledged = await self._replicate(tombstone, targets, remote)
        return deleted and acknowledged

    async def aclose(self) -> None:
        await self.coordinator.aclose()
