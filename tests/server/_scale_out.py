"""Helpers for the scale-out tests: a random workload checked against a model of what was
acknowledged, and WebSocket frame readers."""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections import Counter
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

WORKER = "x-echo-worker"


def fresh_connections(base_url: str) -> httpx.AsyncClient:
    """A client that opens a new connection per request, so requests spread over workers."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
    )


def _token(rng: random.Random) -> str:
    """A word no other memory holds (letters only, so the tokenizer keeps it whole)."""
    return "".join(rng.choices(string.ascii_lowercase, k=10))


async def random_workload(
    clients: list[httpx.AsyncClient], operations: int, *, seed: int, ids: int = 40
) -> Counter[str]:
    """Run ``operations`` random put/update/delete/get/search calls, alternating over
    ``clients``, each answer checked against what was acknowledged before it.

    Returns how many answers each responder (``X-Echo-Worker`` pid, else the client's
    base URL) gave. Raises ``AssertionError`` on the first stale or missing answer.
    """
    rng = random.Random(seed)
    model: dict[str, str] = {}  # id -> the unique token of its acknowledged content
    stale: dict[str, str] = {}  # id -> a token it held before (must no longer match)
    served: Counter[str] = Counter()
    names = [f"m{i}" for i in range(ids)]
    for step in range(operations):
        client = clients[step % len(clients)]
        memory_id = rng.choice(names)
        op = rng.choices(["put", "delete", "get", "search"], weights=[4, 1, 3, 2])[0]
        where = f"step {step} ({op} {memory_id} via {client.base_url})"
        if op == "put":
            token = _token(rng)
            r = await client.put(f"/v1/memories/{memory_id}",
                                 json={"content": f"note {token}", "step": step})
            assert r.status_code == (200 if memory_id in model else 201), (where, r.text)
            if memory_id in model:
                stale[memory_id] = model[memory_id]
            model[memory_id] = token
        elif op == "delete":
            r = await client.delete(f"/v1/memories/{memory_id}")
            assert r.status_code == (204 if memory_id in model else 404), (where, r.text)
            if memory_id in model:
                stale[memory_id] = model.pop(memory_id)
        elif op == "get":
            r = await client.get(f"/v1/memories/{memory_id}")
            if memory_id in model:
                assert r.status_code == 200, (where, r.text)
                assert r.json()["data"]["content"] == f"note {model[memory_id]}", where
            else:
                assert r.status_code == 404, (where, r.text)
        else:
            current = model.get(memory_id)
            old = stale.get(memory_id)
            query = current if current is not None and (old is None or rng.random() < 0.5) \
                else old
            if query is None:
                query = _token(rng)
            r = await client.get("/v1/memories", params={"query": query, "limit": 5})
            assert r.status_code == 200, (where, r.text)
            found = [hit["id"] for hit in r.json()["results"]]
            if query == current:
                assert found[:1] == [memory_id], (where, "missing from search", found)
            else:
                assert memory_id not in found, (where, "stale search hit", query, found)
        served[r.headers.get(WORKER) or str(client.base_url)] += 1
    return served


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, bounded (15 s)."""
    async with asyncio.timeout(15):
        return dict(json.loads(await ws.recv()))


async def recv_type(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping keep-alive pings, bounded (15 s)."""
    async with asyncio.timeout(15):
        while True:
            frame = dict(json.loads(await ws.recv()))
            if frame["type"] == kind:
                return frame
            assert frame["type"] in ("ping", "pong", "memory_update"), frame


async def recv_events(
    ws: ClientConnection, count: int, session: str | None = None
) -> list[dict[str, Any]]:
    """The next ``count`` ``agent_message``/``memory_update`` frames, in arrival order.

    With ``session``, only that session's: a ``memory_update`` without a session goes to every
    client of the tenant, and one committed by an earlier test may still be on its way.
    """
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while len(frames) < count:
            frame = dict(json.loads(await ws.recv()))
            if frame["type"] not in ("agent_message", "memory_update"):
                continue
            if session is None or frame.get("session_id") == session:
                frames.append(frame)
    return frames
