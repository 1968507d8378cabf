"""The base class of every Echo plugin, as the seed defines it.

A plugin is constructed with no arguments, then ``await initialize(config)`` gives it its
config, a logger and the :class:`AARGateway` it works with; ``await shutdown()`` releases it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.gateway import AARGateway


class BasePlugin:
    """Subclass, set ``name`` and ``version``, and override ``initialize``/``shutdown``."""

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "0.0.0"

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.logger: logging.Logger = logging.getLogger(f"deep_tree_echo.plugins.{self.name}")
        self.aar_gateway: AARGateway | None = None
        self._owns_gateway = False
        self.initialized = False

    async def initialize(
        self, config: Mapping[str, Any] | None = None, gateway: AARGateway | None = None
    ) -> None:
        """Take the config and a gateway: the one given, ``config["aar_gateway"]``, or our own."""
        cfg = dict(config or {})
        given = gateway if gateway is not None else cfg.pop("aar_gateway", None)
        self.config = cfg
        self.logger = logging.getLogger(f"deep_tree_echo.plugins.{self.name}")
        if given is None:
            from deep_tree_echo.aar_core.gateway import AARGateway

            given = AARGateway(cfg)
            await given.initialize()
            self._owns_gateway = True
        self.aar_gateway = given
        self.initialized = True

    async def shutdown(self) -> None:
        """Release what ``initialize`` acquired; the gateway only if the plugin created it."""
        if self._owns_gateway and self.aar_gateway is not None:
            await self.aar_gateway.cleanup()
        self._owns_gateway = False
        self.initialized = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version}>"
