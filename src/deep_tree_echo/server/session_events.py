"""Gateway events → WebSocket clients of the session: ``agent_message`` and ``memory_update``.

The message shapes live here (the seed's :class:`~deep_tree_echo.integration.event_driven.
WebSocketIntegration` sends the same ones); :func:`forward_session_events` wires a bus to a
connection manager for the service.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any, Protocol

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT

__all__ = [
    "SessionBroadcaster",
    "accepts_keyword",
    "agent_message",
    "broadcast_in_tenant",
    "event_session_id",
    "event_tenant",
    "forward_session_events",
    "memory_update_message",
]


class SessionBroadcaster(Protocol):
    """What forwarding needs from a connection manager."""

    async def broadcast(
        self,
        message: dict[str, Any],
        *,
        session_id: str | None = None,
        tenant: str = DEFAULT_TENANT,
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


async def broadcast_in_tenant(
    manager: Any, message: dict[str, Any], event_data: dict[str, Any]
) -> None:
    """Send ``message`` (plus the event's ``session_id``) to the clients of the event's tenant,
    and of its session when it names one; sync or async ``broadcast`` alike.

    A manager whose ``broadcast`` takes no ``tenant`` (the seed's) knows one audience only: it
    gets the ``default`` tenant's events and nothing of any other tenant's; one that takes no
    ``session_id`` either (the seed's ``broadcast(message)``) gets them all, and its clients
    tell sessions apart by the message's ``session_id``.
    """
    session_id, tenant = event_session_id(event_data), event_tenant(event_data)
    message = {**message, "session_id": session_id}
    broadcast = manager.broadcast
    if accepts_keyword(broadcast, "tenant"):
        result = broadcast(message, session_id=session_id, tenant=tenant)
    elif tenant != DEFAULT_TENANT:
        return
    elif session_id is not None and accepts_keyword(broadcast, "session_id"):
        result = broadcast(message, session_id=session_id)
    else:
        result = broadcast(message)
    if inspect.isawaitable(result):
        await result


_ACCEPTS: dict[tuple[Any, str], bool] = {}


def accepts_keyword(function: Any, name: str) -> bool:
    """Whether ``function`` takes keyword ``name`` (or any keyword); cached per class method."""
    owner = getattr(function, "__func__", function)  # a bound method: cache by its function
    try:
        known = _ACCEPTS.get((owner, name))
    except TypeError:  # unhashable callable
        known = None
    if known is None:
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):  # builtins and C callables may have no signature
            return False
        keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        known = any(
            p.kind is inspect.Parameter.VAR_KEYWORD or (p.name == name and p.kind in keyword)
            for p in parameters
        )
        if len(_ACCEPTS) < 1024:
            with contextlib.suppress(TypeError):  # unhashable callable: not cached
                _ACCEPTS[(owner, name)] = known
    return known


def event_tenant(event_data: dict[str, Any]) -> str:
    """The tenant an event belongs to; events that name none are the ``default`` tenant's."""
    tenant = event_data.get("tenant")
    return tenant if isinstance(tenant, str) and tenant else DEFAULT_TENANT


def forward_session_events(manager: SessionBroadcaster, bus: EventBus) -> Callable[[], None]:
    """Forward ``bus``'s agent messages and memory updates to ``manager``; returns the undo."""

    async def on_agent_message(event_data: dict[str, Any]) -> None:
        await broadcast_in_tenant(manager, agent_message(event_data), event_data)

    async def on_memory_update(event_data: dict[str, Any]) -> None:
        await broadcast_in_tenant(manager, memory_update_message(event_data), event_data)

    bus.register("agent.message", on_agent_message)
    bus.register("memory.update", on_memory_update)

    def undo() -> None:
        bus.unregister("agent.message", on_agent_message)
        bus.unregister("memory.update", on_memory_update)

    return undo
