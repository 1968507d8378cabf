"""Gateway events → WebSocket clients of the session: ``agent_message`` and ``memory_update``.

The message shapes live here (the seed's :class:`~deep_tree_echo.integration.event_driven.
WebSocketIntegration` sends the same ones); :func:`forward_session_events` wires a bus to a
connection manager for the service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from deep_tree_echo.aar_core.events import EventBus

__all__ = [
    "SessionBroadcaster",
    "agent_message",
    "event_session_id",
    "forward_session_events",
    "memory_update_message",
]


class SessionBroadcaster(Protocol):
    """What forwarding needs from a connection manager."""

    async def broadcast(
        self, message: dict[str, Any], *, session_id: str | None = None
    ) -> Any: ...


def event_session_id(event_data: dict[str, Any]) -> str | None:
    """The session an event belongs to, if it names a usable one."""
    session_id = event_data.get("session_id")
    return session_id if isinstance(session_id, str) and session_id else None


def agent_message(event_data: dict[str, Any]) -> dict[str, Any]:
    """The client message of an ``agent.message`` event."""
    return {
        "type": "agent_message",
        "agent_id": event_data.get("agent_id"),
        "message": event_data.get("message"),
    }


def memory_update_message(event_data: dict[str, Any]) -> dict[str, Any]:
    """The client message of a ``memory.update`` event: the session is the routing key only."""
    return {
        "type": "memory_update",
        "memory_id": event_data.get("memory_id"),
        "action": event_data.get("action"),
        "version": event_data.get("version"),
    }


def forward_session_events(manager: SessionBroadcaster, bus: EventBus) -> Callable[[], None]:
    """Forward ``bus``'s agent messages and memory updates to ``manager``; returns the undo."""

    async def on_agent_message(event_data: dict[str, Any]) -> None:
        await manager.broadcast(agent_message(event_data), session_id=event_session_id(event_data))

    async def on_memory_update(event_data: dict[str, Any]) -> None:
        message = memory_update_message(event_data)
        session_id = event_session_id(event_data)
        if session_id is None:
            await manager.broadcast(message)
        else:
            await manager.broadcast(message, session_id=session_id)

    bus.register("agent.message", on_agent_message)
    bus.register("memory.update", on_memory_update)

    def undo() -> None:
        bus.unregister("agent.message", on_agent_message)
        bus.unregister("memory.update", on_memory_update)

    return undo
