"""The reply an agent declares before it writes the turn's memory (:meth:`AgentContext.announce`).

Where the memory store logs its changes (SQLite with the server's event outbox in the same
file), the change log also stores the turn's ``agent_message`` event in that write's
transaction: one commit per turn instead of two, and no second writer taking the file's write
lock (with two workers that second commit cost a quarter of the throughput). The gateway opens
a :class:`PendingReply` for each turn in :data:`PENDING_REPLY`; the log reads it in the writing
task's context and notes what it stored; the store confirms it once the write is acknowledged
(a rolled-back transaction never is); the gateway then announces the event as stored.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar


class PendingReply:
    """One turn's reply: who answers which session, and, once confirmed, its outbox id.

    The change log runs on the store's writer thread while the turn runs on the event loop,
    so every step takes a lock: once the turn is closed, no change stores the reply.
    """

    __slots__ = ("_lock", "_stored", "agent_id", "closed", "event_id", "session_id",
                 "tenant", "text")

    def __init__(self, session_id: str, tenant: str, agent_id: str) -> None:
        self.session_id = session_id
        self.tenant = tenant
        self.agent_id = agent_id
        #: The reply text, once the agent announced it.
        self.text: str | None = None
        #: The outbox id of the stored ``agent_message``, once its write was acknowledged.
        self.event_id: int | None = None
        self.closed = False
        self._stored: dict[int, int] = {}  # memory_update id -> agent_message id, unconfirmed
        self._lock = threading.Lock()

    def announce(self, text: str) -> None:
        """Set the reply text (ignored once the turn is closed or the reply confirmed)."""
        with self._lock:
            if not self.closed and self.event_id is None:
                self.text = text

    def take(self) -> str | None:
        """The text a change log should store with its change: None when nothing was
        announced, the turn is closed or a write already stored it for good."""
        with self._lock:
            return None if self.closed or self.event_id is not None else self.text

    def stored(self, update_id: int, reply_id: int) -> None:
        """A change log stored the reply as ``reply_id`` next to the change ``update_id``
        (in a transaction that may still roll back)."""
        with self._lock:
            self._stored[update_id] = reply_id

    def confirm(self, update_id: int) -> None:
        """The write whose change was logged as ``update_id`` is acknowledged: the reply it
        stored, if any, is the turn's."""
        with self._lock:
            reply_id = self._stored.get(update_id)
            if reply_id is not None and self.event_id is None:
                self.event_id = reply_id

    def close(self) -> None:
        """The turn is over: later writes (tasks it left running) store no reply."""
        with self._lock:
            self.closed = True


#: The turn being answered in this task (set by the gateway around ``Agent.handle``).
PENDING_REPLY: ContextVar[PendingReply | None] = ContextVar("dte_pending_reply", default=None)
