"""The queue between the SQLite store's callers and its writer thread: the queued ops, the
markers, and how a finished op's future is resolved on its event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from deep_tree_echo.aar_core.memory._sqlite_access import Hold


@dataclass(slots=True)
class WriteOp:
    """One queued write: run ``fn`` inside the batch transaction, then resolve ``future``.

    A write-if-newer also carries its parameters as one JSON array (``row``), its
    ``(tenant, id)`` and the step to run in its transaction if it wins (``then``): the writer
    runs consecutive such writes as one statement (``_sqlite_batch``), ``fn`` being the same
    write on its own. ``held``: the access counts it took when queued (``_sqlite_access``).
    """

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    row: str | None = None
    key: tuple[str, str] | None = None
    then: Callable[[sqlite3.Connection], int] | None = None
    held: Hold | None = None


#: Stores a change event on the given connection (inside its open transaction); its id.
ChangeLog = Callable[[sqlite3.Connection, Mapping[str, Any]], int]


class LogFailed(Exception):
    """Logging a write's change failed: the whole batch is rolled back, so no write is
    committed without its event (a plain ``sqlite3.Error`` would fail only its own op)."""


#: Queued to stop the writer thread.
STOP: Final = object()
#: Queued to have pending access counts written (no op of its own).
FLUSH: Final = object()


def resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Settle ``future`` (on its loop's thread) unless it is done already (e.g. cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def settle(ops: Sequence[WriteOp], outcomes: Sequence[tuple[Any, BaseException | None]]) -> None:
    """Resolve each op's future with its outcome: one call into each event loop for all of its
    ops (one wake-up and one hand-over of the GIL, not one per op), in queue order."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any,
                                                         BaseException | None]]] = {}
    for op, (result, error) in zip(ops, outcomes, strict=True):
        by_loop.setdefault(op.loop, []).append((op.future, result, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop was closed under us
            loop.call_soon_threadsafe(_resolve_all, settled)


def _resolve_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        resolve(future, result, error)
