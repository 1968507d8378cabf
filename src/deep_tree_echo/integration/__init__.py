"""The seed's integration patterns, all importable from one place.

Gateway, event-driven, adapter and plugin patterns; distributed memory and memory
synchronisation; circuit breaker, rate limiter and resilient API calls; monitoring; and the
integration test framework. Seed code ports by changing ``aphrodite.`` to ``deep_tree_echo.``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deep_tree_echo._lazy import lazy_exports

if TYPE_CHECKING:
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
        ReadOutcome,
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
    from deep_tree_echo.integration.nats_bridge import NatsEventBridge
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

# Imported on first use, so that `import deep_tree_echo.integration` (and the CLI) stays fast.
_EXPORTS: dict[str, str] = {
    "DataAdapter": "deep_tree_echo.integration.adapters",
    "JSONAdapter": "deep_tree_echo.integration.adapters",
    "MessagePackAdapter": "deep_tree_echo.integration.adapters",
    "ProtocolBufferAdapter": "deep_tree_echo.integration.adapters",
    "DatabaseGateway": "deep_tree_echo.integration.database",
    "DatabaseIntegrationPlugin": "deep_tree_echo.integration.database",
    "NoSQLAdapter": "deep_tree_echo.integration.database",
    "NoSQLQueryAgent": "deep_tree_echo.integration.database",
    "SQLAdapter": "deep_tree_echo.integration.database",
    "SQLQueryAgent": "deep_tree_echo.integration.database",
    "DistributedMemoryIntegration": "deep_tree_echo.integration.distributed_memory",
    "ReadOutcome": "deep_tree_echo.integration.distributed_memory",
    "ReplicationOutcome": "deep_tree_echo.integration.distributed_memory",
    "AdapterError": "deep_tree_echo.integration.errors",
    "DatabaseError": "deep_tree_echo.integration.errors",
    "DatabaseUnavailableError": "deep_tree_echo.integration.errors",
    "DecodeError": "deep_tree_echo.integration.errors",
    "IntegrationError": "deep_tree_echo.integration.errors",
    "InvalidRequestError": "deep_tree_echo.integration.errors",
    "NotAcceptableError": "deep_tree_echo.integration.errors",
    "QueryError": "deep_tree_echo.integration.errors",
    "UnknownFormatError": "deep_tree_echo.integration.errors",
    "UnsupportedMediaTypeError": "deep_tree_echo.integration.errors",
    "WriteNotAllowedError": "deep_tree_echo.integration.errors",
    "EventDrivenIntegration": "deep_tree_echo.integration.event_driven",
    "WebSocketIntegration": "deep_tree_echo.integration.event_driven",
    "WebSocketManager": "deep_tree_echo.integration.event_driven",
    "NatsEventBridge": "deep_tree_echo.server.nats_bridge",
    "APIIntegrationGateway": "deep_tree_echo.integration.gateway",
    "IntegrationGateway": "deep_tree_echo.integration.gateway",
    "IntegrationPlugin": "deep_tree_echo.integration.plugins",
    "MemorySynchronization": "deep_tree_echo.integration.synchronization",
    "SyncReport": "deep_tree_echo.integration.synchronization",
    "IntegrationMetrics": "deep_tree_echo.observability",
    "IntegrationMonitor": "deep_tree_echo.observability",
    "monitor": "deep_tree_echo.observability",
    "monitored_integration_call": "deep_tree_echo.observability",
    "APIStatusError": "deep_tree_echo.resilience",
    "CircuitBreaker": "deep_tree_echo.resilience",
    "CircuitOpenError": "deep_tree_echo.resilience",
    "CircuitState": "deep_tree_echo.resilience",
    "RateLimiter": "deep_tree_echo.resilience",
    "RateLimitExceeded": "deep_tree_echo.resilience",
    "ResilientAPIIntegration": "deep_tree_echo.resilience",
    "IntegrationTestFramework": "deep_tree_echo.testing.framework",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


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
    "NatsEventBridge",
    "NoSQLAdapter",
    "NoSQLQueryAgent",
    "NotAcceptableError",
    "ProtocolBufferAdapter",
    "QueryError",
    "RateLimitExceeded",
    "RateLimiter",
    "ReadOutcome",
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
