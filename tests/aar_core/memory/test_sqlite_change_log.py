"""A SQLite store that logs each write's change event in the write's own transaction.

``put_logged`` stores the record and its event together or not at all; the manager hands the
store its ``memory.update`` payload before the write and announces the id the store gave it.
Real SQLite files throughout; the log is the table the server's outbox uses.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.memory import (
    InMemoryStore,
    MemoryManager,
    MemoryRecord,
    SQLiteStore,
    Version,
)
from deep_tree_echo.aar_core.memory.manager import LOGGED_EVENT_ID, MEMORY_UPDATE_EVENT

LOG_TABLE = "CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY AUTOINCREMENT, change TEXT)"


def rec(memory_id: str, wall: int, text: str = "x") -> MemoryRecord:
    return MemoryRecord(id=memory_id, data={"content": text}, version=Version(wall, 0, "n1"),
                        created_at=1000.0, updated_at=1000.0)


def table_log(conn: sqlite3.Connection, change: Mapping[str, Any]) -> int:
    """A change log into table ``log`` (what the outbox's ``insert_on`` does with ``events``)."""
    return int(conn.execute("INSERT INTO log (change) VALUES (?)", (repr(dict(change)),))
               .lastrowid or 0)


def logged(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT id, change FROM log ORDER BY id").fetchall()


async def announcing(store: SQLiteStore) -> tuple[MemoryManager, list[dict[str, Any]]]:
    """An open manager over ``store`` and the ``memory.update`` payloads its bus carries."""
    bus = EventBus()
    seen: list[dict[str, Any]] = []
    bus.register(MEMORY_UPDATE_EVENT, lambda data: seen.append(dict(data)))
    manager = MemoryManager(store, event_bus=bus)
    await manager.initialize()
    return manager, seen


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "m.db")
    await s.open()
    await s._write(lambda c: c.execute(LOG_TABLE))
    s.change_log = table_log
    try:
        yield s
    finally:
        await s.close()


async def test_a_logged_write_stores_the_record_and_its_event(store: SQLiteStore) -> None:
    assert store.logs_changes
    first = await store.put_logged(rec("a", 1), {"memory_id": "a", "n": 1})
    second = await store.put_logged(rec("b", 1), {"memory_id": "b", "n": 2})
    assert (first, second) == (1, 2)
    got = await store.get("a")
    assert got is not None and got.data == {"content": "x"}
    assert logged(Path(store.path)) == [(1, "{'memory_id': 'a', 'n': 1}"),
                                        (2, "{'memory_id': 'b', 'n': 2}")]


async def test_a_write_that_loses_logs_nothing(store: SQLiteStore) -> None:
    assert await store.put_logged(rec("a", 5, "new"), {"memory_id": "a"}) == 1
    assert await store.put_logged(rec("a", 4, "older"), {"memory_id": "a"}) is None
    assert await store.put_logged(rec("a", 5, "same"), {"memory_id": "a"}) is None
    got = await store.get("a")
    assert got is not None and got.data == {"content": "new"}
    assert [row[0] for row in logged(Path(store.path))] == [1]


async def test_a_failing_log_rolls_the_write_back(store: SQLiteStore) -> None:
    def broken(conn: sqlite3.Connection, change: Mapping[str, Any]) -> int:
        conn.execute("INSERT INTO no_such_table VALUES (1)")
        return 0

    store.change_log = broken
    with pytest.raises(StoreError, match="logging the change of 'a' failed"):
        await store.put_logged(rec("a", 1), {"memory_id": "a"})
    assert await store.get("a") is None  # never a committed write without its event
    store.change_log = table_log
    assert await store.put_logged(rec("a", 2), {"memory_id": "a"}) == 1  # the store goes on
    assert await store.count() == 1


async def test_a_failing_log_fails_its_whole_batch(store: SQLiteStore) -> None:
    """Writes committed together share the fate of the one whose log failed: none stored."""
    def broken(conn: sqlite3.Connection, change: Mapping[str, Any]) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    store.change_log = broken
    entered, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait()

    holder = asyncio.ensure_future(store._write(hold))
    await asyncio.to_thread(entered.wait)  # the writer is busy: the next two queue together
    logged = asyncio.ensure_future(store.put_logged(rec("a", 1), {"memory_id": "a"}))
    plain = asyncio.ensure_future(store.put_if_newer(rec("b", 1)))
    commits = store.commits
    # released only after both writes ran up to their queue.put (tasks run in order)
    releaser = asyncio.ensure_future(asyncio.to_thread(release.set))
    await holder
    await releaser
    for write in (logged, plain):
        with pytest.raises(StoreError, match="commit failed: logging the change of 'a' failed"):
            await write
    assert store.commits == commits + 1  # the held transaction only
    assert await store.get("a") is None and await store.get("b") is None
    assert await store.put_if_newer(rec("b", 2))  # the store goes on


async def test_without_a_log_the_store_refuses_logged_writes(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "m.db")
    try:
        assert not s.logs_changes
        with pytest.raises(StoreError, match=r"^this SQLite store has no change log attached$"
                           ) as refused:
            await s.put_logged(rec("a", 1), {})
        assert refused.value.details == {"path": str(tmp_path / "m.db")}
        assert not InMemoryStore().logs_changes
        with pytest.raises(NotImplementedError, match="memory store does not log changes"):
            await InMemoryStore().put_logged(rec("a", 1), {})
    finally:
        await s.close()


async def test_the_manager_announces_the_id_its_change_was_logged_under(
    store: SQLiteStore,
) -> None:
    manager, seen = await announcing(store)
    await manager.store_memory("m1", {"content": "first", "session_id": "s"})
    await manager.store_memory("m1", {"content": "second", "session_id": "s"})
    added = await manager.add_memory({"content": "third"})
    assert await manager.delete_memory("m1")
    await manager.store_memory("m2", {"content": "short"}, ttl=1e-6)  # expires at once
    assert not await manager.delete_memory("m2")  # expired: a tombstone, but no news

    assert [(e["memory_id"], e["action"], e[LOGGED_EVENT_ID]) for e in seen] == [
        ("m1", "created", 1), ("m1", "updated", 2), (added.id, "created", 3),
        ("m1", "deleted", 4), ("m2", "created", 5),
    ]
    rows = logged(Path(store.path))
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5]
    for event, (_, text) in zip(seen, rows, strict=True):  # each stored as announced
        announced = {k: v for k, v in event.items() if k != LOGGED_EVENT_ID}
        assert text == repr(announced)
    assert seen[0]["session_id"] == "s" and seen[0]["tenant"] == "default"
    assert manager.stats["stores"] == 3 and manager.stats["updates"] == 1
    assert manager.stats["deletes"] == 1


