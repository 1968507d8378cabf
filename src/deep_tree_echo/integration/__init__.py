"""The seed's integration patterns, all importable from one place.

Gateway, event-driven, adapter and plugin patterns; distributed memory and memory
synchronisation; circuit breaker, rate limiter and resilient API calls; monitoring; and the
integration test framework. Seed code ports by changing ``aphrodite.`` to ``deep_tree_echo.``.
"""

from __future__ import annotations

from deep_tree_echo.integration.adapters import (
    DataAdapter,
    JSONAdapter,
    MessagePackAdapter,
    ProtocolBufferAdapter,
)
from deep_tree_echo.integration.database import (
    DatabaseGateway,
    DatabaseIntegrationPlugin,
    NoSQLAdapter,
    NoSQLQueryAgent,
    SQLAdapter,
    SQLQueryAgent,
)
from deep_tree_echo.integration.distributed_memory import (
    DistributedMemoryIntegration,
    ReplicationOutcome,
)
from deep_tree_echo.integration.errors import (
    AdapterError,
    DatabaseError,
    DatabaseUnavailableError,
    DecodeError,
    IntegrationError,
    InvalidRequestError,
    NotAcceptableError,
    PluginLoadError,
    QueryError,
    UnknownFormatError,
    UnsupportedMediaTypeError,
    WriteNotAllowedError,
)
from deep_tree_echo.integration.event_driven import (
    EventDrivenIntegration,
    WebSocketIntegration,
    WebSocketManager,
)
from deep_tree_echo.integration.gateway import APIIntegrationGateway, IntegrationGateway
from deep_tree_echo.integration.plugins import IntegrationPlugin
from deep_tree_echo.integration.synchronization import MemorySynchronization, SyncReport
from deep_tree_echo.observability import (
    IntegrationMetrics,
    IntegrationMonitor,
    monitor,
    monitored_integration_call,
)
from deep_tree_echo.resilience import (
    APIStatusError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RateLimiter,
    RateLimitExceeded,
    ResilientAPIIntegration,
)
from deep_tree_echo.testing.framework import IntegrationTestFramework

__all__ = [
    "APIIntegrationGateway",
    "APIStatusError",
    "AdapterError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "DataAdapter",
    "DatabaseError",
    "DatabaseGateway",
    "DatabaseIntegrationPlugin",
    "DatabaseUnavailableError",
    "DecodeError",
    "DistributedMemoryIntegration",
    "EventDrivenIntegration",
    "IntegrationError",
    "IntegrationGateway",
    "IntegrationMetrics",
    "IntegrationMonitor",
    "IntegrationPlugin",
    "IntegrationTestFramework",
    "InvalidRequestError",
    "JSONAdapter",
    "MemorySynchronization",
    "MessagePackAdapter",
    "NoSQLAdapter",
    "NoSQLQueryAgent",
    "NotAcceptableError",
    "PluginLoadError",
    "ProtocolBufferAdapter",
    "QueryError",
    "RateLimitExceeded",
    "RateLimiter",
    "ReplicationOutcome",
    "ResilientAPIIntegration",
    "SQLAdapter",
    "SQLQueryAgent",
    "SyncReport",
    "UnknownFormatError",
    "UnsupportedMediaTypeError",
    "WebSocketIntegration",
    "WebSocketManager",
    "WriteNotAllowedError",
    "monitor",
    "monitored_integration_call",
]
