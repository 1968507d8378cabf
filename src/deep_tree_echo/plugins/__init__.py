"""Echo plugins: the :class:`BasePlugin` base class and the entry-point :class:`PluginManager`."""

from __future__ import annotations

from deep_tree_echo.plugins.base import BasePlugin
from deep_tree_echo.plugins.manager import ENTRY_POINT_GROUP, PluginManager

__all__ = ["ENTRY_POINT_GROUP", "BasePlugin", "PluginManager"]
