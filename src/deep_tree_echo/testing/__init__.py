"""Test helpers for deep-tree-echo integrations: mocks, a throwaway Echo system, a pytest plugin.

Names are imported lazily so that the pytest plugin (loaded by every pytest run in an
environment where deep-tree-echo is installed) costs nothing until a fixture is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deep_tree_echo._lazy import lazy_exports

if TYPE_CHECKING:
    from deep_tree_echo.testing._asgi import LifespanManager
    from deep_tree_echo.testing._process import free_port
    from deep_tree_echo.testing.errors import (
        IntegrationTestError,
        LifespanError,
        MockExhaustedError,
        MockVerificationError,
        ServerStartError,
        UnexpectedCallError,
    )
    from deep_tree_echo.testing.framework import IntegrationTestFramework, ServiceMock
    from deep_tree_echo.testing.http_mocks import HTTPMock
    from deep_tree_echo.testing.live_server import EchoServer

_EXPORTS = {
    "EchoServer": "deep_tree_echo.testing.live_server",
    "HTTPMock": "deep_tree_echo.testing.http_mocks",
    "IntegrationTestError": "deep_tree_echo.testing.errors",
    "IntegrationTestFramework": "deep_tree_echo.testing.framework",
    "LifespanError": "deep_tree_echo.testing.errors",
    "LifespanManager": "deep_tree_echo.testing._asgi",
    "MockExhaustedError": "deep_tree_echo.testing.errors",
    "MockVerificationError": "deep_tree_echo.testing.errors",
    "ServerStartError": "deep_tree_echo.testing.errors",
    "ServiceMock": "deep_tree_echo.testing.framework",
    "UnexpectedCallError": "deep_tree_echo.testing.errors",
    "free_port": "deep_tree_echo.testing._process",
}

__all__ = [
    "EchoServer",
    "HTTPMock",
    "IntegrationTestError",
    "IntegrationTestFramework",
    "LifespanError",
    "LifespanManager",
    "MockExhaustedError",
    "MockVerificationError",
    "ServerStartError",
    "ServiceMock",
    "UnexpectedCallError",
    "free_port",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
