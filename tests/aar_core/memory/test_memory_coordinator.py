"""DistributedMemoryCoordinator: rendezvous placement and the HTTP replication protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Response

from deep_tree_echo.aar_core.errors import ReplicationError
from deep_tree_echo.aar_core.memory import (
    DistributedMemoryCoordinator,
    MemoryManager,
    MemoryRecord,
    Version,
)

NODES = [f"http://10.0.0.{i}:8000" for i in range(1, 6)]


def test_select_nodes_is_stable_distinct_and_bounded() -> None:
    a = DistributedMemoryCoordinator(NODES)
    b = DistributedMemoryCoordinator([*reversed(NODES), NODES[0] + "/"])  # order, dupes
    assert b.nodes == list(reversed(NODES))
    for i in range(200):
        mid = f"memory-{i}"
        chosen = a.select_nodes(mid, 3)
        assert chosen == b.select_nodes(mid, 3)  # independent of list order
        assert len(set(chosen)) == 3 and set(chosen) <= set(NODES)
        assert a.get_nodes_for_memory(mid)[:3] == chosen
    assert sorted(a.select_nodes("m", 99)) == sorted(NODES)
    assert a.select_nodes("m", 0) == []
    assert DistributedMemoryCoordinator([]).select_nodes("m", 2) == []


def test_placement_spreads_load_and_moves_little_when_a_node_leaves() -> None:
    full = DistributedMemoryCoordinator(NODES)
    ids = [f"m{i}" for i in range(2000)]
    primaries = Counter(full.select_nodes(i, 1)[0] for i in ids)
    assert set(primaries) == set(NODES)
    assert all(250 <= n <= 550 for n in primaries.values())  # ~400 each
    gone = NODES[2]
    smaller = DistributedMemoryCoordinator([n for n in NODES if n != gone])
    for i in ids:
        before = full.get_nodes_for_memory(i)
        # Removing a node keeps every other node's relative order: only its keys move.
        assert smaller.get_nodes_for_memory(i) == [n for n in before if n != gone]


def test_rejects_malformed_nodes() -> None:
    with pytest.raises(ValueError):
        DistributedMemoryCoordinator(["http://ok:1", ""])


async def test_replicate_and_retrieve_speak_the_memory_http_api() -> None:
    seen: list[httpx.Request] = []
    stored: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        memory_id = request.url.path.rsplit("/", 1)[1]
        if request.method == "PUT":
            stored[memory_id] = json.loads(request.content)
            return httpx.Response(201, json={"id": memory_id})
        if memory_id in stored:
            body = {"id": memory_id, "data": stored[memory_id], "version": "v", "deleted": False}
            return httpx.Response(200, json=body)
        return httpx.Response(404, json={"code": "not_found"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    coord = DistributedMemoryCoordinator(NODES, api_key="s3cret", client=client)
    await coord.replicate_to_node(NODES[0], "m 1", {"content": "hi", "importance": 3})
    put = seen[0]
    assert put.method == "PUT"
    assert put.url.raw_path == b"/v1/memories/m%201"
    assert str(put.url).startswith("http://10.0.0.1:8000/")
    assert put.headers["authorization"] == "Bearer s3cret"
    assert json.loads(put.content) == {"content": "hi", "importance": 3}
    assert await coord.retrieve_from_node(NODES[0], "m 1") == {"content": "hi", "importance": 3}
    assert await coord.retrieve_from_node(NODES[0], "absent") is None
    await coord.aclose()
    assert not client.is_closed  # a client passed in belongs to the caller
    await client.aclose()


@pytest.mark.parametrize("status", [400, 401, 500, 503])
async def test_non_2xx_raises_replication_error(status: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json={}))
    async with httpx.AsyncClient(transport=transport) as client:
        coord = DistributedMemoryCoordinator(NODES, client=client)
        with pytest.raises(ReplicationError) as info:
            await coord.replicate_to_node(NODES[1], "m", {"content": "x"})
        assert info.value.details["status"] == status
        assert info.value.code == "replication_error"
        with pytest.raises(ReplicationError):
            await coord.retrieve_from_node(NODES[1], "m")


async def test_transport_errors_and_bad_bodies_raise_replication_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        coord = DistributedMemoryCoordinator(NODES, client=client)
        with pytest.raises(ReplicationError) as info:
            await coord.replicate_to_node(NODES[0], "m", {})
        assert info.value.details["node"] == NODES[0]
        with pytest.raises(ReplicationError):
            await coord.retrieve_from_node(NODES[0], "m")

    bad = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>"))
    async with httpx.AsyncClient(transport=bad) as client:
        coord = DistributedMemoryCoordinator(NODES, client=client)
        with pytest.raises(ReplicationError):
            await coord.retrieve_from_node(NODES[0], "m")


# -- against real loopback servers ---------------------------------------------------------


def memory_app(manager: MemoryManager, api_key: str) -> FastAPI:
    """The subset of the server's memory API the coordinator uses."""
    app = FastAPI()

    def authorised(authorization: str | None) -> bool:
        return authorization == f"Bearer {api_key}"

    @app.put("/v1/memories/{memory_id}")
    async def put(memory_id: str, body: dict[str, Any], response: Response) -> dict[str, Any]:
        record, created = await manager.upsert(memory_id, body)
        response.status_code = 201 if created else 200
        return record.to_dict()

    @app.get("/v1/memories/{memory_id}")
    async def get(memory_id: str, response: Response) -> dict[str, Any]:
        record = await manager.get_record(memory_id)
        if record is None:
            response.status_code = 404
            return {"code": "not_found"}
        return record.to_dict()

    @app.middleware("http")
    async def auth(request: Any, call_next: Any) -> Any:
        if not authorised(request.headers.get("authorization")):
            return Response(status_code=401)
        return await call_next(request)

    return app


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; the socket listens before we return its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections queue in the backlog until uvicorn accepts them
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_seed_distributed_memory_pattern_over_real_http() -> None:
    """The seed's DistributedMemoryIntegration flow against three real loopback nodes."""
    managers = [MemoryManager(node_id=f"n{i}") for i in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serve(memory_app(m, "k"))) for m in managers]
        by_url = dict(zip(urls, managers, strict=True))
        coord = DistributedMemoryCoordinator(urls, local_node_id=urls[0], api_key="k")
        stack.push_async_callback(coord.aclose)
        local = managers[0]

        # store_distributed_memory
        memory_id = next(
            f"m{i}" for i in range(100) if urls[0] not in coord.select_nodes(f"m{i}", 2)
        )
        data = {"content": "replicated fact", "importance": 8}
        targets = coord.select_nodes(memory_id, 2)
        await local.store_memory(memory_id, data)
        results = await asyncio.gather(
            *(
                coord.replicate_to_node(n, memory_id, data)
                for n in targets
                if n != coord.local_node_id
            ),
            return_exceptions=True,
        )
        assert results == [None, None]
        for node in targets:
            assert await by_url[node].retrieve_memory(memory_id) == data

        # retrieve_distributed_memory: the local copy is gone, fall back to a replica
        await local.delete_memory(memory_id)
        found = None
        for node in coord.get_nodes_for_memory(memory_id):
            found = await coord.retrieve_from_node(node, memory_id)
            if found:
                await local.store_memory(memory_id, found)
                break
        assert found == data
        assert await local.retrieve_memory(memory_id) == data

        # wrong key: the peer refuses and the coordinator says so
        intruder = DistributedMemoryCoordinator(urls, api_key="wrong")
        stack.push_async_callback(intruder.aclose)
        with pytest.raises(ReplicationError) as info:
            await intruder.replicate_to_node(urls[1], "x", {"content": "nope"})
        assert info.value.details["status"] == 401
        assert await managers[1].retrieve_memory("x") is None


