"""The event outbox on each store, against real SQLite and a real PostgreSQL: ids increase in
commit order, a second reader (another worker or node) is woken by the change, and resuming
from before the retention window is a clear ``events_expired`` error."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from _flock import blocked_on
from _scale_out import recv_events, recv_json, recv_type
from _server_helpers import live_server, make_settings
from websockets.asyncio.client import connect

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.memory.manager import LOGGED_EVENT_ID
from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.errors import OutboxError
from deep_tree_echo.server.outbox import EventOutbox, MemoryOutbox
from deep_tree_echo.server.outbox.postgres import PostgresOutbox
from deep_tree_echo.server.outbox.relay import EventRelay
from deep_tree_echo.server.outbox.sqlite import SQLiteOutbox
from deep_tree_echo.server.websocket import ConnectionManager

Pair = Callable[[], Awaitable[tuple[EventOutbox, EventOutbox]]]


@pytest.fixture(params=["sqlite", "postgres"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[EventOutbox, EventOutbox]]:
    """Two outboxes on one store, as two workers (or nodes) would open it."""
    if request.param == "sqlite":
        path = tmp_path / "memories.db"
        a: EventOutbox = SQLiteOutbox(path, poll_interval=0.01)
        b: EventOutbox = SQLiteOutbox(path, poll_interval=0.01)
    else:
        url = request.getfixturevalue("postgres_url")
        a, b = PostgresOutbox(url), PostgresOutbox(url)
    await a.open()
    await b.open()
    if isinstance(a, PostgresOutbox):  # the session's database is shared by tests: start clean
        await a.purge(time.time() + 1)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_appends_of_two_writers_are_read_in_id_order_by_both(
    pair: tuple[EventOutbox, EventOutbox],
) -> None:
    a, b = pair
    start = await a.head()
    b.changed.clear()
    first = await a.append("agent_message", "s1", {"message": "from a"}, time.time())
    async with asyncio.timeout(10):
        await b.changed.wait()  # the other worker is woken by the change, not by a sleep
    got = await b.read(start)
    assert [(e.id, e.payload) for e in got] == [(first, {"message": "from a"})]

    # concurrent appends from both: every id once, increasing, nothing skipped by a tailer
    async def burst(outbox: EventOutbox, tag: str) -> list[int]:
        return list(await asyncio.gather(*(
            outbox.append("memory_update", f"s{i % 3}", {"n": f"{tag}{i}"}, time.time())
            for i in range(50)
        )))

    ids_a, ids_b = await asyncio.gather(burst(a, "a"), burst(b, "b"))
    assert ids_a == sorted(ids_a) and ids_b == sorted(ids_b)
    everything = await a.read(first, limit=1000)
    assert [e.id for e in everything] == sorted(ids_a + ids_b)
    by_id = {e.id: e for e in everything}  # each append got the id of its own row
    for tag, ids in (("a", ids_a), ("b", ids_b)):
        assert [(by_id[n].payload, by_id[n].session_id) for n in ids] == [
            ({"n": f"{tag}{i}"}, f"s{i % 3}") for i in range(50)
        ]
    assert await b.head() == max(ids_a + ids_b)
    only_s1 = await b.read(first, session_id="s1", limit=1000)
    assert only_s1 and {e.session_id for e in only_s1} == {"s1"}
    capped = await b.read(first, upto=everything[9].id)
    assert [e.id for e in capped] == [e.id for e in everything[:10]]


async def test_a_batch_of_appends_keeps_every_field_as_given(
    pair: tuple[EventOutbox, EventOutbox],
) -> None:
    a, b = pair
    at = time.time()
    events = [
        ("agent_message", None, {"text": "Grüße, 世界 \u2028 \"quoted\"", "n": [1, 2.5, None]},
         at + 0.123456789, "default"),
        ("memory_update", "s-ü", {}, at, "tenant-b"),
        ("agent_message", "s", {"deep": {"x": True}}, 1e-3, "default"),
    ]
    ids = await asyncio.gather(*(a.append(*event) for event in events))
    got = {e.id: e for e in await b.read(min(ids) - 1, limit=10)}
    assert [(got[n].kind, got[n].session_id, got[n].payload, got[n].created_at, got[n].tenant)
            for n in ids] == events


async def test_insert_returns_the_id_of_each_row_in_order(
    pair: tuple[EventOutbox, EventOutbox],
) -> None:
    a, b = pair  # the contract every outbox's batch insert keeps, seen from the other worker
    start = await a.head()
    rows = [("agent_message", "s", '{"i":1}', time.time(), "default"),
            ("memory_update", None, "{}", time.time(), "t2")]
    ids = await a._insert(rows)
    assert [(e.id, e.kind, e.tenant) for e in await b.read(start)] == [
        (ids[0], "agent_message", "default"), (ids[1], "memory_update", "t2")
    ] and len(ids) == 2


async def test_purge_remembers_what_it_removed(pair: tuple[EventOutbox, EventOutbox]) -> None:
    a, b = pair
    old = await a.append("agent_message", "s", {"message": "old"}, time.time() - 100)
    new = await a.append("agent_message", "s", {"message": "new"}, time.time())
    assert await b.purge(time.time() - 50) >= 1
    assert await a.purged_through() == old
    assert [e.id for e in await a.read(0)] == [new]
    assert await a.head() == new
    assert await a.purge(time.time() - 50) == 0  # nothing older is left
    assert await b.purged_through() == old


async def test_memory_outbox_keeps_a_bounded_window() -> None:
    outbox = MemoryOutbox(max_events=3)
    ids = [await outbox.append("agent_message", "s", {"i": i}, time.time()) for i in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert [e.id for e in await outbox.read(0)] == [3, 4, 5]
    assert await outbox.purged_through() == 2


async def test_resume_past_the_window_is_a_clear_error() -> None:
    app = create_app(make_settings())
    async with live_server(app) as host, connect(f"ws://{host}/v1/ws") as ws:
        await ws.send(json.dumps({"type": "user_message", "session_id": "s",
                                  "message": "the vault code is 7741"}))  # a fact: stored
        first = await recv_json(ws)
        while first["type"] != "agent_message":
            first = await recv_json(ws)
        relay: EventRelay = app.state.event_relay
        await relay.outbox.purge(time.time() + 1)  # as if the retention window had passed

        await ws.send(json.dumps({"type": "subscribe", "session_id": "s", "since": 0}))
        frame = await recv_json(ws)
        while frame["type"] == "response":
            frame = await recv_json(ws)
        assert frame["type"] == "error" and frame["session_id"] == "s"
        assert frame["error"]["code"] == "events_expired"
        assert "retention" in frame["error"]["message"]

        # from the newest event on, resuming works again
        await ws.send(json.dumps({"type": "subscribe", "session_id": "s",
                                  "since": first["event_id"]}))
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.send(json.dumps({"type": "subscribe", "session_id": "s", "since": -1}))
        assert (await recv_json(ws))["error"]["code"] == "bad_message"
        async with httpx.AsyncClient(base_url=f"http://{host}") as http:
            metrics = (await http.get("/metrics")).text
        assert "dte_events_resumed_total 1.0" in metrics
        assert "dte_events_appended_total 2.0" in metrics  # memory_update + agent_message


async def test_the_relay_stops_when_a_wake_up_meets_the_cancel() -> None:
    """A change signalled in the same loop step as the shutdown's cancel must not keep the tail
    loop alive (Python 3.11's ``wait_for`` returned instead of raising there: shutdown hung)."""
    outbox = MemoryOutbox()
    relay = EventRelay(outbox, ConnectionManager(), EventBus())
    await relay.start()
    tasks = list(relay._tasks)
    await asyncio.sleep(0)  # the tail task is now waiting for a change
    outbox.changed.set()  # a wake-up ...
    async with asyncio.timeout(10):  # a bound on a hang, not a timing assertion
        await relay.stop()  # ... and the cancel, in one step
    assert all(t.done() and t.cancelled() for t in tasks), tasks


async def test_an_append_right_after_open_wakes_the_other_outbox(tmp_path: Path) -> None:
    """The change watch takes its baseline inside ``open()``: a commit that lands before the
    watch thread's first look still wakes the tailer (it once became the baseline, unseen)."""
    path = tmp_path / "memories.db"
    writer = SQLiteOutbox(path, poll_interval=0.01)
    await writer.open()
    try:
        for i in range(30):
            reader = SQLiteOutbox(path, poll_interval=0.01)
            await reader.open()
            try:
                await writer.append("agent_message", "s", {"n": i}, time.time())
                async with asyncio.timeout(10):
                    await reader.changed.wait()
            finally:
                await reader.close()
    finally:
        await writer.close()


async def test_outbox_writes_wait_for_the_files_write_lock(tmp_path: Path) -> None:
    """The outbox takes the same kernel write lock as the memory store of its file."""
    from deep_tree_echo.aar_core.memory.sqlite_writelock import SUFFIX, WriteLock

    path = tmp_path / "memories.db"
    outbox = SQLiteOutbox(path, poll_interval=0.01)
    await outbox.open()
    lock = WriteLock(str(path))
    lock.open()
    try:
        with lock.held():
            append = asyncio.ensure_future(
                outbox.append("agent_message", "s", {"n": 1}, time.time())
            )
            await blocked_on(str(path) + SUFFIX)  # the outbox's writer waits for our lock
            assert not append.done()
        assert await append >= 1
    finally:
        lock.close()
        await outbox.close()


async def test_in_process_events_answered_with_no_client_are_resumed_exactly() -> None:
    """With no WebSocket client, the in-process relay only stores events and moves its cursor;
    a client that subscribes later with ``since`` gets each of them once, in order, with the
    payload a live client gets, and then the live ones."""
    app = create_app(make_settings())
    async with live_server(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        for text in ("the vault code is 7741", "the lab opens at nine"):
            reply = await http.post("/v1/process", json={"data": text, "session_id": "q"})
            assert reply.status_code == 200, reply.text
        relay: EventRelay = app.state.event_relay
        assert relay.head == await relay.outbox.head() == 4
        assert relay.stats["dispatched"] == relay.stats["appended"] == 4

        async with connect(f"ws://{host}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "subscribe", "session_id": "q", "since": 1}))
            assert (await recv_type(ws, "subscribed"))["since"] == 1
            missed = await recv_events(ws, 3, session="q")
            await http.post("/v1/process", json={"data": "the bus leaves at ten",
                                                 "session_id": "q"})
            live = await recv_events(ws, 2, session="q")

    frames = missed + live
    assert [f["event_id"] for f in frames] == [2, 3, 4, 5, 6]
    assert [f["type"] for f in frames] == ["agent_message", "memory_update", "agent_message",
                                           "memory_update", "agent_message"]
    for frame in frames:
        assert frame["session_id"] == "q"
        if frame["type"] == "agent_message":
            assert list(frame) == ["type", "agent_id", "message", "event_id", "session_id"]
            assert isinstance(frame["message"], str) and frame["message"]
        else:
            assert list(frame) == ["type", "memory_id", "action", "version", "event_id",
                                   "session_id"]
            assert frame["action"] == "created" and frame["version"]


async def test_sqlite_memory_updates_are_stored_with_their_memory_change(tmp_path: Path) -> None:
    """On the SQLite store the store writes each ``memory_update`` in the transaction of the
    change it reports (not appended afterwards by the relay), and the turn's ``agent_message``
    (announced by the agent) right after it, in the same transaction; clients get them
    exactly as appended ones, in that order; shutdown detaches the log."""
    app = create_app(make_settings(test_mode=False, data_dir=tmp_path / "data"))
    appended: list[str] = []
    async with live_server(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        relay: EventRelay = app.state.event_relay
        store = app.state.gateway.memory.store
        assert store.logs_changes
        real_append = relay.outbox.append

        async def append(kind: str, *args: Any, **kwargs: Any) -> int:
            appended.append(kind)
            return await real_append(kind, *args, **kwargs)

        relay.outbox.append = append  # type: ignore[method-assign]
        announced: list[dict[str, Any]] = []
        app.state.gateway.event_bus.register("memory.update", announced.append)
        app.state.gateway.event_bus.register("agent.message", announced.append)
        commits = store.commits
        async with connect(f"ws://{host}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "subscribe", "session_id": "q"}))
            await recv_type(ws, "subscribed")
            reply = await http.post("/v1/process", json={"data": "the lab opens at nine",
                                                         "session_id": "q"})
            assert reply.status_code == 200, reply.text
            frames = await recv_events(ws, 2, session="q")
            assert store.commits == commits + 1  # one transaction for the whole turn
        stored = await relay.outbox.read(0)
    assert not store.logs_changes  # detached at shutdown, before the outbox closed
    assert appended == []  # neither event went through append
    assert [(e.id, e.kind) for e in stored] == [(1, "memory_update"), (2, "agent_message")]
    assert [f["type"] for f in frames] == ["memory_update", "agent_message"]
    assert [f["event_id"] for f in frames] == [1, 2]
    assert frames[0] == stored[0].frame()
    assert frames[0]["memory_id"] == reply.json()["data"]["memory_id"]
    assert frames[0]["action"] == "created" and frames[0]["version"]
    assert relay.stats["appended"] == 2 and relay.stats["append_failed"] == 0
    assert frames[1] == stored[1].frame()
    assert frames[1]["message"] == reply.json()["data"]["text"]
    assert frames[1]["agent_id"] == reply.json()["data"]["agent"]
    # the ids the store's inserts returned, in the order the events were announced
    assert [e[LOGGED_EVENT_ID] for e in announced] == [1, 2]


async def test_only_the_outbox_of_the_stores_own_file_is_attached(tmp_path: Path) -> None:
    from deep_tree_echo.aar_core.memory import InMemoryStore, SQLiteStore

    outbox = SQLiteOutbox(tmp_path / "memories.db", poll_interval=0.01)
    relay = EventRelay(outbox, ConnectionManager(), EventBus())
    elsewhere = SQLiteStore(tmp_path / "other.db")
    assert not relay.log_changes_of(elsewhere) and not elsewhere.logs_changes
    assert not relay.log_changes_of(InMemoryStore())
    same = SQLiteStore(tmp_path / "." / "memories.db")  # another spelling of the same file
    assert relay.log_changes_of(same) and same.logs_changes
    memory_relay = EventRelay(MemoryOutbox(), ConnectionManager(), EventBus())
    assert not memory_relay.log_changes_of(SQLiteStore(tmp_path / "memories.db"))
    # a relay that stops leaves alone a log another relay attached after it
    later = EventRelay(outbox, ConnectionManager(), EventBus())
    assert later.log_changes_of(same)
    await relay.stop()
    assert same.change_log is later._log
    await later.stop()
    assert not same.logs_changes


async def test_a_relay_of_a_store_file_without_its_log_appends_what_claims_stored(
    tmp_path: Path,
) -> None:
    """A relay on the SQLite outbox that attached no change log trusts no logged id, from
    a memory.update or an agent.message alike: both are appended."""
    bus = EventBus()
    relay = EventRelay(SQLiteOutbox(tmp_path / "memories.db", poll_interval=0.01),
                       ConnectionManager(), bus)
    await relay.outbox.open()
    await relay.start()
    try:
        await bus.emit("memory.update", {"memory_id": "m", "action": "created", "version": "v",
                                         "session_id": "s", LOGGED_EVENT_ID: 99})
        await bus.emit("agent.message", {"agent_id": "echo", "message": "hi",
                                         "session_id": "s", LOGGED_EVENT_ID: 100})
        await relay.stop()
        await relay.stop()  # idempotent
        # stopped: the bus no longer reaches it
        await bus.emit("memory.update", {"memory_id": "n", "action": "created", "version": "v",
                                         "session_id": "s"})
        await bus.emit("agent.message", {"agent_id": "echo", "message": "bye",
                                         "session_id": "s"})
        events = await relay.outbox.read(0)
    finally:
        await relay.stop()
        await relay.outbox.close()
    assert [(e.id, e.kind) for e in events] == [(1, "memory_update"), (2, "agent_message")]
    assert relay.stats["appended"] == 2


async def test_an_event_the_outbox_refuses_fails_its_emit_and_is_counted(
    tmp_path: Path,
) -> None:
    """The append's error reaches the emitter (the bus logs it) and is counted, each time."""
    bus = EventBus()
    relay = EventRelay(SQLiteOutbox(tmp_path / "memories.db", poll_interval=0.01),
                       ConnectionManager(), bus)
    await relay.outbox.open()
    await relay.start()
    await relay.outbox.close()  # every append now fails
    try:
        for _ in range(2):
            with pytest.raises(OutboxError, match="the event outbox is not open"):
                await relay._store("agent.message", {"agent_id": "echo", "message": "hi",
                                                     "session_id": "s"})
    finally:
        await relay.stop()
    assert relay.stats["append_failed"] == 2 and relay.stats["appended"] == 0


async def test_a_relay_without_a_change_log_appends_whatever_the_payload_claims() -> None:
    """Only a relay that attached a change log trusts a memory.update's logged id: from any
    other producer the event is appended like any other."""
    bus = EventBus()
    relay = EventRelay(MemoryOutbox(), ConnectionManager(), bus)
    await relay.start()
    try:
        await bus.emit("memory.update", {"memory_id": "m", "action": "created", "version": "v",
                                         "session_id": "s", LOGGED_EVENT_ID: 99})
        events = await relay.outbox.read(0)
    finally:
        await relay.stop()
    assert [(e.id, e.kind, e.payload["memory_id"]) for e in events] == [(1, "memory_update", "m")]
