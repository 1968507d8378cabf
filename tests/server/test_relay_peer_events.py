"""Events a NATS peer forwards (``ORIGIN_KEY`` set) reach this node's WebSocket clients of the
session straight away, and are never stored in an outbox the peer does not share."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from _scale_out import recv_events, recv_type
from _server_helpers import live_server, make_settings
from websockets.asyncio.client import connect

from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.nats_bridge import ORIGIN_KEY
from deep_tree_echo.server.outbox.relay import EventRelay


async def test_a_peers_events_reach_local_clients_of_the_session_unstored(
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(test_mode=False, data_dir=tmp_path / "data"))
    async with live_server(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        relay: EventRelay = app.state.event_relay
        assert not relay.outbox.shared_between_nodes  # SQLite: this node's file only
        bus = app.state.gateway.event_bus
        async with connect(f"ws://{host}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "subscribe", "session_id": "q"}))
            await recv_type(ws, "subscribed")
            await bus.emit("agent.message", {"session_id": "other", "agent_id": "echo",
                                             "message": "not yours", ORIGIN_KEY: "node-b"})
            await bus.emit("agent.message", {"session_id": "q", "agent_id": "echo",
                                             "message": "from b", ORIGIN_KEY: "node-b"})
            await bus.emit("memory.update", {"session_id": "q", "memory_id": "m9",
                                             "action": "created", "version": "v9",
                                             ORIGIN_KEY: "node-b"})
            frames = await recv_events(ws, 2)  # the other session's never comes first
            reply = await http.post("/v1/process", json={"data": "the lab opens at nine",
                                                         "session_id": "q"})
            assert reply.status_code == 200, reply.text
            local = await recv_events(ws, 2, session="q")
        stored = await relay.outbox.read(0)
    assert frames == [
        {"type": "agent_message", "agent_id": "echo", "message": "from b", "session_id": "q"},
        {"type": "memory_update", "memory_id": "m9", "action": "created", "version": "v9",
         "session_id": "q"},
    ]
    # only this node's own turn was stored, and its events carry ids the peer's do not
    assert [e.kind for e in stored] == ["memory_update", "agent_message"]
    assert [f["event_id"] for f in local] == [e.id for e in stored]
    assert relay.stats["appended"] == 2
