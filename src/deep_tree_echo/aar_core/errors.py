"""Exceptions raised by the Echo core (gateway, events, memory, engines)."""

from __future__ import annotations

from deep_tree_echo.errors import EchoError, InvalidInputError


class CoreError(EchoError):
    """Base class of errors raised by the Echo core."""

    code = "core_error"


class NotInitializedError(CoreError):
    """A component was used before ``await initialize()`` (or after ``cleanup()``)."""

    code = "not_initialized"
    http_status = 503


class InvalidSessionIdError(InvalidInputError, CoreError):
    """A session id is not a non-empty string of at most 128 characters without control
    characters."""

    code = "invalid_session_id"


class InvalidMemoryError(InvalidInputError, CoreError):
    """A memory id or memory data dict is malformed (bad id, not JSON-safe, too large)."""

    code = "invalid_memory"


class InvalidTenantError(InvalidMemoryError):
    """A tenant name is malformed (see ``memory.tenancy.TENANT_PATTERN``)."""

    code = "invalid_tenant"


class StoreError(CoreError):
    """The memory store failed to read or write; the caller's data was not acknowledged."""

    code = "store_error"
    http_status = 503


class EngineError(CoreError):
    """The cognitive engine could not produce a response (e.g. remote LLM down)."""

    code = "engine_unavailable"
    http_status = 503


class EventHandlerTimeout(CoreError):
    """An event handler ran longer than the bus's per-handler timeout."""

    code = "handler_timeout"


class ReplicationError(CoreError):
    """Copying a memory to (or reading it from) another node failed: transport error or non-2xx."""

    code = "replication_error"


class ClockDriftError(InvalidMemoryError):
    """A version from another node is further ahead of this node's clock than
    ``max_clock_drift`` allows: accepting it would pin the clock in the future."""

    code = "clock_drift"
