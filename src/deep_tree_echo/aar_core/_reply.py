"""The reply an agent declares before it writes the turn's memory (:meth:`AgentContext.announce`).

Where the memory store logs its changes (SQLite with the server's event outbox in the same
file), the change log also stores the turn's ``agent_message`` event in that write's
transaction: one commit per turn instead of two, and no second writer taking the file's write
lock (with two workers that second commit cost a quarter of the throughput). The gateway opens
a :class:`PendingReply` for each turn in :data:`PENDING_REPLY`; the log reads it in the writing
task's context and records what it stored; the gateway then announces the event as stored.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class PendingReply:
    """One turn's reply: who answers which session, and, once logged, where it was stored."""

    session_id: str
    tenant: str
    agent_id: str
    #: The reply text, once the agent announced it.
    text: str | None = None
    #: The outbox id the change log stored the ``agent_message`` under, and the memory whose
    #: write carried it (the gateway trusts it only for the memory the agent returns).
    event_id: int | None = None
    memory_id: str | None = None

    def take(self) -> str | None:
        """The text to store with a memory change, once: None when nothing was announced or
        a change already carried it."""
        return self.text if self.event_id is None else None


#: The turn being answered in this task (set by the gateway around ``Agent.handle``).
PENDING_REPLY: ContextVar[PendingReply | None] = ContextVar("dte_pending_reply", default=None)
