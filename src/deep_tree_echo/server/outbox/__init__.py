"""The event outbox: how ``agent_message`` / ``memory_update`` events reach every worker and node.

``outbox_for(settings)`` picks the outbox that lives with the memory store: a table in the
SQLite file, a table in PostgreSQL, else (in-memory and Redis stores) a list in this process.
"""

from __future__ import annotations

from deep_tree_echo.config import EchoSettings
from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.server.outbox._base import EventOutbox, OutboxEvent
from deep_tree_echo.server.outbox.memory import MemoryOutbox

__all__ = ["EventOutbox", "MemoryOutbox", "OutboxEvent", "outbox_for"]


def outbox_for(settings: EchoSettings) -> EventOutbox:
    """The outbox that goes with ``settings``' memory store (not opened yet)."""
    kind = settings.store_kind
    if kind == "sqlite" and settings.data_dir is not None:
        from deep_tree_echo.server.outbox.sqlite import SQLiteOutbox

        return SQLiteOutbox(settings.data_dir / "memories.db",
                            poll_interval=settings.event_poll_interval)
    if kind == "postgres":
        url = settings.database_url
        if not url:
            raise ConfigurationError(
                "the postgres store needs database_url (DTE_DATABASE_URL)", code="no_database_url"
            )
        from deep_tree_echo.server.outbox.postgres import PostgresOutbox

        return PostgresOutbox(url)
    return MemoryOutbox()