async def test_replicated_writes_log_only_what_they_change(store: SQLiteStore) -> None:
    manager, seen = await announcing(store)
    assert await manager.apply_remote(rec("r", 10, "v1"))
    assert not await manager.apply_remote(rec("r", 9, "stale"))  # lost: nothing logged
    tomb = MemoryRecord(id="r", data={}, version=Version(11, 0, "n2"), created_at=1000.0,
                        updated_at=1001.0, deleted=True)
    assert await manager.apply_remote(tomb)
    assert [(e["action"], e[LOGGED_EVENT_ID]) for e in seen] == [("created", 1), ("deleted", 2)]
    assert [row[0] for row in logged(Path(store.path))] == [1, 2]


async def test_store_failures_are_store_errors_naming_the_write(tmp_path: Path) -> None:
    class Broken(SQLiteStore):
        async def put_if_newer(self, record: MemoryRecord, *, tenant: str = "default") -> bool:
            raise RuntimeError("disk on fire")

        async def put_logged(self, record: MemoryRecord, change: Mapping[str, Any], *,
                             tenant: str = "default") -> int | None:
            raise RuntimeError("log on fire")

    store = Broken(tmp_path / "m.db")
    manager = MemoryManager(store)
    await manager.initialize()
    try:
        with pytest.raises(StoreError, match=r"^sqlite store write failed: disk on fire"):
            await manager.add_memory({"content": "a"})
        store.change_log = table_log
        with pytest.raises(StoreError, match=r"^sqlite store write failed: log on fire"):
            await manager.add_memory({"content": "a"})
        assert manager.stats["errors"] == 2
    finally:
        await manager.close()


