"""The event-driven pattern: loose coupling between Echo and outside systems through events.

Events *from* Echo arrive on an :class:`EventBus` (usually the gateway's, ``gateway.event_bus``);
events *from* outside go to handlers kept here. :class:`WebSocketIntegration` wires both
directions to a WebSocket connection manager, with the message shapes the service sends
(:mod:`deep_tree_echo.server.session_events`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from deep_tree_echo.aar_core.events import EventBus, EventHandler
from deep_tree_echo.server.session_events import (
    accepts_keyword,
    agent_message,
    broadcast_in_tenant,
    event_session_id,
    event_tenant,
    memory_update_message,
)

__all__ = [
    "EventDrivenIntegration",
    "ExternalHandler",
    "WebSocketIntegration",
    "WebSocketManager",
]

logger = logging.getLogger("deep_tree_echo.integration.events")

ExternalHandler = Callable[[dict[str, Any]], Awaitable[Any] | Any]
"""A sync or async callable taking an event's data dict."""


class EventDrivenIntegration:
    """Routes events between the Echo bus and handlers for external systems.

    Pass ``event_bus=`` to join an existing bus (e.g. ``gateway.event_bus``); by default a new
    private :class:`EventBus` is created, as in the seed.
    """

    def __init__(self, *, event_bus: EventBus | None = None) -> None:
        self.event_bus = event_bus if event_bus is not None else EventBus()
        self.external_handlers: dict[str, list[ExternalHandler]] = {}
        self.echo_handlers: dict[str, list[EventHandler]] = {}
        self.logger = logging.getLogger(f"deep_tree_echo.integration.{type(self).__name__}")

    def register_external_handler(self, event_type: str, handler: ExternalHandler) -> None:
        """Register handler for events from external systems."""
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        self.external_handlers.setdefault(event_type, []).append(handler)

    def register_echo_handler(self, event_type: str, handler: EventHandler) -> None:
        """Register handler for events from the Echo system (on :attr:`event_bus`)."""
        self.event_bus.register(event_type, handler)
        self.echo_handlers.setdefault(event_type, []).append(handler)

    async def emit_to_external(self, event_type: str, data: dict[str, Any]) -> int:
        """Run every external handler of ``event_type`` concurrently; return how many succeeded.

        A handler that raises is logged and does not stop the others.
        """
        handlers = list(self.external_handlers.get(event_type, []))
        if not handlers:
            return 0
        outcomes = await asyncio.gather(
            *(self._run_external(event_type, handler, data) for handler in handlers)
        )
        return sum(outcomes)

    async def _run_external(
        self, event_type: str, handler: ExternalHandler, data: dict[str, Any]
    ) -> bool:
        try:
            result = handler(data)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.logger.exception(
                "external handler %s failed on %r", getattr(handler, "__qualname__", handler),
                event_type,
            )
            return False
        return True

    async def forward_memory_update(self, event_data: dict[str, Any]) -> None:
        """Default ``memory.update`` forwarder, so subclasses may register it without defining it.

        With a ``websocket_manager`` attribute, broadcasts ``{"type": "memory_update", **data}``
        to the clients of the event's tenant (``default`` when it names none) and, when it names
        a ``session_id``, only to that session's subscribers, so updates never leak to other
        sessions or tenants; otherwise hands the data to the ``memory.update`` external handlers.
        """
        manager = getattr(self, "websocket_manager", None)
        if manager is None:
            await self.emit_to_external("memory.update", event_data)
            return
        message = self._memory_update_message(event_data)
        await broadcast_in_tenant(manager, message, event_data)

    def _memory_update_message(self, event_data: dict[str, Any]) -> dict[str, Any]:
        """The client message for a ``memory.update`` event: the whole event data."""
        return {"type": "memory_update", **event_data}

    async def emit_to_echo(self, event_type: str, data: dict[str, Any]) -> int:
        """Emit event to the Echo system; returns how many Echo handlers completed."""
        return await self.event_bus.emit(event_type, data)

    def close(self) -> None:
        """Unregister this integration's Echo handlers from the bus and forget external ones."""
        for event_type, handlers in self.echo_handlers.items():
            for handler in handlers:
                self.event_bus.unregister(event_type, handler)
        self.echo_handlers.clear()
        self.external_handlers.clear()


class WebSocketManager(Protocol):
    """What :class:`WebSocketIntegration` needs from a connection manager: the seed's
    ``broadcast(message)``. A ``session_id`` keyword (as the server's ``ConnectionManager``
    has) is used when the signature has one, to reach only that session's clients."""

    def broadcast(self, message: dict[str, Any], /) -> Any: ...


def routes_by_session(broadcast: Callable[..., Any]) -> bool:
    """True when ``broadcast`` takes a ``session_id`` keyword (or any keyword)."""
    return accepts_keyword(broadcast, "session_id")


class WebSocketIntegration(EventDrivenIntegration):
    """Forwards Echo's ``agent.message``/``memory.update`` to WebSocket clients of the session,
    and WebSocket ``user.message`` events to Echo as ``user.input``."""

    def __init__(
        self, websocket_manager: WebSocketManager, *, event_bus: EventBus | None = None
    ) -> None:
        super().__init__(event_bus=event_bus)
        self.websocket_manager = websocket_manager
        self.setup_integration_handlers()

    def setup_integration_handlers(self) -> None:
        # Handle Echo system events and forward to WebSocket
        self.register_echo_handler("agent.message", self.forward_agent_message)
        self.register_echo_handler("memory.update", self.forward_memory_update)

        # Handle WebSocket events and forward to Echo
        self.register_external_handler("user.message", self.process_user_message)

    async def forward_agent_message(self, event_data: dict[str, Any]) -> None:
        await broadcast_in_tenant(
            self.websocket_manager, agent_message(event_data), event_data
        )

    def _memory_update_message(self, event_data: dict[str, Any]) -> dict[str, Any]:
        # only these fields: the session is the routing key, not part of what clients get
        return memory_update_message(event_data)

    async def process_user_message(self, message_data: dict[str, Any]) -> None:
        content = message_data.get("message")
        if content is None:
            content = message_data.get("content")
        event = {
            "content": content,
            "user_id": message_data.get("user_id"),
            "session_id": message_data.get("session_id"),
        }
        if message_data.get("tenant") is not None:  # absent: the default tenant's
            event["tenant"] = event_tenant(message_data)
        await self.emit_to_echo("user.input", event)


_session_id = event_session_id
