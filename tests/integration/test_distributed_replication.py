"""Version-preserving replication, read repair and tombstones across real node processes.

Three ``deep-tree-echo serve`` processes on loopback, authenticated with an API key. The
integration under test runs in this process with its own (empty) local manager, so every
record it reads comes from the nodes' ``/v1/replica/records`` API.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from deep_tree_echo.aar_core.errors import ReplicationError
from deep_tree_echo.aar_core.memory import DistributedMemoryCoordinator, MemoryRecord, Version
from deep_tree_echo.integration import DistributedMemoryIntegration
from deep_tree_echo.testing.live_server import EchoServer

KEY = "replica-secret"
CLUSTER_KEY = "cluster-" + "c" * 32
AUTH = {"Authorization": f"Bearer {CLUSTER_KEY}"}
CLIENT = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    tmp_path = tmp_path_factory.mktemp("replication")
    env = {**os.environ, "DTE_API_KEYS": KEY, "DTE_CLUSTER_KEY": CLUSTER_KEY,
           "DTE_RATE_LIMIT_REQUESTS": "0"}
    servers = [EchoServer(tmp_path / f"node{i}", env=env) for i in range(3)]
    try:
        for server in servers:
            server.start()
        yield [server.url for server in servers]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def integration(nodes: list[str], replication_factor: int = 2) -> DistributedMemoryIntegration:
    """A fresh integration: its local manager knows nothing yet."""
    return DistributedMemoryIntegration(nodes, replication_factor=replication_factor, api_key=KEY,
                                        cluster_key=CLUSTER_KEY)


async def replica(http: httpx.AsyncClient, node: str, memory_id: str) -> dict[str, Any] | None:
    """The record ``node`` holds (tombstones included), None when it never saw the id."""
    r = await http.get(f"{node}/v1/replica/records/{quote(memory_id, safe='')}", headers=AUTH)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_distributed_store_gives_every_replica_the_same_version(
    nodes: list[str], http: httpx.AsyncClient
) -> None:
    dist = integration(nodes)
    try:
        for content in ("first", "second"):
            assert await dist.store_distributed_memory("same-v", {"content": content})
            local = await dist.local_manager.get_record("same-v")
            assert local is not None
            targets = dist.coordinator.select_nodes("same-v", 2)
            for node in nodes:
                held = await replica(http, node, "same-v")
                if node in targets:
                    assert held is not None
                    assert held["version"] == local.version.to_str()
                    assert held["data"] == {"content": content}
                else:
                    assert held is None
    finally:
        await dist.aclose()


async def test_read_repair_brings_a_stale_replica_to_the_newest_version(
    nodes: list[str], http: httpx.AsyncClient
) -> None:
    memory_id = "repair-me"
    reader = integration(nodes)
    targets = reader.coordinator.select_nodes(memory_id, 2)
    bystander = next(node for node in nodes if node not in targets)

    # A write that reached only the first replica (replication factor 1 places it there) ...
    writer = integration(nodes, replication_factor=1)
    try:
        assert await writer.store_distributed_memory(memory_id, {"content": "new"})
        newest = await writer.local_manager.get_record(memory_id)
        assert newest is not None
    finally:
        await writer.aclose()
    # ... while the second replica holds an older version, written straight to its replica API.
    old = MemoryRecord(
        id=memory_id,
        data={"content": "old"},
        version=Version(newest.version.wall_ms - 60_000, 0, "node-old"),
        created_at=time.time() - 60,
        updated_at=time.time() - 60,
    )
    r = await http.put(f"{targets[1]}/v1/replica/records/{memory_id}", json=old.to_dict(),
                       headers=AUTH)
    assert r.json() == {"applied": True, "version": old.version.to_str()}

    try:
        assert await reader.retrieve_distributed_memory(memory_id) == {"content": "new"}
        assert reader.repairs == 1
        assert reader.last_read is not None
        assert reader.last_read.repaired == [targets[1]]
        assert reader.last_read.version == newest.version.to_str()
        for node in targets:
            held = await replica(http, node, memory_id)
            assert held is not None
            assert (held["version"], held["data"]) == (newest.version.to_str(), {"content": "new"})
        assert await replica(http, bystander, memory_id) is None  # only replicas are repaired
        # the cached copy keeps the version it was written with
        cached = await reader.local_manager.get_record(memory_id)
        assert cached is not None and cached.version == newest.version
    finally:
        await reader.aclose()

    # Replicas now agree: a second fresh reader repairs nothing.
    again = integration(nodes)
    try:
        assert await again.retrieve_distributed_memory(memory_id) == {"content": "new"}
        assert again.repairs == 0
    finally:
        await again.aclose()


async def test_delete_propagates_a_tombstone(nodes: list[str], http: httpx.AsyncClient) -> None:
    memory_id = "to-delete"
    writer = integration(nodes)
    deleter = integration(nodes)  # knows nothing locally: learns the record from the replicas
    reader = integration(nodes)
    try:
        assert await writer.store_distributed_memory(memory_id, {"content": "secret"})
        written = await writer.local_manager.get_record(memory_id)
        assert written is not None

        assert await deleter.delete_distributed_memory(memory_id) is True
        tombstone = await deleter.local_manager.get_record(memory_id, include_deleted=True)
        assert tombstone is not None and tombstone.deleted
        assert tombstone.version > written.version
        for node in writer.coordinator.select_nodes(memory_id, 2):
            held = await replica(http, node, memory_id)
            assert held is not None
            assert held["deleted"] is True
            assert held["version"] == tombstone.version.to_str()
            public = await http.get(f"{node}/v1/memories/{memory_id}", headers=CLIENT)
            assert public.status_code == 404

        assert await reader.retrieve_distributed_memory(memory_id) is None
        assert reader.last_read is not None
        assert reader.last_read.version == tombstone.version.to_str()
        assert await deleter.delete_distributed_memory(memory_id) is False  # already gone
        assert await deleter.delete_distributed_memory("never-written") is False
    finally:
        for dist in (writer, deleter, reader):
            await dist.aclose()


async def test_a_tombstone_wins_over_an_older_live_replica_and_is_repaired(
    nodes: list[str], http: httpx.AsyncClient
) -> None:
    memory_id = "half-deleted"
    writer = integration(nodes)
    partial = integration(nodes, replication_factor=1)  # its delete reaches one replica only
    reader = integration(nodes)
    targets = writer.coordinator.select_nodes(memory_id, 2)
    try:
        assert await writer.store_distributed_memory(memory_id, {"content": "doomed"})
        assert await partial.delete_distributed_memory(memory_id)
        first = await replica(http, targets[0], memory_id)
        second = await replica(http, targets[1], memory_id)
        assert first is not None and first["deleted"] is True
        assert second is not None and second["deleted"] is False  # the stale live copy

        assert await reader.retrieve_distributed_memory(memory_id) is None
        assert reader.last_read is not None and reader.last_read.repaired == [targets[1]]
        repaired = await replica(http, targets[1], memory_id)
        assert repaired is not None
        assert repaired["deleted"] is True and repaired["version"] == first["version"]
    finally:
        for dist in (writer, partial, reader):
            await dist.aclose()


async def test_unauthenticated_replica_writes_are_refused(
    nodes: list[str], http: httpx.AsyncClient
) -> None:
    record = MemoryRecord(id="intruder", data={"content": "sneaky"},
                          version=Version(int(time.time() * 1000), 0, "evil"),
                          created_at=time.time(), updated_at=time.time())
    r = await http.put(f"{nodes[0]}/v1/replica/records/intruder", json=record.to_dict())
    assert r.status_code == 401
    r = await http.get(f"{nodes[0]}/v1/replica/records/intruder")
    assert r.status_code == 401
    # a client key is not a peer's credential
    r = await http.put(f"{nodes[0]}/v1/replica/records/intruder", json=record.to_dict(),
                       headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 403
    coordinator = DistributedMemoryCoordinator(nodes)  # no cluster key
    # a client key where the cluster key belongs
    client_only = DistributedMemoryCoordinator(nodes, cluster_key=KEY)
    try:
        with pytest.raises(ReplicationError) as info:
            await coordinator.replicate_record(nodes[0], record)
        assert info.value.details["status"] == 401
        with pytest.raises(ReplicationError) as info:
            await client_only.replicate_record(nodes[0], record)
        assert info.value.details["status"] == 403
    finally:
        await coordinator.aclose()
        await client_only.aclose()
    assert await replica(http, nodes[0], "intruder") is None


async def test_malformed_replica_writes_are_refused(
    nodes: list[str], http: httpx.AsyncClient
) -> None:
    body = MemoryRecord(id="malformed", data={"content": "x"},
                        version=Version(int(time.time() * 1000), 0, "peer"),
                        created_at=time.time(), updated_at=time.time()).to_dict()
    url = f"{nodes[1]}/v1/replica/records/malformed"
    r = await http.put(url, json={**body, "version": "not-a-version"}, headers=AUTH)
    assert r.status_code in (400, 422)
    assert r.json()["error"]["details"]["field"] == "version"
    r = await http.put(url, json={**body, "id": "other"}, headers=AUTH)
    assert r.status_code == 400
    r = await http.put(url, content=b"{", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 400
    assert await replica(http, nodes[1], "malformed") is None


async def test_replication_carries_the_tenant_end_to_end(
    nodes: list[str], http: httpx.AsyncClient
) -> None:
    memory_id = "shared-name"
    acme, globex = (DistributedMemoryIntegration(nodes, replication_factor=2, api_key=KEY,
                                                 cluster_key=CLUSTER_KEY, tenant=t)
                    for t in ("acme", "globex"))
    readers = [DistributedMemoryIntegration(nodes, replication_factor=2, cluster_key=CLUSTER_KEY,
                                            tenant=t) for t in ("acme", "default")]
    try:
        assert await acme.store_distributed_memory(memory_id, {"content": "acme's wifi: a1"})
        assert await globex.store_distributed_memory(memory_id, {"content": "globex's: g2"})
        for node in acme.coordinator.select_nodes(memory_id, 2):
            for tenant, content in [("acme", "acme's wifi: a1"), ("globex", "globex's: g2")]:
                r = await http.get(f"{node}/v1/replica/records/{memory_id}",
                                   headers={**AUTH, "X-Echo-Tenant": tenant})
                assert r.status_code == 200 and r.json()["data"]["content"] == content
            assert await replica(http, node, memory_id) is None  # not in tenant default
            public = await http.get(f"{node}/v1/memories/{memory_id}", headers=CLIENT)
            assert public.status_code == 404  # the client key is tenant default's
        acme_reader, default_reader = readers
        assert await acme_reader.retrieve_distributed_memory(memory_id) == {
            "content": "acme's wifi: a1"}
        assert await default_reader.retrieve_distributed_memory(memory_id) is None
        assert await globex.delete_distributed_memory(memory_id) is True
        assert await acme.retrieve_distributed_memory(memory_id) == {"content": "acme's wifi: a1"}
        assert await acme.local_manager.retrieve_memory(memory_id) is None  # default's view
    finally:
        for dist in (acme, globex, *readers):
            await dist.aclose()
