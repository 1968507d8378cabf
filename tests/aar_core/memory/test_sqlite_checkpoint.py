"""WAL checkpoints run by a thread of their own, not inside a writer's COMMIT.

Real SQLite files. The checkpointer's round is called directly where a test needs it to have
happened (no waiting on its timer).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory._sqlite_checkpoint import (
    INTERVAL,
    WRITER_AUTOCHECKPOINT,
    Checkpointer,
)
from deep_tree_echo.server.outbox.sqlite import SQLiteOutbox


def wal_file(path: Path) -> sqlite3.Connection:
    """A connection writing a WAL file that it never checkpoints itself."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    return conn


def backfilled(path: Path) -> tuple[int, int]:
    """``(frames in the WAL, frames in the database file)``, as another connection's passive
    checkpoint finds them (it copies back whatever is left)."""
    with sqlite3.connect(path) as conn:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[1]), int(row[2])


def test_a_round_copies_the_wal_back_only_after_a_change(tmp_path: Path) -> None:
    writer = wal_file(tmp_path / "c.db")
    checkpointer = Checkpointer(str(tmp_path / "c.db"))
    own = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    seen = checkpointer.run(own, -1)  # the table's creation
    assert checkpointer.checkpoints == 1
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(200)])
    seen_now = checkpointer.run(own, seen)
    assert seen_now != seen and checkpointer.checkpoints == 2  # it copied frames back
    frames, copied = backfilled(tmp_path / "c.db")
    assert frames == copied > 0  # every frame was in the database file already
    assert checkpointer.run(own, seen_now) == seen_now  # nothing changed: no checkpoint
    assert checkpointer.checkpoints == 2
    own.close()
    writer.close()


def test_a_failing_round_keeps_what_it_saw(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "d.db"))
    closed = sqlite3.connect(tmp_path / "d.db")
    closed.close()
    assert checkpointer.run(closed, 7) == 7  # logged, retried next round
    assert checkpointer.checkpoints == 0


async def test_the_store_checkpoints_from_its_own_thread(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    assert store._checkpointer.interval == INTERVAL
    await store.open()
    thread = store._checkpointer._thread
    assert thread is not None and thread.is_alive()
    setting = await store._write(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone())
    assert setting == (WRITER_AUTOCHECKPOINT,)  # the writer's COMMIT copies nothing back
    record = MemoryRecord(id="a", data={"content": "x"}, version=Version(1, 0, "n"),
                          created_at=1.0, updated_at=1.0)
    assert await store.put_if_newer(record)
    await store.close()
    assert store._checkpointer._thread is None and not thread.is_alive()


async def test_the_outbox_checkpoints_from_its_own_thread(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "o.db")
    await outbox.open()
    thread = outbox._checkpointer._thread
    assert thread is not None and thread.is_alive()
    assert outbox._writer is not None
    assert outbox._writer.execute("PRAGMA wal_autocheckpoint").fetchone() == (
        WRITER_AUTOCHECKPOINT,)
    await outbox.close()
    assert outbox._checkpointer._thread is None and not thread.is_alive()


def test_stop_without_start_and_start_twice_are_harmless(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "e.db"), interval=60.0)
    checkpointer.stop()
    checkpointer.start()
    first = checkpointer._thread
    checkpointer.start()
    assert checkpointer._thread is first
    checkpointer.stop()
    assert first is not None and not first.is_alive()
