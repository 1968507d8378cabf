"""The HTTP/WebSocket service: ``create_app()`` and the WebSocket ``ConnectionManager``."""

from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.websocket import ConnectionManager

__all__ = ["ConnectionManager", "create_app"]
