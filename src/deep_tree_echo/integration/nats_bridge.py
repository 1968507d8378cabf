"""The NATS event bridge, served from :mod:`deep_tree_echo.server.nats_bridge` (re-exported)."""

from __future__ import annotations

from deep_tree_echo.server.nats_bridge import (
    DEFAULT_FORWARD,
    MAX_MESSAGE_BYTES,
    ORIGIN_KEY,
    ConnectionState,
    NatsEventBridge,
)

__all__ = [
    "DEFAULT_FORWARD",
    "MAX_MESSAGE_BYTES",
    "ORIGIN_KEY",
    "ConnectionState",
    "NatsEventBridge",
]
