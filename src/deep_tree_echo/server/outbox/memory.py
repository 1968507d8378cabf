"""The outbox of a single process (in-memory and Redis stores): a bounded list in RAM.

Events still get ids and can be resumed within the retention window, but they reach only the
WebSocket clients of this process.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any

from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.server.outbox._base import READ_BATCH, EventOutbox, OutboxEvent, Row

#: At most this many events are kept, whatever the retention window.
MAX_EVENTS = 100_000


#: One stored event: ``(kind, session_id, payload keys, payload values, created_at, tenant)``.
#: The garbage collector stops tracking tuples of strings and numbers, so 100k kept events add
#: no work (and no pauses) to its full collections; event objects or dicts would stay tracked.
#: The keys tuple of the relay's own kinds is one shared constant: two tuples per event.
_Stored = tuple[str, str | None, tuple[str, ...], tuple[Any, ...], float, str]


class MemoryOutbox(EventOutbox):
    """In-process outbox; ids start at 1 and reset with the process.

    Ids are consecutive, so the event with id ``i`` sits at index ``i - purged - 1``.
    """

    kind = "memory"
    in_process = True

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        super().__init__()
        self.max_events = max_events
        self._events: deque[_Stored] = deque()
        self._next = 1
        self._purged = 0  # highest id dropped; the oldest kept event has id _purged + 1

    async def append(self, kind: str, session_id: str | None, payload: dict[str, Any],
                     created_at: float, tenant: str = DEFAULT_TENANT) -> int:
        return self.store(kind, session_id, tuple(payload), tuple(payload.values()),
                          created_at, tenant)

    def add(self, kind: str, session_id: str | None, payload: dict[str, Any],
            created_at: float, tenant: str = DEFAULT_TENANT) -> OutboxEvent:
        """:meth:`append` without awaiting: the stored event (which keeps ``payload`` as is)."""
        event_id = self.store(kind, session_id, tuple(payload), tuple(payload.values()),
                              created_at, tenant)
        return OutboxEvent(event_id, kind, session_id, payload, created_at, tenant)

    def store(self, kind: str, session_id: str | None, keys: tuple[str, ...],
              values: tuple[Any, ...], created_at: float, tenant: str = DEFAULT_TENANT) -> int:
        """:meth:`append` without awaiting and without building an event: the payload is
        ``dict(zip(keys, values))``; returns the event's id."""
        event_id = self._next
        self._next = event_id + 1
        events = self._events
        events.append((kind, session_id, keys, values, created_at, tenant))
        if len(events) > self.max_events:
            events.popleft()
            self._purged += 1
        # no wake-up: the relay dispatches in-process events inline
        return event_id

    async def _insert(self, rows: list[Row]) -> list[int]:
        raise NotImplementedError  # append() is overridden: nothing is batched in RAM

    async def read(self, after: int, *, session_id: str | None = None,
                   tenant: str = DEFAULT_TENANT, upto: int | None = None,
                   limit: int = READ_BATCH) -> list[OutboxEvent]:
        first = self._purged + 1  # id of self._events[0]
        start = max(after + 1, first)
        end = self._next if upto is None else min(self._next, upto + 1)
        found: list[OutboxEvent] = []
        if start >= end:
            return found
        stored = islice(self._events, start - first, end - first)
        for event_id, (kind, sid, keys, values, created_at, owner) in enumerate(stored, start):
            if session_id is None or (sid == session_id and owner == tenant):
                payload = dict(zip(keys, values, strict=True))
                found.append(OutboxEvent(event_id, kind, sid, payload, created_at, owner))
                if len(found) >= limit:
                    break
        return found

    async def head(self) -> int:
        return self._next - 1

    async def purged_through(self) -> int:
        return self._purged

    async def purge(self, before: float) -> int:
        removed = 0
        events = self._events
        while events and events[0][4] < before:
            events.popleft()
            removed += 1
        self._purged += removed
        return removed
