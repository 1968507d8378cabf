"""An example deep-tree-echo plugin: a ``reverse`` agent plus a JSON adapter.

Registered in ``pyproject.toml`` under the ``deep_tree_echo.plugins`` entry-point group as
``echo_example``; the service's PluginManager imports :class:`ReversePlugin`, constructs it
and awaits ``initialize(plugin_config["echo_example"], gateway)``.
"""

from __future__ import annotations

from typing import ClassVar

from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.integration.adapters import JSONAdapter
from deep_tree_echo.integration.plugins import IntegrationPlugin

__all__ = ["ReverseAgent", "ReversePlugin"]


class ReverseAgent(Agent):
    """Answers ``reverse`` inputs with their text reversed (plus an optional suffix)."""

    name: ClassVar[str] = "reverse"
    handles: ClassVar[frozenset[str]] = frozenset({"reverse"})

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix

    async def handle(self, ctx: AgentContext) -> AgentResult:
        reversed_text = ctx.text[::-1] + self.suffix
        return AgentResult(text=reversed_text, confidence=1.0, data={"reversed": reversed_text})


class ReversePlugin(IntegrationPlugin):
    """Adds the ``reverse`` agent to the gateway for as long as the plugin is loaded."""

    name = "echo_example"
    version = "0.1.0"

    async def setup_integrations(self) -> None:
        assert self.aar_gateway is not None  # set by BasePlugin.initialize
        self.agent = ReverseAgent(str(self.config.get("suffix", "")))
        self.aar_gateway.register_agent(self.agent)
        self.register_adapter("json", JSONAdapter())

    async def shutdown(self) -> None:
        if self.aar_gateway is not None and self.aar_gateway.agents.get("reverse") is self.agent:
            self.aar_gateway.agents.unregister("reverse")
        await super().shutdown()
