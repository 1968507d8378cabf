"""Resilience: circuit breakers, GCRA rate limiters and a resilient HTTP API client."""

from typing import TYPE_CHECKING

from deep_tree_echo._lazy import lazy_exports
from deep_tree_echo.resilience.api import DEFAULTS, ResilientAPIIntegration, parse_retry_after
from deep_tree_echo.resilience.circuit_breaker import (
    SHARED_RETRY_INTERVAL,
    CircuitBreaker,
    CircuitState,
    Listener,
    Permit,
)
from deep_tree_echo.resilience.errors import (
    APIClientError,
    APIConnectionError,
    APIError,
    APIServerError,
    APIStatusError,
    APITimeoutError,
    CircuitOpenError,
    RateLimitExceeded,
    ResilienceError,
)
from deep_tree_echo.resilience.rate_limiter import BACKEND_RETRY_INTERVAL, RateLimiter

if TYPE_CHECKING:
    from deep_tree_echo.resilience.redis_backends import (
        RedisCircuitState,
        RedisRateLimitBackend,
        Reservation,
        SharedDecision,
    )

# The Redis backends load `redis` (~0.1 s), so they are imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    dict.fromkeys(
        ("RedisCircuitState", "RedisRateLimitBackend", "Reservation", "SharedDecision"),
        "deep_tree_echo.resilience.redis_backends",
    ),
)

__all__ = [
    "BACKEND_RETRY_INTERVAL",
    "DEFAULTS",
    "SHARED_RETRY_INTERVAL",
    "APIClientError",
    "APIConnectionError",
    "APIError",
    "APIServerError",
    "APIStatusError",
    "APITimeoutError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Listener",
    "Permit",
    "RateLimitExceeded",
    "RateLimiter",
    "RedisCircuitState",
    "RedisRateLimitBackend",
    "Reservation",
    "ResilienceError",
    "ResilientAPIIntegration",
    "SharedDecision",
    "parse_retry_after",
]
