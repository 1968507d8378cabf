"""IntegrationPlugin: adapters registry and the lifecycle of the integrations it sets up."""

from __future__ import annotations

from typing import Any

import pytest

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.integration.adapters import JSONAdapter
from deep_tree_echo.integration.gateway import IntegrationGateway
from deep_tree_echo.integration.plugins import IntegrationPlugin
from deep_tree_echo.plugins.base import BasePlugin

events: list[str] = []


class Recording(IntegrationGateway):
    def __init__(self, name: str, *, fail: bool = False) -> None:
        super().__init__({})
        self.name, self.fail = name, fail

    async def initialize(self) -> None:
        events.append(f"init {self.name}")
        if self.fail:
            raise RuntimeError("cannot start")
        self.initialized = True

    async def process_external_request(self, request: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def shutdown(self) -> None:
        events.append(f"stop {self.name}")
        await super().shutdown()


class TwoGateways(IntegrationPlugin):
    name = "two"

    async def setup_integrations(self) -> None:
        self.integrations += [Recording("a"), Recording("b", fail=self.config.get("fail", False))]
        self.register_adapter("json", JSONAdapter())


async def test_integrations_are_bound_initialized_and_shut_down_in_reverse() -> None:
    events.clear()
    async with AARGateway({"test_mode": True}) as gw:
        plugin = TwoGateways()
        assert isinstance(plugin, BasePlugin)
        await plugin.initialize({}, gw)
        assert all(i.aar_gateway is gw for i in plugin.integrations)
        assert isinstance(plugin.get_adapter("json"), JSONAdapter)
        assert plugin.get_adapter("xml") is None
        await plugin.shutdown()
        assert events == ["init a", "init b", "stop b", "stop a"]
        assert gw.initialized  # the shared gateway is not the plugin's to clean up


async def test_a_failing_setup_shuts_down_what_started() -> None:
    events.clear()
    async with AARGateway({"test_mode": True}) as gw:
        with pytest.raises(RuntimeError, match="cannot start"):
            await TwoGateways().initialize({"fail": True}, gw)
    assert events == ["init a", "init b", "stop b", "stop a"]


def test_setup_integrations_is_abstract() -> None:
    with pytest.raises(TypeError):
        IntegrationPlugin()  # type: ignore[abstract]
