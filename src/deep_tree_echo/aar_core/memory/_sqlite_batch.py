"""The SQLite writer's ops of one transaction, consecutive writes-if-newer as one statement.

A batch of group commit is mostly writes-if-newer (``put_if_newer`` / ``put_logged``). Each one
as its own ``INSERT`` costs a call into SQLite and its own pass through the statement while the
file's write lock is held; :data:`~._sqlite_schema.PUT_MANY` writes a run of them from one JSON
array (about 30% less CPU for the inserts under the lock, batches of 50 writes). Which rows won
is read back from the change stamps the triggers give every stored row.
A run never holds one memory twice (a later write of it starts a new run, so it is compared
with the earlier one exactly as before); if the statement fails, SQLite undoes it and the run
is written one op at a time, so a bad write still fails alone. A failure after it (reading
which rows won) fails the whole batch.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._sqlite_queue import WriteOp

#: An op's result or error.
Outcome = tuple[Any, BaseException | None]
#: The error an op gets for a ``sqlite3.Error`` that failed it alone.
Failure = Callable[[sqlite3.Error], BaseException]


def run_ops(conn: sqlite3.Connection, ops: Sequence[WriteOp], failure: Failure) -> list[Outcome]:
    """Run ``ops`` in order inside the open transaction; their outcomes, in the same order.

    Raises when SQLite rolled the whole transaction back, or a write's ``then`` failed (the
    caller rolls back: no write is committed without its step)."""
    outcomes: list[Outcome] = []
    start = 0
    while start < len(ops):
        run = _run_of_puts(ops, start)
        if len(run) > 1:
            outcomes.extend(_put_many(conn, run, failure))
            start += len(run)
        else:
            outcomes.append(_one(conn, ops[start], failure))
            start += 1
    return outcomes


def _run_of_puts(ops: Sequence[WriteOp], start: int) -> list[WriteOp]:
    """The writes-if-newer from ``start`` on, up to the first op that is not one or whose
    memory is already in the run."""
    run: list[WriteOp] = []
    keys: set[tuple[str, str]] = set()
    for op in itertools.islice(ops, start, None):  # no copy of the rest per call
        if op.row is None or op.key is None or op.key in keys:
            break
        keys.add(op.key)
        run.append(op)
    return run


def _one(conn: sqlite3.Connection, op: WriteOp, failure: Failure) -> Outcome:
    try:
        return op.fn(conn), None
    except sqlite3.Error as exc:
        if not conn.in_transaction:  # SQLite rolled the whole batch back
            raise
        return None, failure(exc)


def _put_many(conn: sqlite3.Connection, run: list[WriteOp], failure: Failure) -> list[Outcome]:
    rows = "[" + ",".join(op.row for op in run if op.row is not None) + "]"
    before = int(conn.execute(sql.CLOCK).fetchone()[0])
    try:
        conn.execute(sql.PUT_MANY, (rows,))
    except sqlite3.Error:
        if not conn.in_transaction:
            raise
        return [_one(conn, op, failure) for op in run]  # SQLite undid the statement
    # Past this point the rows are written: any failure must fail the whole batch (the caller
    # rolls back), never make a stored write look lost.
    won = dict(json.loads(conn.execute(sql.PUT_MANY_WON, (before, rows)).fetchone()[0]))
    outcomes: list[Outcome] = []
    for index, op in enumerate(run):
        if not won[index]:
            outcomes.append((None, None))
        else:
            outcomes.append((0 if op.then is None else op.then(conn), None))
    return outcomes
