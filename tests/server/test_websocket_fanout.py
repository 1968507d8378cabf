"""WebSocket fan-out against a real uvicorn server with real ``websockets`` clients."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx
import pytest
from _server_helpers import live_server, make_settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.websocket import ConnectionManager


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await ws.recv()))


async def recv_until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """Next message of type ``kind`` (skipping others, e.g. memory_update), bounded."""
    async with asyncio.timeout(10):
        while True:
            msg = await recv_json(ws)
            if msg["type"] == kind:
                return msg


async def test_slow_client_is_dropped_while_others_keep_receiving() -> None:
    app = create_app(make_settings(ws_queue_size=4))
    manager: ConnectionManager = app.state.ws_manager
    async with live_server(app) as host:
        fast = await connect(f"ws://{host}/v1/ws?session_id=s", max_size=None)
        # max_queue=1: the client library stops reading the socket once one frame is buffered,
        # so a client that never calls recv() really pushes back on the server.
        slow = await connect(f"ws://{host}/v1/ws?session_id=s", max_queue=1, max_size=None)
        try:
            assert manager.active_connections == 2
            # incompressible, so permessage-deflate cannot shrink it away
            payload = os.urandom(128 * 1024).hex()
            sent = 0
            for i in range(2000):  # bounded; lock-step with the fast client
                await manager.broadcast({"type": "blob", "i": i, "p": payload})
                sent += 1
                msg = await recv_json(fast)
                assert msg["i"] == i
                if manager.stats["dropped_slow"]:
                    break
            assert manager.stats["dropped_slow"] == 1, "slow client was never dropped"
            assert manager.active_connections == 1
            # the fast client is unaffected and still receives
            assert await manager.broadcast({"type": "after", "n": 1}) == 1
            assert (await recv_until(fast, "after"))["n"] == 1
            # the slow client, once it reads, finds the close code 1013 (try again later)
            got = 0
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(30):
                    while True:
                        await slow.recv()
                        got += 1
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
            assert got < sent
        finally:
            await fast.close()
            await slow.close()


async def test_user_message_reply_goes_to_its_session_only() -> None:
    app = create_app(make_settings())
    async with (
        live_server(app) as host,
        connect(f"ws://{host}/v1/ws") as alice,
        connect(f"ws://{host}/v1/ws") as bob,
        connect(f"ws://{host}/v1/ws") as alice_watcher,
    ):
        await alice_watcher.send(json.dumps({"type": "subscribe", "session_id": "alice"}))
        assert await recv_json(alice_watcher) == {"type": "subscribed", "session_id": "alice"}
        await bob.send(json.dumps({"type": "subscribe", "session_id": "bob"}))
        assert (await recv_json(bob))["type"] == "subscribed"

        await alice.send(
            json.dumps({"type": "user_message", "session_id": "alice", "message": "hello echo"})
        )
        event = await recv_until(alice, "agent_message")
        assert event["agent_id"] == "echo"
        assert event["session_id"] == "alice"  # events say which session they belong to
        assert isinstance(event["message"], str) and event["message"]
        response = await recv_until(alice, "response")
        assert response["status"] == "success"
        assert response["session_id"] == "alice"
        assert response["cognitive_response"]["text"] == event["message"]
        # another client subscribed to the same session sees the agent's message too
        watched = await recv_until(alice_watcher, "agent_message")
        assert watched["message"] == event["message"]

        # bob's session is separate: a ping round-trip proves nothing for alice was queued first
        await bob.send(json.dumps({"type": "ping"}))
        assert (await recv_json(bob))["type"] == "pong"
        manager: ConnectionManager = app.state.ws_manager
        assert await manager.broadcast({"type": "notice", "text": "all"}) == 3
        assert (await recv_json(bob))["text"] == "all"  # and still nothing from alice's session
        assert (await recv_until(alice, "notice"))["text"] == "all"


async def test_memory_update_events_reach_the_session() -> None:
    app = create_app(make_settings())
    async with live_server(app) as host, connect(f"ws://{host}/v1/ws?session_id=s1") as ws:
        async with httpx.AsyncClient(base_url=f"http://{host}") as http:
            r = await http.put("/v1/memories/m1", json={"content": "tea", "session_id": "s1"})
            assert r.status_code == 201
        update = await recv_until(ws, "memory_update")
        assert update["memory_id"] == "m1"
        assert update["session_id"] == "s1"
        assert update["action"] == "created"


async def test_bad_messages_get_error_replies_and_the_socket_survives() -> None:
    app = create_app(make_settings())
    async with live_server(app) as host, connect(f"ws://{host}/v1/ws") as ws:
        await ws.send("not json")
        assert (await recv_json(ws))["error"]["code"] == "bad_message"
        await ws.send(json.dumps({"type": "frobnicate"}))
        assert (await recv_json(ws))["error"]["code"] == "unknown_type"
        await ws.send(json.dumps({"type": "subscribe"}))
        assert (await recv_json(ws))["error"]["code"] == "bad_message"
        await ws.send(json.dumps({"type": "user_message", "session_id": "s", "message": ""}))
        response = await recv_until(ws, "response")
        assert response["status"] == "error"
        assert response["session_id"] == "s"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"


async def test_error_frames_keep_the_request_session_id() -> None:
    app = create_app(make_settings())
    async with live_server(app) as host, connect(f"ws://{host}/v1/ws") as ws:
        await ws.send(json.dumps({"type": "frobnicate", "session_id": "s9"}))
        error = await recv_json(ws)
        assert error["error"]["code"] == "unknown_type"
        assert error["session_id"] == "s9"
        await ws.send(json.dumps({"type": "frobnicate"}))
        assert "session_id" not in await recv_json(ws)  # none given, none invented


async def test_a_binary_frame_closes_with_1003_and_a_reason() -> None:
    app = create_app(make_settings())
    async with live_server(app) as host, connect(f"ws://{host}/v1/ws") as ws:
        await ws.send(b"\x00\x01 binary")
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003
        assert "binary" in closed.value.rcvd.reason


async def test_invalid_session_id_query_values_are_refused() -> None:
    app = create_app(make_settings())
    manager: ConnectionManager = app.state.ws_manager
    long_id = "x" * 129
    async with (
        live_server(app) as host,
        connect(f"ws://{host}/v1/ws?session_id=ok&session_id={long_id}") as ws,
    ):
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["error"]["code"] == "bad_message"
        assert "128" in error["error"]["message"]
        [client] = manager.clients()
        assert client.sessions == {"ok"}
        assert manager.clients(long_id) == []


async def test_server_sends_application_pings_when_idle() -> None:
    app = create_app(make_settings(ws_ping_interval=0.05))
    async with (
        live_server(app, ws_ping_interval=0.05) as host,
        connect(f"ws://{host}/v1/ws") as ws,
    ):
        assert (await recv_until(ws, "ping"))["type"] == "ping"


@pytest.mark.parametrize("how", ["header", "query"])
async def test_websocket_auth_accepts_valid_key(how: str) -> None:
    app = create_app(make_settings(api_keys="sekrit"))
    async with live_server(app) as host:
        if how == "header":
            ws = await connect(
                f"ws://{host}/v1/ws", additional_headers={"Authorization": "Bearer sekrit"}
            )
        else:
            ws = await connect(f"ws://{host}/v1/ws?token=sekrit")
        async with ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv_json(ws))["type"] == "pong"


@pytest.mark.parametrize("suffix", ["", "?token=wrong"])
async def test_websocket_auth_rejects_with_1008(suffix: str) -> None:
    app = create_app(make_settings(api_keys="sekrit"))
    async with live_server(app) as host, connect(f"ws://{host}/v1/ws{suffix}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
    assert app.state.ws_manager.stats["connected_total"] == 0


def sub(kind: str, session_id: str) -> str:
    return json.dumps({"type": kind, "session_id": session_id})


async def test_subscriptions_per_client_are_capped_and_unsubscribe_frees_a_slot() -> None:
    app = create_app(make_settings(ws_max_subscriptions=3))
    manager: ConnectionManager = app.state.ws_manager
    assert manager.max_subscriptions == 3
    async with (
        live_server(app) as host,
        connect(f"ws://{host}/v1/ws") as ws,
        connect(f"ws://{host}/v1/ws") as other,
    ):
        for s in ("a", "b", "c"):
            await ws.send(sub("subscribe", s))
            assert await recv_json(ws) == {"type": "subscribed", "session_id": s}
        await ws.send(sub("subscribe", "d"))
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["error"]["code"] == "too_many_subscriptions"
        assert "3" in error["error"]["message"]
        # a user message for a new session is refused the same way, and not processed
        await ws.send(json.dumps({"type": "user_message", "session_id": "e", "message": "hi"}))
        assert (await recv_json(ws))["error"]["code"] == "too_many_subscriptions"
        # re-subscribing to a followed session is fine at the cap
        await ws.send(sub("subscribe", "a"))
        assert await recv_json(ws) == {"type": "subscribed", "session_id": "a"}
        # the cap is per client: another socket still subscribes
        await other.send(sub("subscribe", "d"))
        assert await recv_json(other) == {"type": "subscribed", "session_id": "d"}

        assert await manager.broadcast({"type": "note"}, session_id="d") == 1  # only `other`
        assert (await recv_json(other))["type"] == "note"
        await ws.send(sub("unsubscribe", "b"))
        assert await recv_json(ws) == {"type": "unsubscribed", "session_id": "b"}
        await ws.send(sub("subscribe", "d"))
        assert await recv_json(ws) == {"type": "subscribed", "session_id": "d"}
        assert await manager.broadcast({"type": "note", "n": 2}, session_id="d") == 2
        assert (await recv_json(ws)) == {"type": "note", "n": 2}
        assert await manager.broadcast({"type": "note"}, session_id="b") == 0
        [server_side] = [c for c in manager.clients() if c.sessions == {"a", "c", "d"}]
        assert len(server_side.sessions) == 3


async def test_initial_session_ids_beyond_the_cap_are_refused() -> None:
    app = create_app(make_settings(ws_max_subscriptions=2))
    manager: ConnectionManager = app.state.ws_manager
    async with (
        live_server(app) as host,
        connect(f"ws://{host}/v1/ws?session_id=x&session_id=x&session_id=y&session_id=z") as ws,
    ):
        error = await recv_json(ws)
        assert error["error"]["code"] == "too_many_subscriptions"
        assert "'z'" in error["error"]["message"]
        [client] = manager.clients()
        assert client.sessions == {"x", "y"}
        assert manager.clients("z") == []


async def test_disconnected_clients_leave_no_sessions_in_the_index() -> None:
    app = create_app(make_settings(ws_max_subscriptions=50))
    manager: ConnectionManager = app.state.ws_manager
    async with live_server(app) as host:
        sockets = [await connect(f"ws://{host}/v1/ws?session_id=shared") for _ in range(3)]
        for n, ws in enumerate(sockets):
            for i in range(40):
                await ws.send(sub("subscribe", f"s{n}-{i}"))
            for _ in range(40):
                assert (await recv_json(ws))["type"] == "subscribed"
        assert manager.subscribed_sessions == 1 + 3 * 40
        server_side = manager.clients()
        assert len(server_side) == 3
        for ws in sockets:
            await ws.close()
        for client in server_side:  # the server has finished tearing each one down
            async with asyncio.timeout(10):
                await client.finished.wait()
        assert manager.active_connections == 0
        assert manager.subscribed_sessions == 0
        assert manager.clients("shared") == []


def test_ws_max_subscriptions_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_settings().ws_max_subscriptions == 100
    monkeypatch.setenv("DTE_WS_MAX_SUBSCRIPTIONS", "7")
    app = create_app(make_settings())
    assert app.state.ws_manager.max_subscriptions == 7
