"""The outbox of a single process (in-memory and Redis stores): a bounded list in RAM.

Events still get ids and can be resumed within the retention window, but they reach only the
WebSocket clients of this process.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any

from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.server.outbox._base import READ_BATCH, EventOutbox, OutboxEvent, Row

#: At most this many events are kept, whatever the retention window.
MAX_EVENTS = 100_000


class MemoryOutbox(EventOutbox):
    """In-process outbox; ids start at 1 and reset with the process."""

    kind = "memory"
    in_process = True

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        super().__init__()
        self.max_events = max_events
        self._events: deque[OutboxEvent] = deque()
        self._ids: deque[int] = deque()
        self._next = 1
        self._purged = 0

    async def append(self, kind: str, session_id: str | None, payload: dict[str, Any],
                     created_at: float, tenant: str = DEFAULT_TENANT) -> int:
        event = OutboxEvent(self._next, kind, session_id, dict(payload), created_at, tenant)
        self._next += 1
        self._events.append(event)
        self._ids.append(event.id)
        if len(self._events) > self.max_events:
            self._purged = self._events.popleft().id
            self._ids.popleft()
        return event.id  # no wake-up: the relay dispatches in-process events inline

    async def _insert(self, rows: list[Row]) -> list[int]:
        raise NotImplementedError  # append() is overridden: nothing is batched in RAM

    async def read(self, after: int, *, session_id: str | None = None,
                   tenant: str = DEFAULT_TENANT, upto: int | None = None,
                   limit: int = READ_BATCH) -> list[OutboxEvent]:
        start = bisect.bisect_right(self._ids, after)
        found: list[OutboxEvent] = []
        for index in range(start, len(self._events)):
            event = self._events[index]
            if upto is not None and event.id > upto:
                break
            if session_id is None or (event.session_id == session_id
                                      and event.tenant == tenant):
                found.append(event)
                if len(found) >= limit:
                    break
        return found

    async def head(self) -> int:
        return self._next - 1

    async def purged_through(self) -> int:
        return self._purged

    async def purge(self, before: float) -> int:
        removed = 0
        while self._events and self._events[0].created_at < before:
            self._purged = self._events.popleft().id
            self._ids.popleft()
            removed += 1
        return removed
