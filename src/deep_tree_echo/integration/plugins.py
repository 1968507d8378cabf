"""The plugin pattern: a plugin bundles integration gateways and data adapters.

Subclasses implement :meth:`IntegrationPlugin.setup_integrations`, appending gateways to
``integrations`` and registering adapters by format name. After setup, the plugin binds every
gateway that has no Echo core of its own to the plugin's gateway and initializes it;
``shutdown`` shuts them down in reverse order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deep_tree_echo.integration.adapters import DataAdapter
from deep_tree_echo.integration.gateway import IntegrationGateway
from deep_tree_echo.plugins.base import BasePlugin

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.gateway import AARGateway

__all__ = ["IntegrationPlugin"]


class IntegrationPlugin(BasePlugin, ABC):
    """Base class for integration plugins."""

    name = "integration"

    def __init__(self) -> None:
        super().__init__()
        self.integrations: list[IntegrationGateway] = []
        self.adapters: dict[str, DataAdapter] = {}
        self._started: list[IntegrationGateway] = []

    async def initialize(
        self, config: Mapping[str, Any] | None = None, gateway: AARGateway | None = None
    ) -> None:
        await super().initialize(config, gateway)
        try:
            await self.setup_integrations()
            await self._start_integrations()
        except BaseException:
            await self._stop_integrations()
            raise

    @abstractmethod
    async def setup_integrations(self) -> None:
        """Setup specific integrations (append gateways, register adapters)."""

    def register_adapter(self, format_type: str, adapter: DataAdapter) -> None:
        self.adapters[format_type] = adapter

    def get_adapter(self, format_type: str) -> DataAdapter | None:
        return self.adapters.get(format_type)

    async def shutdown(self) -> None:
        """Shut the integrations down (reverse order), then release the gateway if owned."""
        await self._stop_integrations()
        await super().shutdown()

    async def _start_integrations(self) -> None:
        for integration in self.integrations:
            if not integration.has_aar_gateway and self.aar_gateway is not None:
                integration.aar_gateway = self.aar_gateway
            self._started.append(integration)  # so a half-initialized one is shut down too
            if not integration.initialized:
                await integration.initialize()

    async def _stop_integrations(self) -> None:
        while self._started:
            integration = self._started.pop()
            try:
                await integration.shutdown()
            except Exception:
                self.logger.exception("shutting down integration %r failed", integration)
