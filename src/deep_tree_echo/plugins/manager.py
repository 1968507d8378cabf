"""Discovers plugins through entry points and drives their lifecycle for the service.

Plugins register in the ``deep_tree_echo.plugins`` entry-point group. Only names allowed by
``settings.plugins`` load (``"*"`` allows all, empty allows none). A plugin that fails to
import or initialize is logged, recorded in :attr:`PluginManager.failed` and skipped; the
others still start. ``stop`` shuts them down in reverse start order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import TracebackType
from typing import TYPE_CHECKING, Any

from deep_tree_echo.config import EchoSettings
from deep_tree_echo.plugins.base import BasePlugin

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.gateway import AARGateway

__all__ = ["ENTRY_POINT_GROUP", "PluginManager"]

ENTRY_POINT_GROUP = "deep_tree_echo.plugins"

logger = logging.getLogger("deep_tree_echo.plugins")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PluginManager:
    """Loads the allowed plugins, initializes them with the gateway, and shuts them down."""

    def __init__(
        self,
        gateway: AARGateway | None,
        settings: EchoSettings | Mapping[str, Any] | None = None,
        *,
        group: str = ENTRY_POINT_GROUP,
        init_timeout: float | None = 30.0,
    ) -> None:
        self.gateway = gateway
        self.settings = EchoSettings.coerce(settings)
        self.group = group
        self.init_timeout = init_timeout
        self.loaded: dict[str, BasePlugin] = {}
        self.failed: dict[str, str] = {}

    def _allowed(self, name: str) -> bool:
        allow = self.settings.plugins
        return "*" in allow or name in allow

    def discover(self) -> list[tuple[str, type[BasePlugin]]]:
        """The allowed plugin classes of the entry-point group, in allowlist/name order.

        Entry points that fail to import or are not :class:`BasePlugin` subclasses are
        recorded in :attr:`failed`; allowlisted names with no entry point too.
        """
        found: dict[str, EntryPoint] = {}
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            if self._allowed(ep.name) and ep.name not in found:
                found[ep.name] = ep
        for name in self.settings.plugins:
            if name != "*" and name not in found:
                self.failed[name] = f"no entry point named {name!r} in group {self.group!r}"
                logger.error("plugin %s: %s", name, self.failed[name])
        order = [n for n in self.settings.plugins if n in found] + sorted(
            n for n in found if n not in self.settings.plugins
        )
        discovered: list[tuple[str, type[BasePlugin]]] = []
        for name in order:
            ep = found[name]
            try:
                obj = ep.load()
            except Exception as exc:
                self._fail(name, f"cannot import {ep.value}: {_describe(exc)}", exc)
                continue
            if not (isinstance(obj, type) and issubclass(obj, BasePlugin)):
                self._fail(name, f"{ep.value} is not a BasePlugin subclass", None)
                continue
            discovered.append((name, obj))
        return discovered

    async def start(self) -> dict[str, BasePlugin]:
        """Instantiate and initialize every discovered plugin; return :attr:`loaded`."""
        for name, plugin_class in self.discover():
            if name in self.loaded:
                continue
            plugin: BasePlugin | None = None
            try:
                plugin = plugin_class()
                config = dict(self.settings.plugin_config.get(name, {}))
                async with asyncio.timeout(self.init_timeout):
                    await plugin.initialize(config, self.gateway)
            except Exception as exc:
                reason = _describe(exc)
                if isinstance(exc, TimeoutError):
                    reason = f"initialize did not finish within {self.init_timeout}s"
                self._fail(name, f"initialize failed: {reason}", exc)
                if plugin is not None:
                    await self._shutdown(name, plugin)
                continue
            self.failed.pop(name, None)
            self.loaded[name] = plugin
            logger.info("plugin %s %s started", name, plugin.version)
        return self.loaded

    async def stop(self) -> None:
        """Shut down the loaded plugins in reverse start order; errors are logged."""
        for name in reversed(list(self.loaded)):
            plugin = self.loaded.pop(name)
            await self._shutdown(name, plugin)

    async def _shutdown(self, name: str, plugin: BasePlugin) -> None:
        try:
            await plugin.shutdown()
        except Exception:
            logger.exception("plugin %s failed to shut down", name)

    def _fail(self, name: str, reason: str, exc: BaseException | None) -> None:
        self.failed[name] = reason
        logger.error("plugin %s skipped: %s", name, reason, exc_info=exc)

    async def __aenter__(self) -> PluginManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<PluginManager loaded={list(self.loaded)} failed={list(self.failed)}>"
