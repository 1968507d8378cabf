"""Fan the gateway bus's events out to streaming HTTP clients (the console's Events view).

Bus handlers get only an event's data, not its type, so the feed registers one small sync
handler per known type, and only while at least one client listens: with no console open
the bus's hot path is unchanged. Each client has a bounded queue; a slow client loses events
(counted and reported in-stream as ``feed.dropped``), never slows the bus. :meth:`EventFeed.close`
ends every stream, so a server shutting down need not wait for open consoles.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final

from deep_tree_echo.aar_core.events import HANDLER_ERROR, EventBus
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT

#: The event types the feed follows: the core's, the monitor's alerts, breaker transitions.
FEED_TYPES: Final = (
    "user.input",
    "agent.message",
    "memory.update",
    "integration.alert",
    "circuit.state_changed",
    HANDLER_ERROR,
)
KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 256


class _Listener:
    __slots__ = ("dropped", "queue", "tenant", "types")

    def __init__(self, types: frozenset[str], size: int, tenant: str) -> None:
        self.types = types
        self.tenant = tenant
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(size)  # None: the feed closed
        self.dropped = 0


class EventFeed:
    """Server-sent-event lines of ``bus`` events for any number of listeners."""

    def __init__(self, bus: EventBus, *, queue_size: int = QUEUE_SIZE) -> None:
        self.bus = bus
        self.queue_size = queue_size
        self._listeners: set[_Listener] = set()
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.closed = False
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def _handler(self, event_type: str) -> Callable[[dict[str, Any]], None]:
        def on_event(data: dict[str, Any]) -> None:
            line = _frame({"type": event_type, "timestamp": time.time(), "data": data})
            # a tenant's events (they name it) reach that tenant's listeners only; service
            # events (alerts, breaker transitions) name none and reach every listener
            owner = data.get("tenant")
            for listener in list(self._listeners):
                if listener.types and event_type not in listener.types:
                    continue
                if owner is not None and owner != listener.tenant:
                    continue
                try:
                    listener.queue.put_nowait(line)
                except asyncio.QueueFull:
                    listener.dropped += 1

        return on_event

    def _attach(self) -> None:
        for event_type in FEED_TYPES:
            handler = self._handlers[event_type] = self._handler(event_type)
            self.bus.register(event_type, handler)

    def _detach(self) -> None:
        for event_type, handler in self._handlers.items():
            self.bus.unregister(event_type, handler)
        self._handlers.clear()

    async def stream(
        self,
        types: Iterable[str] = (),
        *,
        tenant: str = DEFAULT_TENANT,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> AsyncIterator[str]:
        """SSE frames of the events of ``types`` (all when empty) that ``tenant`` may see
        (its own and the service's), from now on, forever."""
        if self.closed:
            return
        listener = _Listener(frozenset(types), self.queue_size, tenant)
        if not self._listeners:
            self.loop = asyncio.get_running_loop()
            self._attach()
        self._listeners.add(listener)
        try:
            yield ": connected\n\n"
            while True:
                try:  # (asyncio.timeout: 3.11's wait_for can swallow a cancel)
                    async with asyncio.timeout(keepalive):
                        line = await listener.queue.get()
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if line is None:
                    return
                if listener.dropped:
                    dropped, listener.dropped = listener.dropped, 0
                    yield _frame({"type": "feed.dropped", "timestamp": time.time(),
                                  "data": {"count": dropped}})
                yield line
        finally:
            self._listeners.discard(listener)
            if not self._listeners:
                self._detach()


    def close(self) -> None:
        """End every stream now and refuse new ones (the server is shutting down)."""
        self.closed = True
        for listener in list(self._listeners):
            if listener.queue.full():
                listener.queue.get_nowait()
            listener.queue.put_nowait(None)


def close_event_streams(app: Any) -> None:
    """Close ``app``'s event feed, if it has one (safe from a signal handler: schedules it)."""
    feed: EventFeed | None = getattr(getattr(app, "state", None), "event_feed", None)
    loop = getattr(feed, "loop", None)
    if feed is not None and loop is not None:
        loop.call_soon_threadsafe(feed.close)


def _frame(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event, default=str, ensure_ascii=False)}\n\n"
