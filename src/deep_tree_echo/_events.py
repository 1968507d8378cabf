"""What every layer may emit events to: the :class:`EventSink` protocol.

It lives at the package root, below ``resilience`` and ``aar_core``, so a circuit breaker, the
memory manager or the monitor can take the gateway's :class:`~deep_tree_echo.aar_core.events.
EventBus` (or any object with an ``emit``) without importing the layer that defines it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol, runtime_checkable

__all__ = ["EventSink"]


@runtime_checkable
class EventSink(Protocol):
    """Anything events can be emitted to: ``await sink.emit(event_type, data)``."""

    def emit(self, event_type: str, data: dict[str, Any], /) -> Awaitable[object]:
        """Deliver ``data`` to the handlers of ``event_type``."""
        ...
