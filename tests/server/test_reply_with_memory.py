"""A turn's ``agent_message`` stored with its memory (``aar_core._reply``): only what the agent
announced and then returned is claimed as stored; anything else is appended as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from _flock import blocked_on
from _scale_out import recv_events, recv_type
from _server_helpers import live_server, make_settings
from websockets.asyncio.client import connect

from deep_tree_echo.aar_core._reply import PENDING_REPLY, PendingReply
from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory.manager import LOGGED_EVENT_ID
from deep_tree_echo.aar_core.memory.sqlite_writelock import SUFFIX, WriteLock
from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.outbox.relay import EventRelay
from deep_tree_echo.server.outbox.sqlite import SQLiteOutbox
from deep_tree_echo.server.websocket import ConnectionManager


class _Redrafted(Agent):
    """Announces a draft, writes its memory, then returns another text."""

    name = "redrafted"
    handles = frozenset({"redraft"})

    async def handle(self, ctx: AgentContext) -> AgentResult:
        ctx.announce("draft")
        stored = await ctx.memory.add_memory({"content": ctx.text, "session_id": ctx.session_id})
        return AgentResult("final", memory_id=stored.id)


class _Unclaimed(Agent):
    """Announces its reply and writes a memory, but returns no memory id."""

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


async def test_a_reply_is_claimed_by_its_acknowledged_write_not_by_the_memory_id(
    turn: Turn,
) -> None:
    """The write that stored the reply was acknowledged, so the reply stands whatever memory
    id the agent returns: claimed, never stored twice."""
    reply = await turn.post("the lab opens at nine", type_="unclaimed")
    assert reply["text"] == "same"
    await recv_events(turn.ws, 2, session="q")
    stored = await turn.relay.outbox.read(0)
    assert [(e.kind, e.payload.get("message")) for e in stored] == [
        ("memory_update", None), ("agent_message", "same")]
    assert turn.appended == []
    assert turn.announced[0][LOGGED_EVENT_ID] == stored[1].id


async def test_a_reply_stored_in_a_rolled_back_transaction_is_stored_again(
    tmp_path: Path,
) -> None:
    """The announced write shares a batch with a write whose change cannot be logged: the
    whole transaction rolls back, so the reply it noted is not confirmed, and the next write
    of the turn stores it for good."""
    path = tmp_path / "memories.db"
    outbox = SQLiteOutbox(path, poll_interval=0.01)
    store = SQLiteStore(path)
    relay = EventRelay(outbox, ConnectionManager(), EventBus())
    await outbox.open()
    await store.open()
    assert relay.log_changes_of(store)
    lock = WriteLock(str(path))
    lock.open()
    pending = PendingReply("q", "default", "echo")
    pending.announce("hi")

    def put(rid: str, change: dict[str, Any]) -> Coroutine[Any, Any, int | None]:
        record = MemoryRecord(rid, {"content": rid}, Version(1, 0, "n"), 1.0, 1.0)
        return store.put_logged(record, change)

    try:
        # outside any turn a logged write stores its memory_update alone
        assert await put("m0", {"memory_id": "m0"}) == 1
        with lock.held():  # the writer takes the first write, then waits: both share a batch
            token = PENDING_REPLY.set(pending)
            announced = asyncio.ensure_future(put("m1", {"memory_id": "m1", "session_id": "q"}))
            PENDING_REPLY.reset(token)
            await blocked_on(str(path) + SUFFIX)
            # a lone surrogate cannot be bound as UTF-8: this change's event cannot be stored
            unloggable = asyncio.ensure_future(put("m2", {"memory_id": "m2",
                                                          "session_id": "\ud800"}))
            await asyncio.sleep(0)  # let it queue its write behind the first
        for write in (announced, unloggable):
            with pytest.raises(StoreError, match="logging the change of"):
                await write
        assert pending.event_id is None and pending.take() == "hi"
        assert [e.kind for e in await outbox.read(0)] == ["memory_update"]  # m0's alone
        token = PENDING_REPLY.set(pending)
        try:
            update_id = await put("m1", {"memory_id": "m1", "session_id": "q"})
        finally:
            PENDING_REPLY.reset(token)
        events = await outbox.read(1)
        assert [(e.id, e.kind) for e in events] == [
            (update_id, "memory_update"), (pending.event_id, "agent_message")]
        assert events[1].payload == {"agent_id": "echo", "message": "hi"}
        assert pending.take() is None  # stored for good: no later write stores it again
    finally:
        lock.close()
        await relay.stop()
        await store.close()
        await outbox.close()


async def test_the_echo_agents_reply_is_claimed_with_its_memory(turn: Turn) -> None:
    reply = await turn.post("the lab opens at nine")
    # a stored event is dispatched to this worker's clients before the request is answered,
    # and no appender is left waiting for it
    assert turn.relay.head == 2 and turn.relay._waiting == 0
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
        pending.stored(5, 6)  # a log stored it; its write not acknowledged yet
        pending.confirm(4)  # another write's change: not the one that stored it
        assert pending.event_id is None and pending.take() == "hi"
        pending.stored(7, 8)  # a concurrent write of the turn stored it too
        pending.confirm(5)
        assert pending.event_id == 6 and pending.take() is None
        pending.confirm(7)  # the first acknowledged one stays the turn's
        assert pending.event_id == 6
        ctx.announce("again")  # too late: the stored reply stands
        assert pending.text == "hi"
    finally:
        PENDING_REPLY.reset(token)
    closed = PendingReply("s", "default", "echo")
    closed.announce("late")
    closed.close()  # the turn ended: a task it left running stores nothing
    assert closed.take() is None
    closed.announce("later")
    assert closed.text == "late"
