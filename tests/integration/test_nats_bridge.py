"""NatsEventBridge against a real nats-server: events across nodes, no echo, bad input, auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from _services import nats_server
from websockets.asyncio.client import connect

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.integration.errors import TransportAuthError, TransportError
from deep_tree_echo.integration.nats_bridge import ORIGIN_KEY, NatsEventBridge
from deep_tree_echo.testing._process import free_port
from deep_tree_echo.testing.live_server import EchoServer

GUARD = 15  # seconds: a safety net against hangs, never an assertion about speed


class Recorder:
    """Collects events of the given types from a bus; ``await wait_for(n)`` waits for n of them.

    One handler per type, because the bus hands handlers only the event's data.
    """

    def __init__(self, bus: EventBus, *event_types: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._cond = asyncio.Condition()
        for event_type in event_types:
            bus.register(event_type, self._handler(event_type))

    def _handler(self, event_type: str) -> Callable[[dict[str, Any]], Any]:
        async def record(data: dict[str, Any]) -> None:
            async with self._cond:
                self.events.append((event_type, data))
                self._cond.notify_all()

        return record

    async def wait_for(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        async with asyncio.timeout(GUARD), self._cond:
            await self._cond.wait_for(lambda: len(self.events) >= count)
        return list(self.events)


recorder = Recorder


@asynccontextmanager
async def node(
    url: str, node_id: str, **kwargs: Any
) -> AsyncIterator[tuple[EventBus, NatsEventBridge]]:
    bus = EventBus(name=node_id)
    async with NatsEventBridge(bus, url, node_id=node_id, **kwargs) as bridge:
        yield bus, bridge


@asynccontextmanager
async def raw_client(url: str, **kwargs: Any) -> AsyncIterator[Any]:
    nc = await nats.connect(url, allow_reconnect=False, **kwargs)
    try:
        yield nc
    finally:
        await nc.close()


def envelope(origin: str, event_type: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"origin": origin, "event_type": event_type, "data": data}).encode()


async def test_event_crosses_nodes_once_and_is_not_echoed_back(nats_url: str) -> None:
    async with node(nats_url, "a") as (bus_a, bridge_a), node(nats_url, "b") as (bus_b, bridge_b):
        seen_a = recorder(bus_a, "agent.message")
        seen_b = recorder(bus_b, "agent.message")

        await bus_a.emit("agent.message", {"session_id": "s", "message": "from a"})
        # b gets a's event, re-emitted with the same type and data plus the origin node
        assert await seen_b.wait_for(1) == [
            ("agent.message", {"session_id": "s", "message": "from a", ORIGIN_KEY: "a"})]

        # sentinel: a b -> a event; anything echoed back to a would have arrived before it
        await bus_b.emit("agent.message", {"session_id": "s", "message": "from b"})
        events_a = await seen_a.wait_for(2)
        assert events_a == [
            ("agent.message", {"session_id": "s", "message": "from a"}),  # a's own local emit
            ("agent.message", {"session_id": "s", "message": "from b", ORIGIN_KEY: "b"}),
        ]
        assert seen_b.events[1:] == [("agent.message", {"session_id": "s", "message": "from b"})]
        assert bridge_a.stats["published"] == 1 and bridge_a.stats["received"] == 1
        assert bridge_b.stats["published"] == 1 and bridge_b.stats["received"] == 1
        assert bridge_a.stats["dropped"] == bridge_b.stats["dropped"] == 0


async def test_events_not_in_forward_stay_local(nats_url: str) -> None:
    async with node(nats_url, "a") as (bus_a, _), node(nats_url, "b") as (bus_b, _):
        seen_b = recorder(bus_b, "user.input", "custom.local", "agent.message")
        await bus_a.emit("user.input", {"content": "private", "session_id": "s"})
        await bus_a.emit("custom.local", {"x": 1})
        await bus_a.emit("agent.message", {"message": "sentinel"})  # forwarded, comes last
        events = await seen_b.wait_for(1)
        assert events == [("agent.message", {"message": "sentinel", ORIGIN_KEY: "a"})]


async def test_only_forwarded_types_are_accepted_from_the_wire(nats_url: str) -> None:
    """A peer cannot make this node emit an event type it does not share (e.g. user.input)."""
    async with node(nats_url, "b") as (bus_b, bridge_b), raw_client(nats_url) as nc:
        seen = recorder(bus_b, "user.input", "agent.message")
        await nc.publish("dte.events.user.input", envelope("x", "user.input", {"content": "hi"}))
        await nc.publish("dte.events.agent.message", envelope("x", "agent.message", {"n": 1}))
        assert await seen.wait_for(1) == [("agent.message", {"n": 1, ORIGIN_KEY: "x"})]
        assert bridge_b.drop_reasons == {"not_accepted": 1}


async def test_malformed_messages_are_dropped_and_counted(nats_url: str) -> None:
    async with node(nats_url, "b") as (bus_b, bridge_b), raw_client(nats_url) as nc:
        seen = recorder(bus_b, "agent.message", "bus.handler_error")
        subject = "dte.events.agent.message"
        bad = [
            b"not json at all",
            b"\xff\xfe\x00",  # not even UTF-8
            b"[1, 2, 3]",
            json.dumps({"origin": "x", "event_type": "agent.message"}).encode(),  # no data
            json.dumps({"origin": "", "event_type": "agent.message", "data": {}}).encode(),
            json.dumps({"origin": "x", "event_type": "agent.message", "data": "str"}).encode(),
            envelope("x", "memory.update", {"n": 0}),  # claims another type than its subject
        ]
        for payload in bad:
            await nc.publish(subject, payload)
        await nc.publish(subject, envelope("b", "agent.message", {"mine": True}))  # our own id
        await nc.publish(subject, envelope("x", "agent.message", {"ok": True}))  # sentinel
        assert await seen.wait_for(1) == [("agent.message", {"ok": True, ORIGIN_KEY: "x"})]
        assert bridge_b.stats["dropped"] == len(bad)
        assert bridge_b.stats["ignored"] == 1 and bridge_b.stats["received"] == 1
        assert bridge_b.drop_reasons == {
            "not_json": 2, "invalid_envelope": 4, "subject_mismatch": 1,
        }


async def test_messages_over_one_mib_are_dropped_both_ways() -> None:
    # the server allows 2 MiB, so the bridge's own 1 MiB limit is what is tested
    with nats_server(max_payload=2 * 1024 * 1024) as url:
        async with node(url, "a") as (bus_a, bridge_a), node(url, "b") as (bus_b, bridge_b):
            # outgoing: a refuses to publish it, and the bus sees no handler error
            errors = recorder(bus_a, "bus.handler_error")
            await bus_a.emit("agent.message", {"blob": "y" * (1024 * 1024)})
            assert bridge_a.drop_reasons == {"too_large": 1}
            assert bridge_a.stats["published"] == 0
            assert errors.events == []

            # incoming: a message the server accepts but over the bridge's limit
            seen_a = recorder(bus_a, "agent.message")
            seen_b = recorder(bus_b, "agent.message")
            async with raw_client(url) as nc:
                huge = envelope("x", "agent.message", {"blob": "x" * (1024 * 1024)})
                assert len(huge) > 1024 * 1024
                await nc.publish("dte.events.agent.message", huge)
                await nc.publish("dte.events.agent.message", envelope("x", "agent.message", {}))
                assert await seen_b.wait_for(1) == [("agent.message", {ORIGIN_KEY: "x"})]
                assert await seen_a.wait_for(1) == [("agent.message", {ORIGIN_KEY: "x"})]
            assert bridge_b.drop_reasons == {"too_large": 1}
            assert bridge_a.drop_reasons == {"too_large": 2}


async def test_token_auth_between_nodes() -> None:
    with nats_server(token="s3cret") as url:
        bus = EventBus()
        for token in ("wrong", None):
            bridge = NatsEventBridge(bus, url, node_id="intruder", token=token)
            with pytest.raises(TransportAuthError) as info:
                await bridge.start()
            assert info.value.code == "transport_auth_failed"
            assert not bridge.started
            assert bus.handlers("agent.message") == []  # nothing registered on failure

        async with node(url, "a", token="s3cret") as (bus_a, _), \
                node(url, "b", token="s3cret") as (bus_b, _):
            seen_b = recorder(bus_b, "agent.message")
            await bus_a.emit("agent.message", {"m": 1})
            assert await seen_b.wait_for(1) == [("agent.message", {"m": 1, ORIGIN_KEY: "a"})]


async def test_unreachable_server_is_a_transport_error() -> None:
    bridge = NatsEventBridge(EventBus(), f"nats://127.0.0.1:{free_port()}", node_id="a",
                             connect_timeout=1, reconnect_time_wait=0.05)
    with pytest.raises(TransportError) as info:
        await bridge.start()
    assert not isinstance(info.value, TransportAuthError)
    assert info.value.code == "nats_unavailable"


async def test_reconnects_after_the_server_restarts() -> None:
    port = free_port()
    reconnected = {"a": asyncio.Event(), "b": asyncio.Event()}

    def watcher(name: str) -> Callable[[str], None]:
        def on_change(state: str) -> None:
            if state == "reconnected":
                reconnected[name].set()
        return on_change

    async with AsyncExitStack() as stack:
        with nats_server(port=port) as url:
            bus_a, bridge_a = await stack.enter_async_context(
                node(url, "a", reconnect_time_wait=0.05, on_connection_change=watcher("a")))
            bus_b, bridge_b = await stack.enter_async_context(
                node(url, "b", reconnect_time_wait=0.05, on_connection_change=watcher("b")))
        # the server is gone; start a new one on the same port
        with nats_server(port=port):
            async with asyncio.timeout(GUARD):
                await reconnected["a"].wait()
                await reconnected["b"].wait()
            await bridge_b.flush()  # b's re-sent subscription is live on the new server
            seen_b = recorder(bus_b, "agent.message")
            await bus_a.emit("agent.message", {"after": "restart"})
            assert await seen_b.wait_for(1) == [
                ("agent.message", {"after": "restart", ORIGIN_KEY: "a"})]
            assert bridge_a.stats["reconnects"] == bridge_b.stats["reconnects"] == 1
            await stack.aclose()


async def test_stop_unregisters_and_stops_forwarding(nats_url: str) -> None:
    bus = EventBus()
    bridge = NatsEventBridge(bus, nats_url, node_id="a", forward=["agent.message"])
    await bridge.start()
    assert len(bus.handlers("agent.message")) == 1
    await bridge.stop()
    await bridge.stop()  # idempotent
    assert bus.handlers("agent.message") == []
    assert not bridge.started
    await bus.emit("agent.message", {"m": 1})
    assert bridge.stats["published"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"node_id": ""},
        {"node_id": "a", "forward": ["memory.*"]},
        {"node_id": "a", "forward": ["bad type"]},
        {"node_id": "a", "subject_prefix": "dte.>"},
        {"node_id": "a", "subject_prefix": "dte..events"},
    ],
)
def test_rejects_bad_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        NatsEventBridge(EventBus(), "nats://127.0.0.1:4222", **kwargs)


def test_servers_accepts_comma_separated_urls() -> None:
    bridge = NatsEventBridge(EventBus(), "nats://h1:4222, nats://h2:4222", node_id="a")
    assert bridge.servers == ["nats://h1:4222", "nats://h2:4222"]


@pytest.mark.slow
async def test_websocket_client_on_b_receives_agent_message_processed_on_a(
    nats_url: str, tmp_path: Path
) -> None:
    env = {"DTE_NATS_URL": nats_url, "DTE_RATE_LIMIT_REQUESTS": "0"}
    with EchoServer(tmp_path / "a", env={**env, "DTE_NODE_ID": "node-a"}) as a, \
            EchoServer(tmp_path / "b", env={**env, "DTE_NODE_ID": "node-b"}) as b:
        async with connect(f"{b.ws_url}/v1/ws") as ws, httpx.AsyncClient(base_url=a.url) as http:
            await ws.send(json.dumps({"type": "subscribe", "session_id": "s"}))
            async with asyncio.timeout(GUARD):
                while json.loads(await ws.recv())["type"] != "subscribed":
                    pass
            r = await http.post("/v1/process", json={"data": "hello across nodes",
                                                     "session_id": "s"})
            assert r.status_code == 200, r.text
            assert r.json()["success"] is True, r.text
            text = r.json()["data"]["text"]
            async with asyncio.timeout(GUARD):
                while True:
                    msg = json.loads(await ws.recv())
                    if msg["type"] == "agent_message":
                        break
            assert msg["message"] == text
            metrics = (await httpx.AsyncClient(base_url=b.url).get("/metrics")).text
            assert "dte_nats_connected 1.0" in metrics
            assert "dte_nats_received_total" in metrics
        assert a.running and b.running, a.output() + b.output()
