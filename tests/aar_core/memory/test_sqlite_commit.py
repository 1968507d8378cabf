"""SQLite group commit when the COMMIT itself fails: every writer of the batch hears about it.

The failure is real: a deferred foreign key is checked only at COMMIT, so the batch's
statements all succeed and SQLite refuses the transaction as a whole.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version


def rec(memory_id: str, wall: int = 1) -> MemoryRecord:
    return MemoryRecord(
        id=memory_id, data={"content": memory_id}, version=Version(wall, 0, "n1"),
        created_at=1000.0, updated_at=1000.0,
    )  # fmt: skip


async def test_a_failed_commit_fails_every_writer_in_the_batch_and_stores_nothing(
    tmp_path: Path,
) -> None:
    s = SQLiteStore(tmp_path / "f.db")
    await s.open()
    conn = await s._write(lambda c: c)  # the writer's connection; the writer is idle now
    conn.execute("PRAGMA foreign_keys = ON")  # outside a transaction, so it takes effect

    def schema(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        c.execute(
            "CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
        )

    await s._write(schema)
    entered, release = threading.Event(), threading.Event()

    def hold(c: sqlite3.Connection) -> None:
        entered.set()
        release.wait()

    holder = asyncio.ensure_future(s._write(hold))
    await asyncio.to_thread(entered.wait)  # the writer is inside a transaction: the rest queue
    commits = s.commits
    writers = [asyncio.ensure_future(s.put_if_newer(rec(f"w{i}"))) for i in range(5)]
    dangling = asyncio.ensure_future(
        s._write(lambda c: c.execute("INSERT INTO child VALUES (42)").rowcount)
    )
    more = [asyncio.ensure_future(s.put_if_newer(rec(f"x{i}"))) for i in range(5)]
    releaser = asyncio.ensure_future(asyncio.to_thread(release.set))
    await holder
    await releaser
    outcomes = await asyncio.gather(*writers, dangling, *more, return_exceptions=True)
    assert len(outcomes) == 11
    for outcome in outcomes:
        assert isinstance(outcome, StoreError)
        assert "commit failed" in str(outcome)
        assert "FOREIGN KEY" in str(outcome)
        assert outcome.details == {"path": str(tmp_path / "f.db")}
    assert s.commits == commits + 1  # the held transaction only
    assert await s.count() == 0  # the whole batch was rolled back
    assert not conn.in_transaction
    # The store keeps working: the next batch commits.
    assert await s.put_if_newer(rec("after")) is True
    assert await s.get("after") is not None
    assert await s.count() == 1
    await s.close()


async def test_one_failing_statement_fails_only_its_writer(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "g.db")
    await s.open()
    entered, release = threading.Event(), threading.Event()

    def hold(c: sqlite3.Connection) -> None:
        entered.set()
        release.wait()

    holder = asyncio.ensure_future(s._write(hold))
    await asyncio.to_thread(entered.wait)
    before = asyncio.ensure_future(s.put_if_newer(rec("a")))
    bad = asyncio.ensure_future(s._write(lambda c: c.execute("INSERT INTO nowhere VALUES (1)")))
    after = asyncio.ensure_future(s.put_if_newer(rec("b")))
    releaser = asyncio.ensure_future(asyncio.to_thread(release.set))
    await holder
    await releaser
    assert await before is True
    with pytest.raises(StoreError, match="write failed: no such table: nowhere") as info:
        await bad
    assert info.value.details == {"path": str(tmp_path / "g.db")}
    assert await after is True
    assert s.committed_writes == 1 + 3  # the holder, then a batch of three (one failed)
    assert {r.id async for r in s.scan()} == {"a", "b"}
    await s.close()


async def test_data_that_is_not_strict_json_is_refused_before_it_is_stored(
    tmp_path: Path,
) -> None:
    s = SQLiteStore(tmp_path / "n.db")
    await s.open()
    bad = rec("nan")
    bad.data = {"score": float("nan")}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        await s.put_if_newer(bad)
    assert await s.count() == 0
    await s.close()


async def test_a_put_overrides_accesses_still_waiting_to_be_written(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a.db")
    await s.open()
    assert await s.put_if_newer(rec("a"))
    entered, release = threading.Event(), threading.Event()

    def hold(c: sqlite3.Connection) -> None:
        entered.set()
        release.wait()

    holder = asyncio.ensure_future(s._write(hold))
    await asyncio.to_thread(entered.wait)
    await s.record_access("a", at=5.0)  # waits for the next batch
    newer = rec("a", wall=2)  # carries the whole truth: access_count 0
    put = asyncio.ensure_future(s.put_if_newer(newer))
    releaser = asyncio.ensure_future(asyncio.to_thread(release.set))
    await holder
    await releaser
    assert await put is True
    await s.flush()
    got = await s.get("a")
    assert got is not None and (got.access_count, got.last_access) == (0, None)
    await s.close()
