"""Small real test doubles shared by the memory tests: a settable clock and a recording bus,
and a SQLite store opened for the span of a ``with`` block."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from deep_tree_echo.aar_core.memory import SQLiteStore


@contextlib.asynccontextmanager
async def opened_store(path: str | os.PathLike[str]) -> AsyncIterator[SQLiteStore]:
    """A :class:`SQLiteStore` on the real file at ``path``, open inside the block and closed
    after it, whatever happened."""
    store = SQLiteStore(path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class FakeClock:
    """A wall clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class RecordingBus:
    """An event bus that keeps what was emitted (the ``async emit(type, data)`` protocol)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        self.events.append((event_type, data))
        if self.fail:
            raise RuntimeError("bus is down")
