"""deep-tree-echo: the integration layer of the Deep Tree Echo cognitive core.

The main names load on first access (PEP 562), so ``import deep_tree_echo`` stays cheap::

    from deep_tree_echo import AARGateway, build_input

    async with AARGateway({"memory_store": "memory"}) as gateway:
        result = await gateway.answer(build_input("the sky is blue"))

The layers and which may import which: ``docs/architecture.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deep_tree_echo._lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from deep_tree_echo._events import EventSink
    from deep_tree_echo.aar_core.cognitive import CognitiveInput, CognitiveResult, build_input
    from deep_tree_echo.aar_core.events import EventBus
    from deep_tree_echo.aar_core.gateway import AARGateway
    from deep_tree_echo.aar_core.memory import MemoryManager
    from deep_tree_echo.config import EchoSettings
    from deep_tree_echo.errors import ConfigurationError, EchoError, InvalidInputError
    from deep_tree_echo.server.app import create_app

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AARGateway": "deep_tree_echo.aar_core.gateway",
        "CognitiveInput": "deep_tree_echo.aar_core.cognitive",
        "CognitiveResult": "deep_tree_echo.aar_core.cognitive",
        "ConfigurationError": "deep_tree_echo.errors",
        "EchoError": "deep_tree_echo.errors",
        "EchoSettings": "deep_tree_echo.config",
        "EventBus": "deep_tree_echo.aar_core.events",
        "EventSink": "deep_tree_echo._events",
        "InvalidInputError": "deep_tree_echo.errors",
        "MemoryManager": "deep_tree_echo.aar_core.memory",
        "build_input": "deep_tree_echo.aar_core.cognitive",
        "create_app": "deep_tree_echo.server.app",
    },
)

__all__ = [
    "AARGateway",
    "CognitiveInput",
    "CognitiveResult",
    "ConfigurationError",
    "EchoError",
    "EchoSettings",
    "EventBus",
    "EventSink",
    "InvalidInputError",
    "MemoryManager",
    "__version__",
    "build_input",
    "create_app",
]
