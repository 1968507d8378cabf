"""The seed's own example subclasses run unchanged against our base classes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import seed_patterns as seed

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.integration.gateway import APIIntegrationGateway as OurAPIGateway
from deep_tree_echo.proto import CognitiveResponse, EchoRequest


class RecordingManager:
    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], str | None]] = []
        self.arrived = asyncio.Event()

    async def broadcast(self, message: dict[str, Any], *, session_id: str | None = None) -> int:
        self.messages.append((message, session_id))
        self.arrived.set()
        return 1


async def test_seed_api_gateway_subclass() -> None:
    gw = seed.APIIntegrationGateway({"test_mode": True})
    # the verbatim subclass leans on the base class's setup_api_endpoints hook
    assert "setup_api_endpoints" not in vars(seed.APIIntegrationGateway)
    await gw.initialize()
    assert gw.aar_gateway.initialized
    result = await gw.process_external_request(
        {"message_type": "test", "data": "test input", "session_id": "test_session"}
    )
    assert result["success"] is True
    assert result["data"]["agent"] == "echo"
    assert 0.0 <= result["metadata"]["confidence"] <= 1.0
    await gw.shutdown()


async def test_seed_integration_test_flow() -> None:
    """The seed's TestAPIIntegration.test_api_integration_flow against our gateway."""
    config = {"test_mode": True}
    test_gateway = AARGateway(config)
    await test_gateway.initialize()
    try:
        integration = OurAPIGateway(config)
        await integration.initialize()
        result = await integration.process_external_request(
            {"message_type": "test", "data": "test input", "session_id": "test_session"}
        )
        assert result["success"] is True
        assert "data" in result
        await integration.shutdown()
    finally:
        await test_gateway.cleanup()


async def test_seed_websocket_integration_subclass() -> None:
    manager = RecordingManager()
    integration = seed.WebSocketIntegration(manager)
    await integration.event_bus.emit("agent.message", {"agent_id": "echo", "message": "hi"})
    assert manager.messages == [({"type": "agent_message", "agent_id": "echo", "message": "hi"},
                                 None)]
    # forward_memory_update is registered but not defined by the seed: the base's default runs
    assert "forward_memory_update" not in vars(seed.WebSocketIntegration)
    await integration.event_bus.emit("memory.update", {"memory_id": "m1", "action": "store"})
    assert manager.messages[-1] == (  # events carry their session (None: it named none)
        {"type": "memory_update", "memory_id": "m1", "action": "store", "session_id": None}, None
    )
    seen: list[dict[str, Any]] = []
    integration.register_echo_handler("user.input", seen.append)
    sent = await integration.emit_to_external("user.message", {"message": "yo", "user_id": "u"})
    assert sent == 1
    assert seen == [{"content": "yo", "user_id": "u"}]


async def test_seed_adapters_subclasses() -> None:
    async with AARGateway({"test_mode": True}) as gw:
        json_adapter = seed.JSONAdapter()
        out = json_adapter.from_echo_format(
            await gw.process_cognitive_input(json_adapter.to_echo_format({"text": "hello"}))
        )
        assert out["status"] == "success" and out["result"]["type"] == "json_input"

        pb = seed.ProtocolBufferAdapter(CognitiveResponse)
        echo_input = pb.to_echo_format(EchoRequest(data="what is echo", session_id="pb"))
        assert echo_input["content"] == {"data": "what is echo", "sessionId": "pb"}
        result = await gw.process_cognitive_input(echo_input)
        for extra in ("stored", "act"):  # agent extras are not proto fields
            result["cognitive_response"].pop(extra, None)
        message = pb.from_echo_format(result)
        assert isinstance(message, CognitiveResponse)
        assert message.agent == "echo" and message.type == "protobuf_input"


async def test_seed_database_plugin_subclass(tmp_path: Path) -> None:
    path = tmp_path / "seed.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('first'), ('second')")
    plugin = seed.DatabaseIntegrationPlugin()
    await plugin.initialize({"test_mode": True, "database": {"url": f"sqlite:///{path}"}})
    try:
        rows = await plugin.query_database("SELECT body FROM notes ORDER BY id")
        assert rows["rows"] == [{"body": "first"}, {"body": "second"}]
        with pytest.raises(ValueError, match="No adapter found for format: xml"):
            await plugin.query_database("x", format_type="xml")
        # the plugin bound its DatabaseGateway to the plugin's Echo gateway
        assert plugin.db_gateway.aar_gateway is plugin.aar_gateway
    finally:
        await plugin.shutdown()
    assert plugin.db_gateway.engine is None
