"""The plugin's fixtures used directly by this suite: gateway, in-process client, real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.testing import EchoServer, IntegrationTestFramework


async def test_echo_framework_is_fresh_and_not_strict(
    echo_framework: IntegrationTestFramework,
) -> None:
    assert isinstance(echo_framework, IntegrationTestFramework)
    assert echo_framework.strict is False
    assert echo_framework.mock_services == {}
    assert echo_framework.test_data == {}


async def test_echo_gateway_is_initialised_on_temporary_sqlite(echo_gateway: AARGateway) -> None:
    assert echo_gateway.initialized
    assert echo_gateway.settings.store_kind == "sqlite"
    data_dir = echo_gateway.settings.data_dir
    assert data_dir is not None and data_dir.is_dir()
    await echo_gateway.memory.store_memory("m1", {"text": "kept on disk"})
    assert (data_dir / "memories.db").exists()
    assert await echo_gateway.memory.retrieve_memory("m1") == {"text": "kept on disk"}


async def test_echo_gateway_processes_input(echo_gateway: AARGateway) -> None:
    result = await echo_gateway.process_cognitive_input(
        {"type": "text", "content": "hello echo", "context": {"session_id": "s1"}}
    )
    assert result["status"] == "success"
    assert result["session_id"] == "s1"


class TestInMemoryConfig:
    @pytest.fixture
    def echo_config(self) -> dict[str, Any]:
        return {"test_mode": True}

    async def test_test_mode_keeps_memories_in_memory(self, echo_gateway: AARGateway) -> None:
        assert echo_gateway.settings.store_kind == "memory"
        assert echo_gateway.settings.data_dir is None


async def test_echo_client_talks_to_the_app_in_process(
    echo_client: httpx.AsyncClient, echo_gateway: AARGateway
) -> None:
    assert (await echo_client.get("/healthz")).json()["status"] == "ok"
    ready = await echo_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["node_id"] == echo_gateway.node_id

    put = await echo_client.put("/v1/memories/note-1", json={"text": "via http"})
    assert put.status_code == 201
    # the client's app serves the echo_gateway fixture's gateway
    assert await echo_gateway.memory.retrieve_memory("note-1") == {"text": "via http"}

    processed = await echo_client.post(
        "/v1/process", json={"message_type": "text", "data": "hi", "session_id": "s2"}
    )
    assert processed.status_code == 200
    assert processed.json()["success"] is True


async def test_echo_client_ran_the_lifespan(echo_client: httpx.AsyncClient) -> None:
    # /metrics renders through app.state set up by the app; it fails without the app's startup
    response = await echo_client.get("/metrics")
    assert response.status_code == 200


@pytest.mark.slow
def test_echo_server_is_a_real_process(echo_server: EchoServer) -> None:
    assert echo_server.running
    assert echo_server.url == f"http://127.0.0.1:{echo_server.port}"
    assert echo_server.process.poll() is None
    assert isinstance(echo_server.data_dir, Path) and echo_server.data_dir.is_dir()
    response = httpx.get(f"{echo_server.url}/readyz", timeout=10)
    assert response.status_code == 200
    assert response.json()["store"] == "sqlite"


@pytest.mark.slow
def test_echo_server_kill_and_restart_keep_acknowledged_data(echo_server: EchoServer) -> None:
    put = httpx.put(f"{echo_server.url}/v1/memories/durable", json={"v": 1}, timeout=10)
    assert put.status_code == 201
    first_pid = echo_server.process.pid

    echo_server.kill()
    assert not echo_server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{echo_server.url}/healthz", timeout=5)

    echo_server.restart()
    assert echo_server.running and echo_server.process.pid != first_pid
    got = httpx.get(f"{echo_server.url}/v1/memories/durable", timeout=10)
    assert got.status_code == 200
    assert got.json()["data"] == {"v": 1}
