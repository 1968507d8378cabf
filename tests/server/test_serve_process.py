"""A real ``deep-tree-echo serve`` process: HTTP, WebSocket, and the SIGKILL crash test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from deep_tree_echo.testing._process import ManagedProcess, free_port, start_process

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("deep-tree-echo"))


@contextmanager
def serve(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[tuple[ManagedProcess, str]]:
    port = free_port()
    cmd = [CLI, "serve", "--port", str(port), "--data-dir", str(data_dir), *extra]
    proc_env = {**os.environ, "DTE_RATE_LIMIT_REQUESTS": "0", **(env or {})}
    managed = start_process(cmd, ready=r"Uvicorn running on", env=proc_env)
    try:
        yield managed, f"127.0.0.1:{port}"
    finally:
        managed.stop()


async def test_serve_speaks_http_and_websocket(tmp_path: Path) -> None:
    with serve(tmp_path / "data") as (_, host):
        async with httpx.AsyncClient(base_url=f"http://{host}") as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).json()["store"] == "sqlite"
            r = await http.post("/v1/process", json={"data": "hello", "session_id": "p"})
            assert r.status_code == 200 and r.json()["success"] is True
        async with connect(f"ws://{host}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "user_message", "session_id": "w", "message": "hi"}))
            seen: dict[str, dict[str, Any]] = {}
            async with asyncio.timeout(10):
                while "response" not in seen:
                    msg = json.loads(await ws.recv())
                    seen.setdefault(msg["type"], msg)
            assert (
                seen["agent_message"]["message"] == seen["response"]["cognitive_response"]["text"]
            )
    assert (tmp_path / "data" / "memories.db").exists()


async def test_every_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    kill_after = 150
    acked: dict[str, dict[str, Any]] = {}
    with serve(data_dir) as (managed, host):
        killed = asyncio.Event()

        async def writer(w: int, http: httpx.AsyncClient) -> None:
            for i in range(5000):  # bounded; normally stopped by the kill long before
                memory_id = f"w{w}-{i}"
                data = {"content": f"writer {w} item {i}", "n": i}
                try:
                    r = await http.put(f"/v1/memories/{memory_id}", json=data)
                except httpx.TransportError:
                    assert killed.is_set(), "server failed before it was killed"
                    return
                assert r.status_code == 201, r.text
                acked[memory_id] = data
                if len(acked) >= kill_after and not killed.is_set():
                    killed.set()
                    managed.proc.send_signal(signal.SIGKILL)  # other writes are in flight

        limits = httpx.Limits(max_keepalive_connections=0)  # a connection per request
        async with httpx.AsyncClient(base_url=f"http://{host}", limits=limits) as http:
            await asyncio.gather(*(writer(w, http) for w in range(8)))
        assert killed.is_set()
        assert managed.proc.wait(timeout=10) == -signal.SIGKILL

    assert len(acked) >= kill_after
    with serve(data_dir) as (_, host):
        async with httpx.AsyncClient(base_url=f"http://{host}") as http:
            missing = []
            for memory_id, data in acked.items():
                r = await http.get(f"/v1/memories/{memory_id}")
                if r.status_code != 200 or r.json()["data"] != data:
                    missing.append((memory_id, r.status_code))
            assert missing == []
            # and the restarted server still takes writes
            r = await http.put("/v1/memories/after-restart", json={"content": "ok"})
            assert r.status_code == 201
