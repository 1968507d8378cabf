"""A turn's ``agent_message`` stored with its memory (``aar_core._reply``): only what the agent
announced and then returned is claimed as stored; anything else is appended as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _scale_out import recv_events, recv_type
from _server_helpers import live_server, make_settings
from websockets.asyncio.client import connect

from deep_tree_echo.aar_core._reply import PENDING_REPLY, PendingReply
from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.aar_core.memory.manager import LOGGED_EVENT_ID
from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.outbox.relay import EventRelay


class _Redrafted(Agent):
    """Announces a draft, writes its memory, then returns another text."""

    name = "redrafted"
    handles = frozenset({"redraft"})

    async def handle(self, ctx: AgentContext) -> AgentResult:
        ctx.announce("draft")
        stored = await ctx.memory.add_memory({"content": ctx.text, "session_id": ctx.session_id})
        return AgentResult("final", memory_id=stored.id)


class _Unclaimed(Agent):
    """Announces its reply and writes a memory, but returns no memory id (as an agent that
    swallowed a failed write and answered anyway would)."""

    name = "unclaimed"
    handles = frozenset({"unclaimed"})

    async def handle(self, ctx: AgentContext) -> AgentResult:
        ctx.announce("same")
        await ctx.memory.add_memory({"content": ctx.text, "session_id": ctx.session_id})
        return AgentResult("same")


class _Silent(Agent):
    """Writes the turn's memory without announcing its reply."""

    name = "silent"
    handles = frozenset({"silent"})

    async def handle(self, ctx: AgentContext) -> AgentResult:
        stored = await ctx.memory.add_memory({"content": ctx.text, "session_id": ctx.session_id})
        return AgentResult("ok", memory_id=stored.id)


class Turn:
    """A live SQLite-backed server, a WebSocket client of session ``q``, and what went
    through the relay's ``append`` (events not stored with a memory change)."""

    def __init__(self, app: Any, http: httpx.AsyncClient, ws: Any) -> None:
        self.app, self.http, self.ws = app, http, ws
        self.relay: EventRelay = app.state.event_relay
        self.appended: list[str] = []
        self.announced: list[dict[str, Any]] = []
        real_append = self.relay.outbox.append

        async def append(kind: str, *args: Any, **kwargs: Any) -> int:
            self.appended.append(kind)
            return await real_append(kind, *args, **kwargs)

        self.relay.outbox.append = append  # type: ignore[method-assign]
        app.state.gateway.event_bus.register("agent.message", self.announced.append)

    async def post(self, text: str, type_: str = "text") -> dict[str, Any]:
        reply = await self.http.post("/v1/process", json={"data": text, "session_id": "q",
                                                          "message_type": type_})
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()["data"]
        return data


@pytest.fixture
async def turn(tmp_path: Path) -> AsyncIterator[Turn]:
    app = create_app(make_settings(test_mode=False, data_dir=tmp_path / "data"))
    app.state.gateway.register_agent(_Redrafted())
    app.state.gateway.register_agent(_Unclaimed())
    app.state.gateway.register_agent(_Silent())
    async with live_server(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        assert app.state.gateway.memory.store.logs_changes
        async with connect(f"ws://{host}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "subscribe", "session_id": "q"}))
            await recv_type(ws, "subscribed")
            yield Turn(app, http, ws)


async def test_a_reply_without_a_memory_write_is_appended(turn: Turn) -> None:
    reply = await turn.post("hello")  # a greeting: answered without writing a memory
    frames = await recv_events(turn.ws, 1, session="q")
    stored = await turn.relay.outbox.read(0)
    assert turn.appended == ["agent_message"]
    assert [(e.kind, e.payload["message"]) for e in stored] == [("agent_message", reply["text"])]
    assert frames == [stored[0].frame()]
    assert LOGGED_EVENT_ID not in turn.announced[0]


async def test_a_reply_not_announced_is_appended_after_its_memory(turn: Turn) -> None:
    await turn.post("the lab opens at nine", type_="silent")
    await recv_events(turn.ws, 2, session="q")
    stored = await turn.relay.outbox.read(0)
    assert [(e.kind, e.payload.get("message")) for e in stored] == [
        ("memory_update", None), ("agent_message", "ok")]
    assert turn.appended == ["agent_message"]


async def test_a_reply_other_than_the_announced_one_is_appended_after_it(turn: Turn) -> None:
    """The announced draft was committed with the memory and stays; the gateway does not
    claim it for the returned text, which is appended like any event."""
    reply = await turn.post("the lab opens at nine", type_="redraft")
    assert reply["text"] == "final"
    frames = await recv_events(turn.ws, 3, session="q")
    stored = await turn.relay.outbox.read(0)
    assert [(e.kind, e.payload.get("message")) for e in stored] == [
        ("memory_update", None), ("agent_message", "draft"), ("agent_message", "final")]
    assert frames == [e.frame() for e in stored]
    assert turn.appended == ["agent_message"]
    assert LOGGED_EVENT_ID not in turn.announced[0]


async def test_a_reply_returned_without_its_memory_is_appended_again(turn: Turn) -> None:
    """Only the memory whose write stored the reply vouches for it: a result without that
    memory's id may come from a write that was rolled back, so the event is appended."""
    await turn.post("the lab opens at nine", type_="unclaimed")
    await recv_events(turn.ws, 3, session="q")
    stored = await turn.relay.outbox.read(0)
    assert [(e.kind, e.payload.get("message")) for e in stored] == [
        ("memory_update", None), ("agent_message", "same"), ("agent_message", "same")]
    assert turn.appended == ["agent_message"]


async def test_the_echo_agents_reply_is_claimed_with_its_memory(turn: Turn) -> None:
    reply = await turn.post("the lab opens at nine")
    frames = await recv_events(turn.ws, 2, session="q")
    stored = await turn.relay.outbox.read(0)
    assert [(e.kind, e.payload.get("message")) for e in stored] == [
        ("memory_update", None), ("agent_message", reply["text"])]
    assert frames == [e.frame() for e in stored]
    assert turn.appended == []
    assert turn.announced[0][LOGGED_EVENT_ID] == stored[1].id


def test_announce_outside_a_turn_does_nothing_and_a_reply_is_stored_once() -> None:
    ctx = AgentContext(None, "text", "x", "x", {}, None, None, None)  # type: ignore[arg-type]
    ctx.announce("ignored")  # no turn open: nothing to record it in
    assert PENDING_REPLY.get() is None
    pending = PendingReply("s", "default", "echo")
    token = PENDING_REPLY.set(pending)
    try:
        assert pending.take() is None  # nothing announced yet
        ctx.announce("hi")
        assert pending.take() == "hi"
        pending.event_id = 7  # a change log stored it
        assert pending.take() is None
        ctx.announce("again")  # too late: the stored reply stands
        assert pending.text == "hi"
    finally:
        PENDING_REPLY.reset(token)
