"""WAL checkpoints run by a thread of their own, not inside a writer's COMMIT.

Real SQLite files. The checkpointer's round is called directly where a test needs it to have
happened (no waiting on its timer).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory._sqlite_checkpoint import (
    INTERVAL,
    WRITER_AUTOCHECKPOINT,
    Checkpointer,
    shared,
)
from deep_tree_echo.server.outbox.sqlite import SQLiteOutbox

LOGGER = "deep_tree_echo.aar_core.memory._sqlite_checkpoint"


def wal_file(path: Path) -> sqlite3.Connection:
    """A connection writing a WAL file that it never checkpoints itself."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    return conn


def in_main_file(path: Path) -> int:
    """Rows of ``t`` in the database file itself: what checkpoints copied back, the WAL unread
    (``immutable=1`` opens the file alone)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        conn.close()


def test_a_round_copies_the_wal_back_only_after_a_change(tmp_path: Path) -> None:
    writer = wal_file(tmp_path / "c.db")
    checkpointer = Checkpointer(str(tmp_path / "c.db"))
    own = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    seen = checkpointer.run(own, -1)  # the table's creation
    assert checkpointer.checkpoints == 1 and checkpointer.rounds == 0  # no thread here
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(200)])
    assert in_main_file(tmp_path / "c.db") == 0  # 200 commits waiting in the WAL
    seen_now = checkpointer.run(own, seen)
    assert seen_now != seen and checkpointer.checkpoints == 2
    assert in_main_file(tmp_path / "c.db") == 200  # copied back
    assert checkpointer.run(own, seen_now) == seen_now  # nothing changed: no checkpoint
    assert checkpointer.checkpoints == 2
    own.close()
    writer.close()


def test_a_failing_round_keeps_what_it_saw(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                           ) -> None:
    checkpointer = Checkpointer(str(tmp_path / "d.db"))
    closed = sqlite3.connect(tmp_path / "d.db")
    closed.close()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert checkpointer.run(closed, 7) == 7  # logged, retried next round
    assert checkpointer.checkpoints == 0
    assert caplog.messages == [
        f"WAL checkpoint of {tmp_path / 'd.db'} failed: Cannot operate on a closed database."]


def test_the_thread_checkpoints_after_a_change_and_only_then(tmp_path: Path) -> None:
    writer = wal_file(tmp_path / "t.db")
    checkpointer = Checkpointer(str(tmp_path / "t.db"), interval=0.005)
    checkpointer.start(writer)
    try:
        assert checkpointer.wait_rounds(2, timeout=30)
        writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(50)])
        # a round that began before the last commit may have missed it; the next one cannot
        assert checkpointer.wait_rounds(checkpointer.rounds + 2, timeout=30)
        assert in_main_file(tmp_path / "t.db") == 50  # the thread copied the WAL back
        done = checkpointer.checkpoints
        assert done >= 1
        assert checkpointer.wait_rounds(checkpointer.rounds + 3, timeout=30)
        assert checkpointer.checkpoints == done  # no change since: no checkpoint
    finally:
        checkpointer.stop(writer)
        writer.close()
    rounds = checkpointer.rounds
    assert checkpointer.wait_rounds(rounds, timeout=0)  # reached: no wait
    assert not checkpointer.wait_rounds(rounds + 1, timeout=0.01)  # stopped: never


def test_the_first_round_copies_back_what_was_written_before_it_started(
    tmp_path: Path,
) -> None:
    writer = wal_file(tmp_path / "s.db")
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20)])
    checkpointer = Checkpointer(str(tmp_path / "s.db"), interval=0.005)
    checkpointer.start(writer)
    try:
        assert checkpointer.wait_rounds(1, timeout=30)
        assert in_main_file(tmp_path / "s.db") == 20
    finally:
        checkpointer.stop(writer)
        writer.close()


def test_a_file_it_cannot_open_is_left_to_its_writers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "missing" / "f.db"
    checkpointer = Checkpointer(str(path), interval=0.005)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        checkpointer.start(path)
        thread = checkpointer._thread
        assert thread is not None
        thread.join(timeout=30)  # it ends at once
        assert not thread.is_alive()
        checkpointer.stop(path)
    assert checkpointer.rounds == 0
    assert caplog.messages == [
        f"WAL checkpoints of {path} left to its writers: unable to open database file"]


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


def test_one_thread_for_all_its_users_stopped_by_the_last(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "e.db"), interval=60.0)
    one, two = object(), object()
    checkpointer.stop(one)  # without a start: nothing to stop, and no user is owed
    checkpointer.start(one)
    first = checkpointer._thread
    assert first is not None and first.name == "sqlite-checkpoint" and first.daemon
    checkpointer.start(two)
    assert checkpointer._thread is first
    checkpointer.stop(one)
    assert first.is_alive()  # one user left
    checkpointer.stop(two)
    assert not first.is_alive() and checkpointer._thread is None
    checkpointer.start(one)  # started again: a new thread, not stopped by the old one's stop
    second = checkpointer._thread
    assert second is not None and second is not first and second.is_alive()
    checkpointer.stop(one)
    assert not second.is_alive()


async def test_the_store_and_the_outbox_of_one_file_share_one_checkpointer(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "shared.db")
    outbox = SQLiteOutbox(tmp_path / "shared.db")
    other = SQLiteStore(tmp_path / "other.db")
    assert store._checkpointer is outbox._checkpointer is shared(str(tmp_path / "shared.db"))
    assert other._checkpointer is not store._checkpointer
    await store.open()
    await outbox.open()
    thread = store._checkpointer._thread
    assert thread is not None and thread.is_alive()
    await store.close()
    assert thread.is_alive()  # the outbox still uses it
    await store.close()  # closing twice gives up no second use
    assert thread.is_alive()
    await outbox.close()
    assert not thread.is_alive()
    await other.close()  # never opened: stops nothing


def test_a_checkpoint_a_reader_held_back_is_tried_again(tmp_path: Path) -> None:
    writer = wal_file(tmp_path / "r.db")
    writer.execute("INSERT INTO t VALUES (0)")
    reader = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)  # its snapshot: 1 row
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1, 30)])
    checkpointer = Checkpointer(str(tmp_path / "r.db"))
    own = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    seen = checkpointer.run(own, -1)
    assert seen == -1  # frames after the reader's snapshot cannot be copied back yet: again
    assert checkpointer.checkpoints == 1
    reader.execute("COMMIT")
    seen = checkpointer.run(own, seen)  # nothing was committed since: tried again all the same
    assert seen != -1 and in_main_file(tmp_path / "r.db") == 30
    for conn in (own, reader, writer):
        conn.close()