async def test_logged_writes_stay_in_their_tenant(store: SQLiteStore) -> None:
    manager, seen = await announcing(store)
    added = await manager.for_tenant("acme").add_memory({"content": "tenant note"})
    assert await store.get(added.id, tenant="acme") is not None
    assert await store.get(added.id) is None
    assert seen == [{"memory_id": added.id, "action": "created", "session_id": None,
                     "version": added.version.to_str(), "tenant": "acme",
                     LOGGED_EVENT_ID: 1}]


async def test_replicated_changes_are_announced_exactly(store: SQLiteStore) -> None:
    manager, seen = await announcing(store)
    with pytest.raises(ValueError, match=r"^replicated record data must be a dict$"):
        await manager.apply_remote(MemoryRecord(id="bad", data=[1], version=Version(1, 0, "n2"),  # type: ignore[arg-type]
                                                created_at=1.0, updated_at=1.0))
    live = MemoryRecord(id="r", data={"content": "v1", "session_id": "s"},
                        version=Version(10, 0, "n2"), created_at=1000.0, updated_at=1000.0)
    assert await manager.apply_remote(live)
    live.data["content"] = "changed by the caller afterwards"
    got = await store.get("r")
    assert got is not None and got.data == {"content": "v1", "session_id": "s"}
    expired = MemoryRecord(id="e", data={"content": "gone"}, version=Version(10, 0, "n2"),
                           created_at=1000.0, updated_at=1000.0, expires_at=1001.0)
    assert await manager.apply_remote(expired)  # news: a memory, though already expired
    tomb = MemoryRecord(id="e", data={}, version=Version(12, 0, "n2"), created_at=1000.0,
                        updated_at=1002.0, deleted=True)
    assert await manager.apply_remote(tomb)  # deletes an expired memory: no news
    assert seen == [
        {"memory_id": "r", "action": "created", "session_id": "s",
         "version": Version(10, 0, "n2").to_str(), "tenant": "default", LOGGED_EVENT_ID: 1},
        {"memory_id": "e", "action": "created", "session_id": None,
         "version": Version(10, 0, "n2").to_str(), "tenant": "default", LOGGED_EVENT_ID: 2},
    ]


async def test_a_replicated_record_is_stored_as_a_copy_of_the_callers_data() -> None:
    manager = MemoryManager(InMemoryStore())
    await manager.initialize()
    record = MemoryRecord(id="r", data={"content": "v1"}, version=Version(10, 0, "n2"),
                          created_at=1000.0, updated_at=1000.0)
    assert await manager.apply_remote(record)
    record.data["content"] = "changed by the caller afterwards"
    assert await manager.retrieve_memory("r") == {"content": "v1"}


async def test_a_logged_write_replaces_pending_access_counts(store: SQLiteStore) -> None:
    """Like ``put_if_newer``: the record carries its access counts, so counts not yet
    written are dropped, not added on top of it."""
    assert await store.put_logged(rec("a", 1), {"memory_id": "a"}) == 1
    await store.record_access("a", at=2000.0, count=5)
    newer = rec("a", 2)
    newer.access_count = 7
    assert await store.put_logged(newer, {"memory_id": "a"}) == 2
    await store.flush()
    got = await store.get("a")
    assert got is not None and got.access_count == 7


async def test_a_replicated_deletion_of_a_live_memory_is_announced_exactly(
    store: SQLiteStore,
) -> None:
    manager, seen = await announcing(store)
    with pytest.raises(ValueError, match="not JSON"):  # replicated data is validated too
        await manager.apply_remote(MemoryRecord(id="n", data={"x": float("nan")},
                                                version=Version(1, 0, "n2"),
                                                created_at=1.0, updated_at=1.0))
    assert await store.get("n") is None
    await manager.for_tenant("acme").store_memory("d", {"content": "x", "session_id": "s"})
    stored = await store.get("d", tenant="acme")
    assert stored is not None
    tomb = MemoryRecord(id="d", data={}, version=Version(stored.version.wall_ms + 1, 0, "n2"),
                        created_at=1000.0,
                        updated_at=1002.0, deleted=True)
    assert await manager.for_tenant("acme").apply_remote(tomb)
    assert seen[-1] == {"memory_id": "d", "action": "deleted", "session_id": "s",
                        "version": tomb.version.to_str(), "tenant": "acme",
                        LOGGED_EVENT_ID: 2}
