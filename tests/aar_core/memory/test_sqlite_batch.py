"""A SQLite group-commit batch writes its consecutive writes-if-newer as one statement.

Each test holds the writer busy, queues several writes so they land in one batch, and checks
what each writer hears and what the file holds: exactly what writing them one at a time in
queue order gives. Real SQLite files; the statements the writer runs are traced.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._sqlite_batch import run_ops
from deep_tree_echo.aar_core.memory._sqlite_queue import WriteOp, _resolve_all, resolve, settle
from deep_tree_echo.aar_core.memory.ranking import RankWeights

LOG_TABLE = "CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY AUTOINCREMENT, change TEXT)"


def rec(memory_id: str, wall: int, text: str = "x", **fields: Any) -> MemoryRecord:
    return MemoryRecord(id=memory_id, data={"content": text}, version=Version(wall, 0, "n1"),
                        created_at=1000.0, updated_at=1000.0 + wall, **fields)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "b.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def one_batch(store: SQLiteStore, *writes: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run ``writes`` (queued in this order) in one batch; each one's result or exception, and
    the statements of that batch in ``store.statements``."""
    conn: sqlite3.Connection = await store._write(lambda c: c)
    statements: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def hold(c: sqlite3.Connection) -> None:
        entered.set()
        release.wait()

    holder = asyncio.ensure_future(store._write(hold))
    await asyncio.to_thread(entered.wait)  # the writer is busy: everything below queues
    commits = store.commits
    futures = [asyncio.ensure_future(write()) for write in writes]
    conn.set_trace_callback(statements.append)  # the writer is parked: only the batch traced
    releaser = asyncio.ensure_future(asyncio.to_thread(release.set))  # after every queue.put
    await holder
    await releaser
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    conn.set_trace_callback(None)
    assert store.commits == commits + 2  # the held transaction, then the writes together
    store.statements = statements  # type: ignore[attr-defined]
    return outcomes


def puts_of(store: SQLiteStore) -> list[str]:
    """The batch's statements that wrote memories: ``many`` or ``one`` each."""
    kinds = []
    previous = None
    for statement in store.statements:  # type: ignore[attr-defined]
        # each trigger program it runs traces the statement again, with the same bound values
        if statement != previous and "INSERT INTO memories (" in statement:
            kinds.append("many" if "json_each" in statement else "one")
        previous = statement
    return kinds


async def test_a_run_of_writes_is_one_statement_and_each_writer_hears_its_own_outcome(
    store: SQLiteStore,
) -> None:
    assert await store.put_if_newer(rec("old", 5, "kept"))
    assert await store.put_if_newer(rec("upd", 5, "before"))
    outcomes = await one_batch(
        store,
        lambda: store.put_if_newer(rec("a", 1, "alpha")),
        lambda: store.put_if_newer(rec("old", 4, "stale")),  # older: loses
        lambda: store.put_if_newer(rec("upd", 6, "after")),  # newer: wins
        lambda: store.put_if_newer(rec("old", 5, "same")),  # its own id again: a new run
        lambda: store.put_if_newer(rec("b", 2, "beta", deleted=True)),
    )
    assert outcomes == [True, False, True, False, True]
    assert puts_of(store) == ["many", "many"]
    got = {m: await store.get(m) for m in ("a", "old", "upd", "b")}
    assert {m: (r.data, r.version.wall_ms) for m, r in got.items() if r is not None} == {
        "a": ({"content": "alpha"}, 1), "old": ({"content": "kept"}, 5),
        "upd": ({"content": "after"}, 6), "b": ({"content": "beta"}, 2),
    }
    assert got["b"] is not None and got["b"].deleted
    assert got["a"] is not None and got["a"].updated_at == 1001.0
    found = await store.search(["alpha"], limit=5, weights=RankWeights(), now=2000.0)
    assert [r.id for r in found] == ["a"]  # its postings were written with it
    assert await store.count(live_at=0.0) == 3  # a, old, upd; b is a tombstone


async def test_a_memory_written_twice_in_a_batch_is_compared_with_its_earlier_write(
    store: SQLiteStore,
) -> None:
    outcomes = await one_batch(
        store,
        lambda: store.put_if_newer(rec("m", 2, "second")),
        lambda: store.put_if_newer(rec("n", 1)),
        lambda: store.put_if_newer(rec("m", 1, "first")),  # older than the write before it
        lambda: store.put_if_newer(rec("m", 3, "third")),  # newer: wins
    )
    assert outcomes == [True, True, False, True]
    assert puts_of(store) == ["many", "one", "one"]  # [m2, n], [m1], [m3]
    got = await store.get("m")
    assert got is not None and got.data == {"content": "third"}


async def test_a_write_that_breaks_the_statement_fails_alone(store: SQLiteStore) -> None:
    params = list(sql.write_params("default", rec("bad", 1)))
    params[3] = None  # data NOT NULL: the statement fails on this row only

    def bad_put(conn: sqlite3.Connection) -> bool:
        return conn.execute(sql.PUT_IF_NEWER, params).rowcount == 1

    bad_row = json.dumps(params)
    outcomes = await one_batch(
        store,
        lambda: store.put_if_newer(rec("a", 1)),
        lambda: store._write(bad_put, row=bad_row, key=("default", "bad")),
        lambda: store.put_if_newer(rec("b", 1)),
    )
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], StoreError)
    assert str(outcomes[1]).startswith("write failed: NOT NULL constraint failed")
    assert puts_of(store) == ["many", "one", "one", "one"]  # undone, then one at a time
    assert await store.get("bad") is None
    assert {r.id async for r in store.scan()} == {"a", "b"}


