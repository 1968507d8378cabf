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


ACME, GLOBEX = "k-acme-" + "a" * 24, "k-globex-" + "g" * 24


async def test_events_stay_with_their_tenant_whether_forwarded_or_stored(
    tmp_path: Path,
) -> None:
    """One session id in two tenants: a peer's event reaches only its tenant's client, and an
    event this node stores keeps its tenant in the outbox."""
    app = create_app(make_settings(test_mode=False, data_dir=tmp_path / "data",
                                   api_keys=[f"acme:{ACME}", f"globex:{GLOBEX}"]))
    async with live_server(app) as host:
        relay: EventRelay = app.state.event_relay
        bus = app.state.gateway.event_bus
        async with connect(f"ws://{host}/v1/ws?token={ACME}") as acme, \
                connect(f"ws://{host}/v1/ws?token={GLOBEX}") as globex:
            for ws in (acme, globex):
                await ws.send(json.dumps({"type": "subscribe", "session_id": "q"}))
                await recv_type(ws, "subscribed")
            await bus.emit("agent.message", {"session_id": "q", "agent_id": "echo",
                                             "message": "for globex", "tenant": "globex",
                                             ORIGIN_KEY: "node-b"})
            await bus.emit("agent.message", {"session_id": "q", "agent_id": "echo",
                                             "message": "for acme", "tenant": "acme",
                                             ORIGIN_KEY: "node-b"})
            assert [f["message"] for f in await recv_events(acme, 1)] == ["for acme"]
            assert [f["message"] for f in await recv_events(globex, 1)] == ["for globex"]
            await bus.emit("agent.message", {"session_id": "q", "agent_id": "echo",
                                             "message": "stored", "tenant": "globex"})
            stored = await recv_events(globex, 1)
        events = await relay.outbox.read(0)
    assert [(e.kind, e.tenant, e.session_id) for e in events] == [
        ("agent_message", "globex", "q")]
    assert stored[0]["event_id"] == events[0].id
