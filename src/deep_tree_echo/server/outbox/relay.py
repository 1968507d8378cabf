"""The relay between the gateway's bus, the event outbox and this worker's WebSocket clients.

Local ``agent.message`` / ``memory.update`` events are appended to the outbox (awaited, so a
request's events are stored before it is answered); where the outbox shares the SQLite store's
file, the store writes each ``memory.update`` in the transaction of its change instead. One
tail task per worker reads the outbox in id order and queues each event for the subscribers of
its session, so every worker's clients see every worker's events, in order per session. A
client's per-session cursor makes delivery exactly-once across a resume (``subscribe`` with
``since``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deep_tree_echo._json import COMPACT_ENCODER
from deep_tree_echo.aar_core._reply import PENDING_REPLY
from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.memory.manager import LOGGED_EVENT_ID
from deep_tree_echo.aar_core.memory.sqlite import SQLiteStore
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT, MemoryStore
from deep_tree_echo.server.errors import EventsExpiredError
from deep_tree_echo.server.outbox._base import (
    READ_BATCH,
    EventOutbox,
    OutboxEvent,
    encode_payload,
)
from deep_tree_echo.server.outbox.memory import MemoryOutbox
from deep_tree_echo.server.outbox.sqlite import SQLiteOutbox
from deep_tree_echo.server.websocket import ConnectionManager, WebSocketClient

logger = logging.getLogger("deep_tree_echo.server.outbox")

ORIGIN_KEY = "_origin_node"  # set by the NATS bridge on events from other nodes
#: Seconds between tail rounds when no wake-up arrives (covers a lost NOTIFY connection).
FALLBACK_INTERVAL = 1.0
#: At most this long a local event's append waits for this worker to dispatch it.
DISPATCH_WAIT = 2.0


def _tenant(data: Mapping[str, Any]) -> str:
    tenant = data.get("tenant")
    return tenant if isinstance(tenant, str) and tenant else DEFAULT_TENANT


def _session(data: Mapping[str, Any]) -> str | None:
    session_id = data.get("session_id")
    return session_id if isinstance(session_id, str) and session_id else None


def _agent_message(data: dict[str, Any]) -> dict[str, Any]:
    return {"agent_id": data.get("agent_id"), "message": data.get("message")}


def _memory_update(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"memory_id": data.get("memory_id"), "action": data.get("action"),
            "version": data.get("version")}


#: The payload keys of :func:`_agent_message` / :func:`_memory_update`, in order.
_AGENT_MESSAGE_KEYS = ("agent_id", "message")
_MEMORY_UPDATE_KEYS = ("memory_id", "action", "version")

_KINDS = {
    "agent.message": ("agent_message", _agent_message),
    "memory.update": ("memory_update", _memory_update),
}


class EventRelay:
    """Bus -> outbox -> WebSocket clients; see the module docstring."""

    def __init__(
        self,
        outbox: EventOutbox,
        manager: ConnectionManager,
        bus: EventBus,
        *,
        retention: float = 3600.0,
    ) -> None:
        self.outbox = outbox
        #: The in-process outbox, appended to and dispatched from without awaiting.
        self._local = outbox if isinstance(outbox, MemoryOutbox) else None
        self.manager = manager
        self.bus = bus
        self.retention = retention
        self.head = 0  # highest event id dispatched to this worker's clients
        self._lock = asyncio.Lock()  # a tail round and a resume never interleave
        self._dispatched = asyncio.Condition()  # notified when ``head`` moves
        self._waiting = 0  # appenders waiting on ``_dispatched``
        self._tasks: list[asyncio.Task[None]] = []
        self._logging_store: SQLiteStore | None = None  # writes memory_update events itself
        self._log: Callable[[Any, Mapping[str, Any]], int] | None = None  # attached to it
        self.stats = {"appended": 0, "append_failed": 0, "dispatched": 0, "resumed": 0}

    def log_changes_of(self, store: MemoryStore) -> bool:
        """Have ``store`` write each ``memory_update`` event in the transaction of the change
        it reports, when the outbox lives in the store's SQLite file: a crash then never keeps
        a change without its event, and a request waits for one commit less. True if so."""
        outbox = self.outbox
        if not (isinstance(store, SQLiteStore) and isinstance(outbox, SQLiteOutbox)
                and outbox.shares_file_with(store)):
            return False

        def log(conn: Any, change: Mapping[str, Any]) -> int:
            now = time.time()
            row = ("memory_update", _session(change), encode_payload(_memory_update(change)),
                   now, _tenant(change))
            event_id = outbox.insert_on(conn, row)
            pending = PENDING_REPLY.get()  # the writing task's turn, if it announced its reply
            if pending is not None and (text := pending.take()) is not None:
                reply = {"agent_id": pending.agent_id, "message": text}
                pending.stored(event_id, outbox.insert_on(conn, (
                    "agent_message", pending.session_id, encode_payload(reply), now,
                    pending.tenant)))
            return event_id

        def logged(event_id: int) -> None:  # the write is acknowledged: its reply counts
            pending = PENDING_REPLY.get()
            if pending is not None:
                pending.confirm(event_id)

        store.change_log = self._log = log
        store.change_logged = logged
        self._logging_store = store
        return True

    async def start(self) -> None:
        self.head = await self.outbox.head()
        self.bus.register("agent.message", self._on_agent_message)
        self.bus.register("memory.update", self._on_memory_update)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._tail(), name="outbox-tail"),
                       loop.create_task(self._purge(), name="outbox-purge")]

    async def stop(self) -> None:
        store, self._logging_store = self._logging_store, None
        if store is not None and store.change_log is self._log:  # not a later relay's
            store.change_log = store.change_logged = None
        self.bus.unregister("agent.message", self._on_agent_message)
        self.bus.unregister("memory.update", self._on_memory_update)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- bus -> outbox ---------------------------------------------------------------------

    # Plain functions, not coroutines: on the in-process outbox an event is stored and
    # dispatched synchronously (nothing to await), else they return the coroutine to await.
    def _on_agent_message(self, data: dict[str, Any]) -> Coroutine[Any, Any, Any] | None:
        local = self._local
        if local is None or ORIGIN_KEY in data:
            return self._store("agent.message", data)
        return self._relay_local(local, "agent_message", data, _AGENT_MESSAGE_KEYS,
                                 (data.get("agent_id"), data.get("message")))

    def _on_memory_update(self, data: dict[str, Any]) -> Coroutine[Any, Any, Any] | None:
        local = self._local
        if local is None or ORIGIN_KEY in data:
            return self._store("memory.update", data)
        return self._relay_local(local, "memory_update", data, _MEMORY_UPDATE_KEYS,
                                 (data.get("memory_id"), data.get("action"), data.get("version")))

    def _relay_local(self, local: MemoryOutbox, kind: str, data: dict[str, Any],
                     keys: tuple[str, ...], values: tuple[Any, ...]
                     ) -> Coroutine[Any, Any, Any] | None:
        """Store a local event in the in-process outbox and dispatch it inline when it is the
        next one (the payload is ``dict(zip(keys, values))``, the shape of :data:`_KINDS`)."""
        session_id = data.get("session_id")  # what _session() and _tenant() return, inlined
        if not isinstance(session_id, str) or not session_id:
            session_id = None
        tenant = data.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            tenant = DEFAULT_TENANT
        now = time.time()
        event_id = local.store(kind, session_id, keys, values, now, tenant)
        stats = self.stats
        stats["appended"] += 1
        # this worker's own clients get the event before the request is answered
        head = self.head
        if head >= event_id:
            return None
        if event_id == head + 1 and not self._lock.locked():  # the next one, nobody replaying
            if self.manager.active_connections:
                payload = dict(zip(keys, values, strict=True))
                self._dispatch((OutboxEvent(event_id, kind, session_id, payload, now, tenant),))
            else:  # nobody to deliver to: what _dispatch does then, without building the event
                self.head = event_id
                stats["dispatched"] += 1
            return None
        return self._round()

    async def _store(self, event_type: str, data: dict[str, Any]) -> None:
        kind, shape = _KINDS[event_type]
        session_id, tenant = _session(data), _tenant(data)
        if ORIGIN_KEY in data:  # from a NATS peer: not ours to store
            if not self.outbox.shared_between_nodes:  # ... but our clients have no other way
                frame = {"type": kind, **shape(data), "session_id": session_id}
                await self.manager.broadcast(frame, session_id=session_id, tenant=tenant)
            return
        # a memory_update (and a turn's agent_message, ``aar_core._reply``) the memory store
        # stored with the change itself; trusted only from a store this relay attached
        logged = data.get(LOGGED_EVENT_ID) if self._logging_store is not None else None
        if isinstance(logged, int):  # stored by the memory store with the change itself
            event_id = logged
            self.outbox.changed.set()  # wake the tailer now, not at the watch's next check
        else:
            try:
                event_id = await self.outbox.append(kind, session_id, shape(data), time.time(),
                                                    tenant)
            except Exception:
                self.stats["append_failed"] += 1
                raise
        self.stats["appended"] += 1
        # this worker's own clients get the event before the request is answered (with no
        # client connected, nobody waits for it: the next tail round moves past it)
        if self.head >= event_id or not self.manager.active_connections:
            return
        if self.outbox.in_process:  # nobody else appends: no tail round is coming
            await self._round()
            return
        self._waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISPATCH_WAIT), self._dispatched:
                    await self._dispatched.wait_for(lambda: self.head >= event_id)
        finally:
            self._waiting -= 1

    # -- outbox -> clients -----------------------------------------------------------------

    async def _tail(self) -> None:
        changed = self.outbox.changed
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns instead of raising
            # when a cancel meets a wake-up, and this loop would then outlive its shutdown
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FALLBACK_INTERVAL):
                    await changed.wait()
            changed.clear()
            try:
                while await self._round():
                    pass
            except Exception:  # a broken store must not end the task; next round retries
                logger.exception("reading the %s event outbox failed", self.outbox.kind)

    async def _round(self) -> bool:
        """Dispatch the next batch of events; True when there may be more.

        With no WebSocket client connected to this worker there is nobody to deliver to: the
        round moves ``head`` to the outbox's head without reading the events (a client that
        connects later asks for what it missed with ``since``, which reads the outbox).
        """
        async with self._lock:
            if self.manager.active_connections:
                events = await self.outbox.read(self.head)
                self._dispatch(events)
                moved, more = bool(events), len(events) >= READ_BATCH
            else:
                head = await self.outbox.head()
                moved, more = head > self.head, False
                if moved:
                    self.stats["dispatched"] += head - self.head
                    self.head = head
        if moved and self._waiting:
            async with self._dispatched:
                self._dispatched.notify_all()
        return more

    def _dispatch(self, events: Sequence[OutboxEvent]) -> None:
        """Queue ``events`` (in id order, after ``head``) for their tenant's clients of their
        sessions (every client of the tenant for an event without a session)."""
        manager = self.manager
        for event in events:
            if manager.active_connections:
                clients = manager.clients(event.session_id, tenant=event.tenant)
            else:
                clients = []
            if clients:
                text = COMPACT_ENCODER.encode(event.frame())
                for client in clients:
                    self._deliver(client, event.session_id, event.id, text)
            self.head = event.id
            self.stats["dispatched"] += 1

    def _deliver(self, client: WebSocketClient, session_id: str | None, event_id: int,
                 text: str) -> None:
        if session_id is not None:
            if client.cursors.get(session_id, 0) >= event_id:
                return  # already sent by a resume
            client.cursors[session_id] = event_id
        self.manager.enqueue_text(client, text)

    async def resume(self, client: WebSocketClient, session_id: str, since: int) -> bool:
        """Subscribe ``client`` to ``session_id`` and queue its events after ``since``.

        False when the client follows too many sessions already. Raises
        :class:`EventsExpiredError` when events after ``since`` were purged.
        """
        async with self._lock:
            purged = await self.outbox.purged_through()
            if since < purged:
                raise EventsExpiredError(
                    f"events after {since} are no longer kept (retention {self.retention:g} s;"
                    f" events up to {purged} were purged); subscribe without 'since' and "
                    "reload the session's state",
                    since=since, purged_through=purged,
                )
            if not self.manager.subscribe(client, session_id):
                return False
            self.manager.send_nowait(client, {"type": "subscribed", "session_id": session_id,
                                              "since": since})
            cursor = max(since, client.cursors.get(session_id, 0))
            while cursor < self.head:
                events = await self.outbox.read(cursor, session_id=session_id,
                                                tenant=client.tenant, upto=self.head)
                for event in events:
                    self.manager.enqueue_text(client, COMPACT_ENCODER.encode(event.frame()))
                cursor = events[-1].id if len(events) >= READ_BATCH else self.head
            client.cursors[session_id] = max(cursor, since)
            self.stats["resumed"] += 1
            return True

    async def _purge(self) -> None:
        interval = min(max(self.retention / 4, 1.0), 300.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.outbox.purge(time.time() - self.retention)
            except Exception:
                logger.exception("purging the %s event outbox failed", self.outbox.kind)


class RelayCollector(Collector):
    """Reads an :class:`EventRelay`'s counters at scrape time (``dte_events_*``)."""

    def __init__(self, relay: EventRelay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("dte_events_head", "Highest outbox event id this worker has "
                                "dispatched", value=self.relay.head)
        stats = self.relay.stats
        for name, doc in (
            ("appended", "Events this worker appended to the outbox"),
            ("append_failed", "Events this worker failed to append to the outbox"),
            ("dispatched", "Outbox events this worker dispatched to its WebSocket clients"),
            ("resumed", "WebSocket subscriptions resumed from an event id"),
        ):
            yield CounterMetricFamily(f"dte_events_{name}", doc, value=stats[name])
