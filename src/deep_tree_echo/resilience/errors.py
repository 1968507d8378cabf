"""Exceptions of the resilience package: open circuits, exhausted rate limits, API failures."""

from __future__ import annotations

from typing import Any

from deep_tree_echo.errors import EchoError


class ResilienceError(EchoError):
    """Base of every error raised by :mod:`deep_tree_echo.resilience`."""

    code = "resilience_error"


class CircuitOpenError(ResilienceError):
    """A circuit breaker rejected the call without running it.

    ``retry_after`` is the number of seconds until the breaker may admit a trial call.
    """

    code = "circuit_open"
    http_status = 503

    def __init__(self, name: str, retry_after: float, *, state: str = "open") -> None:
        super().__init__(
            f"circuit breaker {name!r} is {state}; retry after {retry_after:.3f}s",
            name=name,
            retry_after=retry_after,
            state=state,
        )
        self.name = name
        self.retry_after = retry_after
        self.state = state


class RateLimitExceeded(ResilienceError):
    """A rate limiter had no permit for ``key``; one is available in ``retry_after`` seconds."""

    code = "rate_limit_exceeded"
    http_status = 429

    def __init__(self, retry_after: float, key: str = "default", *, name: str = "") -> None:
        super().__init__(
            f"rate limit exceeded for key {key!r}; retry after {retry_after:.3f}s",
            key=key,
            retry_after=retry_after,
            name=name,
        )
        self.retry_after = retry_after
        self.key = key
        self.name = name


class APIError(ResilienceError):
    """An outbound API call failed (transport error or error status)."""

    code = "api_error"
    http_status = 502  # the upstream failed, not our caller


class APIConnectionError(APIError):
    """The API could not be reached (connect/read/write error) after the retries allowed.

    A POST/PATCH is not re-sent after a read/write failure unless ``retry_unsafe`` is set.
    """

    code = "api_connection_error"


class APITimeoutError(APIConnectionError):
    """The API did not answer within the configured timeout, after all retries."""

    code = "api_timeout"


class APIStatusError(APIError):
    """The API answered with an error status; ``body`` is the decoded JSON or the raw text."""

    code = "api_status_error"

    def __init__(
        self,
        status_code: int,
        body: Any,
        *,
        endpoint: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            f"API {endpoint or 'call'} answered HTTP {status_code}",
            status_code=status_code,
            endpoint=endpoint,
        )
        self.status_code = status_code
        self.body = body
        self.endpoint = endpoint
        self.retry_after = retry_after


class APIClientError(APIStatusError):
    """A 4xx answer other than 429: the request is wrong, retrying will not help.

    It is not held against the circuit breaker: the remote side is healthy.
    """

    code = "api_client_error"


class APIServerError(APIStatusError):
    """A 5xx or 429 that persisted through every retry, or a 429 without ``Retry-After``
    (raised at once); one circuit-breaker failure."""

    code = "api_server_error"


__all__ = [
    "APIClientError",
    "APIConnectionError",
    "APIError",
    "APIServerError",
    "APIStatusError",
    "APITimeoutError",
    "CircuitOpenError",
    "RateLimitExceeded",
    "ResilienceError",
]