async def test_logged_writes_in_a_batch_log_the_winners_in_queue_order(
    store: SQLiteStore,
) -> None:
    await store._write(lambda c: c.execute(LOG_TABLE))

    def table_log(conn: sqlite3.Connection, change: Mapping[str, Any]) -> int:
        return int(conn.execute("INSERT INTO log (change) VALUES (?)", (change["memory_id"],))
                   .lastrowid or 0)

    store.change_log = table_log
    assert await store.put_logged(rec("x", 9), {"memory_id": "x"}) == 1
    outcomes = await one_batch(
        store,
        lambda: store.put_logged(rec("a", 1), {"memory_id": "a"}),
        lambda: store.put_logged(rec("x", 8), {"memory_id": "x"}),  # loses: no event
        lambda: store.put_if_newer(rec("p", 1)),  # plain: no event
        lambda: store.put_logged(rec("b", 1), {"memory_id": "b"}),
    )
    assert outcomes == [2, None, True, 3]
    assert puts_of(store) == ["many"]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT id, change FROM log ORDER BY id").fetchall() == [
            (1, "x"), (2, "a"), (3, "b")]


async def test_a_write_with_a_non_finite_number_is_written_on_its_own(
    store: SQLiteStore,
) -> None:
    outcomes = await one_batch(
        store,
        lambda: store.put_if_newer(rec("a", 1)),
        lambda: store.put_if_newer(rec("inf", 1, last_access=float("inf"))),
        lambda: store.put_if_newer(rec("b", 1)),
    )
    assert outcomes == [True, True, True]
    assert puts_of(store) == ["one", "one", "one"]  # not JSON: no run of two
    got = await store.get("inf")
    assert got is not None and got.last_access == float("inf")


async def test_a_batch_is_settled_with_one_call_into_each_event_loop() -> None:
    loop = asyncio.get_running_loop()
    calls: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any) -> Any:
        calls.append(callback)
        return real(callback, *args)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        futures = [loop.create_future() for _ in range(4)]
        futures[2].cancel()  # its writer went away: skipped, no error
        ops = [WriteOp(lambda c: None, f, loop) for f in futures]
        order: list[int] = []
        for i, future in enumerate(futures):
            future.add_done_callback(lambda _, i=i: order.append(i))
        failure = StoreError("no")
        await asyncio.to_thread(settle, ops, [(1, None), (2, None), (3, None), (None, failure)])
        assert await futures[0] == 1 and await futures[1] == 2
        with pytest.raises(StoreError, match=r"^no$"):
            await futures[3]
        # one wake-up of the loop for the whole batch (to_thread's own result is the other)
        assert calls.count(_resolve_all) == 1 and resolve not in calls
        assert order == [2, 0, 1, 3]  # the cancelled one at once; the rest in queue order
    finally:
        del loop.call_soon_threadsafe  # type: ignore[method-assign]


async def test_settling_into_a_closed_loop_is_harmless() -> None:
    other = asyncio.new_event_loop()
    future = other.create_future()
    other.close()
    settle([WriteOp(lambda c: None, future, other)], [(1, None)])  # no RuntimeError
    assert not future.done()


async def test_a_nul_in_an_id_is_written_on_its_own_and_kept_whole(store: SQLiteStore) -> None:
    outcomes = await one_batch(
        store,
        lambda: store.put_if_newer(rec("a", 1)),
        lambda: store.put_if_newer(rec("a\x00b", 1, "nul")),  # ->> would cut it to "a"
        lambda: store.put_if_newer(rec("b", 1)),
    )
    assert outcomes == [True, True, True]
    assert puts_of(store) == ["one", "one", "one"]
    got = await store.get("a\x00b")
    assert got is not None and got.data == {"content": "nul"}
    first = await store.get("a")
    assert first is not None and first.data == {"content": "x"}


def test_only_rows_json_carries_exactly_are_batched() -> None:
    params = sql.write_params("default", rec("a", 1))
    row = sql.batch_row(params)
    assert row is not None and json.loads(row) == list(params)
    for bad in (("t\x00", 1), ("\ud800", 1), ("a\x00", 1)):
        text, index = bad
        changed = list(params)
        changed[index] = text
        assert sql.batch_row(tuple(changed)) is None, bad
    assert sql.batch_row(("t", "a", "v", float("nan"))) is None  # not JSON
    assert sql.batch_row(("t", "a", "v", object())) is None  # not JSON either
    assert sql.batch_row(("tenänt", "ïd", "v")) == '["ten\\u00e4nt","\\u00efd","v"]'


def test_a_failure_after_the_statement_fails_the_whole_batch(tmp_path: Path) -> None:
    """Once the rows are written, a failure must not make them look lost (their events would
    never be logged): it reaches the caller, who rolls the batch back."""
    conn = sql.connect(str(tmp_path / "f.db"))
    sql.migrate(conn)

    class WonFails:
        """The real connection, except that reading which rows won fails."""

        in_transaction = property(lambda self: conn.in_transaction)

        def execute(self, query: str, *args: Any) -> sqlite3.Cursor:
            if query is sql.PUT_MANY_WON:
                raise sqlite3.OperationalError("disk I/O error")
            return conn.execute(query, *args)

    loop = asyncio.new_event_loop()
    try:
        ops = []
        for memory_id in ("a", "b"):
            params = sql.write_params("default", rec(memory_id, 1))
            ops.append(WriteOp(lambda c: None, loop.create_future(), loop,
                               row=sql.batch_row(params), key=("default", memory_id)))
        conn.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            run_ops(WonFails(), ops, lambda exc: StoreError(str(exc)))  # type: ignore[arg-type]
        assert conn.in_transaction  # the caller's to roll back
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM memories").fetchone() == (0,)
    finally:
        loop.close()
        conn.close()
