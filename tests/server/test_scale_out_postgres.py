"""Two ``serve`` nodes on one real PostgreSQL: one consistent store, events across nodes,
and ``kill -9`` of a node losing no acknowledged write while the other keeps serving."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from _scale_out import fresh_connections, random_workload, recv_events, recv_json, recv_type
from websockets.asyncio.client import connect

from deep_tree_echo.testing.live_server import EchoServer

pytestmark = pytest.mark.slow


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A fresh database on the session's PostgreSQL server, so tests never see each other."""
    import asyncpg

    name = f"dte_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def nodes(database_url: str, tmp_path: Path) -> Iterator[tuple[EchoServer, EchoServer]]:
    env = {"DTE_RATE_LIMIT_REQUESTS": "0", "DTE_LOG_LEVEL": "info",
           "DTE_MEMORY_STORE": "postgres", "DTE_DATABASE_URL": database_url}
    a = EchoServer(tmp_path / "a", env=env, timeout=90).start()
    try:
        b = EchoServer(tmp_path / "b", env=env, timeout=90).start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


async def test_two_nodes_answer_as_one_store_and_share_events(
    nodes: tuple[EchoServer, EchoServer],
) -> None:
    a, b = nodes
    clients = [httpx.AsyncClient(base_url=node.url, timeout=30) for node in (a, b)]
    try:
        served = await random_workload(clients, 1000, seed=9)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert served[a.url] == served[b.url] == 500

    async with connect(f"{b.ws_url}/v1/ws") as on_b:
        await on_b.send(json.dumps({"type": "subscribe", "session_id": "pg"}))
        # (sessionless memory_updates of the workload may still be on their way: tenant-wide)
        assert (await recv_type(on_b, "subscribed"))["session_id"] == "pg"
        async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
            r = await http.post("/v1/process", json={
                "message_type": "text", "data": "the lab opens at 9", "session_id": "pg"})
            assert r.status_code == 200, r.text
            answer = r.json()["data"]["text"]
            first = await recv_events(on_b, 2, session="pg")
            assert [e["type"] for e in first] == ["memory_update", "agent_message"]
            assert first[1]["message"] == answer and first[1]["session_id"] == "pg"
            for i in range(2):  # missed by a client that left after the first event
                assert (await http.post("/v1/process", json={
                    "message_type": "text", "data": f"later {i}", "session_id": "pg"}
                )).status_code == 200
    async with connect(f"{a.ws_url}/v1/ws") as on_a:  # resumes on the *other* node
        since = first[0]["event_id"]
        await on_a.send(json.dumps({"type": "subscribe", "session_id": "pg", "since": since}))
        assert (await recv_type(on_a, "subscribed"))["since"] == since
        replay = await recv_events(on_a, 5, session="pg")
        assert replay[0] == first[1]
        ids = [e["event_id"] for e in replay]
        assert ids == sorted(set(ids)) and ids[0] > since
        await on_a.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(15):  # nothing else of the session, nothing twice
            while (frame := await recv_json(on_a))["type"] != "pong":
                assert frame.get("session_id") != "pg", frame


async def test_kill_9_of_a_node_loses_no_acknowledged_write(
    nodes: tuple[EchoServer, EchoServer],
) -> None:
    a, b = nodes
    acknowledged: dict[str, int] = {}
    clients = [fresh_connections(node.url) for node in (a, b)]
    try:
        for i in range(400):
            if i == 150:
                a.kill()
            client = clients[i % 2]
            try:
                r = await client.put(f"/v1/memories/k{i}", json={"content": f"kill {i}"})
            except httpx.TransportError:
                assert i >= 150 and client is clients[0]  # only the dead node fails
                continue
            assert r.status_code == 201, r.text
            acknowledged[f"k{i}"] = i
        assert sum(1 for i in acknowledged.values() if i >= 150) == 125  # B kept serving
        for memory_id, i in acknowledged.items():
            r = await clients[1].get(f"/v1/memories/{memory_id}")
            assert r.status_code == 200, (memory_id, r.text)
            assert r.json()["data"]["content"] == f"kill {i}"
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
