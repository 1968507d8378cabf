"""The event outbox contract: an append-only, id-ordered log of client events in the store.

Every worker appends the ``agent_message`` / ``memory_update`` events it produces and tails the
log to fan them out to its own WebSocket clients, so an event reaches every worker and node that
shares the store. Ids increase monotonically in commit order, so ``id > cursor`` never skips an
event; events older than the retention window are purged and the highest purged id is
remembered, so a client resuming from before it gets a clear ``events_expired`` error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT

logger = logging.getLogger("deep_tree_echo.server.outbox")

#: ``(kind, session_id, payload_json, created_at, tenant)``: one event as inserted.
Row = tuple[str, str | None, str, float, str]
#: Events read per tail round (the relay loops until it has caught up).
READ_BATCH = 500


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One stored event: ``kind`` is the client frame type, ``payload`` the frame's body;
    ``tenant`` owns it (its session is that tenant's, and only that tenant's clients get it)."""

    id: int
    kind: str
    session_id: str | None
    payload: dict[str, Any]
    created_at: float
    tenant: str = DEFAULT_TENANT

    def frame(self) -> dict[str, Any]:
        """The WebSocket frame: ``{"type": kind, **payload, "event_id", "session_id"}``."""
        return {"type": self.kind, **self.payload, "event_id": self.id,
                "session_id": self.session_id}


@dataclass(slots=True)
class _Pending:
    kind: str
    session_id: str | None
    payload: str
    created_at: float
    tenant: str
    future: asyncio.Future[int]


class EventOutbox(ABC):
    """Append-only event log with a wake-up signal; see the module docstring.

    Appends are group-committed: events appended while a batch is being written go together
    in the next one, and each ``append`` returns once its own batch has committed.
    """

    #: Short name used in logs, e.g. ``"sqlite"``.
    kind: str = "abstract"
    #: True when other *nodes* read this outbox (events from NATS peers are then redundant).
    shared_between_nodes: bool = False
    #: True when only this process appends: the appender dispatches inline, no tailing needed.
    in_process: bool = False

    def __init__(self) -> None:
        self.changed = asyncio.Event()  # set when new events may be there to read
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Create the schema and start the change watcher. Idempotent."""

    async def close(self) -> None:
        """Finish queued appends and release resources."""
        flusher = self._flusher
        if flusher is not None:
            with contextlib.suppress(Exception):
                await flusher

    async def append(self, kind: str, session_id: str | None, payload: dict[str, Any],
                     created_at: float, tenant: str = DEFAULT_TENANT) -> int:
        """Store one event of ``tenant``; returns its id once committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        text = encode_payload(payload)
        self._pending.append(_Pending(kind, session_id, text, created_at, tenant, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name=f"outbox-{self.kind}-flush"
            )
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            rows = [(p.kind, p.session_id, p.payload, p.created_at, p.tenant) for p in batch]
            try:
                ids = await self._insert(rows)
            except Exception as exc:
                logger.error("appending %d event(s) to the %s outbox failed: %r",
                             len(batch), self.kind, exc)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, event_id in zip(batch, ids, strict=True):
                if not p.future.done():
                    p.future.set_result(event_id)
            self.changed.set()

    @abstractmethod
    async def _insert(self, rows: list[Row]) -> list[int]:
        """Insert ``(kind, session_id, payload_json, created_at, tenant)`` rows in one
        transaction, in order; return their ids (increasing, and visible in that order)."""

    @abstractmethod
    async def read(self, after: int, *, session_id: str | None = None,
                   tenant: str = DEFAULT_TENANT, upto: int | None = None,
                   limit: int = READ_BATCH) -> list[OutboxEvent]:
        """Events with ``after < id (<= upto)``, oldest first; with ``session_id``, only
        that session of ``tenant`` (every tenant's events otherwise)."""

    @abstractmethod
    async def head(self) -> int:
        """The highest event id ever committed (0 when none)."""

    @abstractmethod
    async def purged_through(self) -> int:
        """The highest id removed by :meth:`purge` (0 when nothing was purged)."""

    @abstractmethod
    async def purge(self, before: float) -> int:
        """Remove events created before ``before`` (UNIX seconds); return how many."""


def encode_payload(payload: dict[str, Any]) -> str:
    """An event's payload as stored: compact JSON text."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)


def decode_payload(text: str | bytes) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}
