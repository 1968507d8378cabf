"""DistributedMemoryIntegration across real `deep-tree-echo serve` node processes on loopback.

Nodes authenticate each other with an API key; one node is killed with SIGKILL mid-test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from deep_tree_echo.aar_core.errors import ReplicationError
from deep_tree_echo.aar_core.memory import DistributedMemoryCoordinator, MemoryManager
from deep_tree_echo.integration import DistributedMemoryIntegration
from deep_tree_echo.testing.live_server import EchoServer

KEY = "client-secret"
CLUSTER_KEY = "cluster-secret"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EchoServer]]:
    """Three nodes shared by this module's tests; the last test kills one of them."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "DTE_API_KEYS": KEY, "DTE_CLUSTER_KEY": CLUSTER_KEY,
           "DTE_RATE_LIMIT_REQUESTS": "0"}
    servers = [EchoServer(tmp_path / f"node{i}", env=env) for i in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _get(server: EchoServer, memory_id: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/memories/{memory_id}",
                     headers={"Authorization": f"Bearer {KEY}"}, timeout=10)


async def test_nodes_refuse_unauthenticated_replication(nodes: list[EchoServer]) -> None:
    coordinator = DistributedMemoryCoordinator([n.url for n in nodes])
    try:
        with pytest.raises(ReplicationError):
            await coordinator.replicate_to_node(nodes[0].url, "x", {"content": "sneaky"})
    finally:
        await coordinator.aclose()
    assert _get(nodes[0], "x").status_code == 404


async def test_replicas_survive_a_killed_node(nodes: list[EchoServer]) -> None:
    urls = [n.url for n in nodes]
    by_url = {n.url: n for n in nodes}
    dist = DistributedMemoryIntegration(urls, replication_factor=2, api_key=KEY,
                                        cluster_key=CLUSTER_KEY)
    try:
        assert await dist.store_distributed_memory("fact-1", {"content": "vault code 7741"})
        targets = dist.coordinator.select_nodes("fact-1", 2)
        for url in urls:
            status = _get(by_url[url], "fact-1").status_code
            assert status == (200 if url in targets else 404)

        # Crash the first replica; a fresh node (empty local store) still finds the memory.
        by_url[targets[0]].kill()
        reader = DistributedMemoryIntegration(urls, local_manager=MemoryManager(),
                                              replication_factor=2, api_key=KEY,
                                              cluster_key=CLUSTER_KEY)
        try:
            assert await reader.retrieve_distributed_memory("fact-1") == {
                "content": "vault code 7741"
            }
            assert await reader.local_manager.retrieve_memory("fact-1") is not None
        finally:
            await reader.aclose()

        # A write whose replica set includes the dead node misses a full quorum.
        strict = DistributedMemoryIntegration(urls, replication_factor=2, write_quorum=3,
                                              api_key=KEY,
                                              cluster_key=CLUSTER_KEY)
        try:
            memory_id = next(f"m{i}" for i in range(1000)
                             if targets[0] in strict.coordinator.select_nodes(f"m{i}", 2))
            assert not await strict.store_distributed_memory(memory_id, {"content": "x"})
            assert strict.last_outcome is not None
            assert set(strict.last_outcome.failed) == {targets[0]}
        finally:
            await strict.aclose()
    finally:
        await dist.aclose()
