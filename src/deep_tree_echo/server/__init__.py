"""The HTTP/WebSocket service: ``create_app()`` and the WebSocket ``ConnectionManager``.

Both load on first access, so importing a light submodule (``server.errors``,
``server.datadir_lock``) does not pull in FastAPI and the whole app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deep_tree_echo._lazy import lazy_exports

if TYPE_CHECKING:
    from deep_tree_echo.server.app import create_app
    from deep_tree_echo.server.websocket import ConnectionManager

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ConnectionManager": "deep_tree_echo.server.websocket",
        "create_app": "deep_tree_echo.server.app",
    },
)

__all__ = ["ConnectionManager", "create_app"]