# -- the record (version-preserving) protocol ----------------------------------------------


def _record(memory_id: str = "m 1") -> MemoryRecord:
    return MemoryRecord(id=memory_id, data={"content": "hi"},
                        version=Version(1_700_000_000_000, 2, "node-a"),
                        created_at=1.0, updated_at=2.0)


async def test_replicate_and_fetch_record_speak_the_replica_api() -> None:
    seen: list[httpx.Request] = []
    held: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        memory_id = request.url.path.rsplit("/", 1)[1]
        if request.method == "PUT":
            body = json.loads(request.content)
            applied = memory_id not in held
            held.setdefault(memory_id, body)
            return httpx.Response(200, json={"applied": applied, "version": body["version"]})
        if memory_id in held:
            return httpx.Response(200, json=held[memory_id])
        return httpx.Response(404, json={"error": {"code": "not_found"}})

    record = _record()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        coord = DistributedMemoryCoordinator(NODES, api_key="s3cret", cluster_key="peer-key",
                                             client=client)
        assert await coord.replicate_record(NODES[0], record) is True
        assert await coord.replicate_record(NODES[0], record) is False  # already held
        put = seen[0]
        assert put.url.raw_path == b"/v1/replica/records/m%201"
        # the replica API gets the cluster credential, never the client key
        assert put.headers["authorization"] == "Bearer peer-key"
        assert json.loads(put.content) == record.to_dict()
        assert await coord.fetch_record(NODES[0], "m 1") == record
        assert await coord.fetch_record(NODES[0], "absent") is None
        assert {r.headers["authorization"] for r in seen} == {"Bearer peer-key"}


@pytest.mark.parametrize(
    ("call", "response"),
    [
        ("put", httpx.Response(401, json={})),
        ("get", httpx.Response(503, json={})),
        ("get", httpx.Response(200, text="<html>")),
        ("put", httpx.Response(200, json={"applied": "yes"})),
        ("get", httpx.Response(200, json={**_record().to_dict(), "version": "soon"})),
        ("get", httpx.Response(200, json=_record("someone else").to_dict())),
    ],
)
async def test_record_protocol_failures_raise_replication_error(
    call: str, response: httpx.Response
) -> None:
    transport = httpx.MockTransport(lambda request: response)
    async with httpx.AsyncClient(transport=transport) as client:
        coord = DistributedMemoryCoordinator(NODES, client=client)
        with pytest.raises(ReplicationError) as info:
            if call == "put":
                await coord.replicate_record(NODES[1], _record())
            else:
                await coord.fetch_record(NODES[1], "m 1")
        assert info.value.details["node"] == NODES[1]
