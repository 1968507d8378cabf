"""Resilient HTTP API client: rate limiter -> circuit breaker -> retry with backoff -> timeout.

Retries (exponential backoff with full jitter, per-call state) cover connect errors, timeouts,
5xx, and 429 *with* ``Retry-After``; ``Retry-After`` (seconds or HTTP date) is honoured, and when
it asks for longer than ``backoff_max`` the call fails at once instead of retrying early. A 429
without ``Retry-After`` raises :class:`APIServerError` at once. 4xx other than 429 raise
:class:`APIClientError` immediately and are not breaker failures; a call that still fails after
its retries counts as one breaker failure.

Non-idempotent methods (POST, PATCH, anything not in RFC 9110's idempotent set) are not re-sent
after a failure that may have reached the server (read/write timeouts, read/write errors, a
dropped connection) unless the config sets ``retry_unsafe``; connect errors and connect/pool
timeouts never sent the request and are always retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
import types
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from deep_tree_echo._events import EventSink
from deep_tree_echo.resilience.circuit_breaker import CircuitBreaker
from deep_tree_echo.resilience.errors import (
    APIClientError,
    APIConnectionError,
    APIError,
    APIServerError,
    APIStatusError,
    APITimeoutError,
)
from deep_tree_echo.resilience.rate_limiter import RateLimiter

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "base_url": "",
    "failure_threshold": 5,
    "recovery_timeout": 60,
    "max_requests": 100,
    "time_window": 60,
    "max_retries": 3,
    "backoff_initial": 0.1,
    "backoff_max": 10.0,
    "timeout": 10.0,
    "headers": {},
    "rate_limit_wait": False,
    "retry_unsafe": False,
}

_BODYLESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# the request never left: always safe to send again
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# the request may have reached the server: re-send only idempotent methods (or retry_unsafe)
_MAYBE_SENT = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)

#: Told about every call: ``(integration name, succeeded, seconds)``.
ResultHook = Callable[[str, bool, float], object]

_default_on_result: ResultHook | None = None


def set_default_on_result(hook: ResultHook | None) -> ResultHook | None:
    """Set the hook of clients made without ``on_result`` (the service wires its monitor's
    ``record_request`` here); returns the previous one."""
    global _default_on_result
    previous, _default_on_result = _default_on_result, hook
    return previous


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


class ResilientAPIIntegration:
    """One remote API behind a rate limiter, a circuit breaker and retries (see module doc).

    ``config`` keys and defaults are in :data:`DEFAULTS` plus ``name`` (defaults to
    ``base_url`` or ``"api"``). ``on_result(name, ok, seconds)`` hears of every call (default:
    the hook set by :func:`set_default_on_result`, e.g. the service's monitor).
    ``client`` injects an ``httpx.AsyncClient`` (not closed by us);
    ``sleep``/``clock``/``rng`` are injectable so tests need not wait for backoff.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        client: httpx.AsyncClient | None = None,
        event_bus: EventSink | None = None,
        on_result: ResultHook | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        cfg = {**DEFAULTS, **config}
        self.config = cfg
        self.base_url: str = str(cfg["base_url"])
        self.name: str = str(cfg.get("name") or self.base_url or "api")
        self.max_retries = int(cfg["max_retries"])
        self.backoff_initial = float(cfg["backoff_initial"])
        self.backoff_max = float(cfg["backoff_max"])
        self.timeout = httpx.Timeout(float(cfg["timeout"]))
        self.headers: dict[str, str] = dict(cfg["headers"])
        self.rate_limit_wait = bool(cfg["rate_limit_wait"])
        self.retry_unsafe = bool(cfg["retry_unsafe"])
        bus = event_bus if event_bus is not None else cfg.get("event_bus")
        self.circuit_breaker = CircuitBreaker(
            failure_threshold=int(cfg["failure_threshold"]),
            recovery_timeout=float(cfg["recovery_timeout"]),
            name=self.name,
            ignore_exceptions=(APIClientError,),
            clock=clock,
            event_bus=bus,
        )
        self.rate_limiter = RateLimiter(
            max_requests=int(cfg["max_requests"]),
            time_window=float(cfg["time_window"]),
            name=self.name,
            clock=clock,
            sleep=sleep,
        )
        injected = client if client is not None else cfg.get("client")
        self._owns_client = injected is None
        self.client: httpx.AsyncClient = injected or httpx.AsyncClient(
            headers=self.headers, timeout=self.timeout
        )
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_result = on_result

    def url_for(self, endpoint: str) -> str:
        """Absolute URL of ``endpoint`` (absolute endpoints pass unchanged)."""
        if "://" in endpoint or not self.base_url:
            return endpoint
        return self.base_url.rstrip("/") + "/" + endpoint.lstrip("/")

    async def make_api_call(
        self, endpoint: str, data: dict[str, Any] | None = None, method: str = "POST"
    ) -> Any:
        """Call ``endpoint`` and return its decoded JSON (None for an empty body).

        Raises :class:`RateLimitExceeded`, :class:`CircuitOpenError`, :class:`APIClientError`,
        :class:`APIServerError` or :class:`APIConnectionError` / :class:`APITimeoutError`.
        """
        if self.rate_limit_wait:
            await self.rate_limiter.wait()
        else:
            await self.rate_limiter.acquire_or_raise()
        start = self._clock()
        ok = False
        try:
            result = await self.circuit_breaker.call(
                self._call_with_retries, endpoint, data, method.upper()
            )
            ok = True
            return result
        finally:
            self._record(ok, self._clock() - start)

    def backoff(self, attempt: int) -> float:
        """Full-jitter delay before retry number ``attempt + 1``."""
        cap = min(self.backoff_max, self.backoff_initial * (2.0**attempt))
        return self._rng.uniform(0.0, cap)

    async def _call_with_retries(
        self, endpoint: str, data: dict[str, Any] | None, method: str
    ) -> Any:
        url = self.url_for(endpoint)
        kwargs: dict[str, Any] = {"timeout": self.timeout}
        if self.headers and not self._owns_client:
            kwargs["headers"] = self.headers
        if data is not None:
            kwargs["params" if method in _BODYLESS else "json"] = data
        attempts = self.max_retries + 1
        resend_ok = self.retry_unsafe or method in _IDEMPOTENT
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                retryable = isinstance(exc, _NOT_SENT) or (
                    resend_ok and isinstance(exc, _MAYBE_SENT)
                )
                if last or not retryable:
                    raise _transport_error(exc, method, url, endpoint) from exc
                delay = self.backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    return _decode(response)
                body = _decode(response)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if status != 429 and status < 500:
                    raise APIClientError(status, body, endpoint=endpoint)
                if (
                    last
                    or (status == 429 and retry_after is None)  # throttled, no hint: don't guess
                    or (retry_after is not None and retry_after > self.backoff_max)
                ):
                    raise APIServerError(status, body, endpoint=endpoint, retry_after=retry_after)
                delay = retry_after if retry_after is not None else self.backoff(attempt)
            logger.debug("%s: retry %d of %s %s in %.3fs", self.name, attempt + 1, method, url,
                         delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, success: bool, response_time: float) -> None:
        """Report the call to ``on_result`` (never fails the call)."""
        hook = self._on_result or _default_on_result
        if hook is None:
            return
        try:
            hook(self.name, success, response_time)
        except Exception:
            logger.exception("%s: on_result failed", self.name)

    async def aclose(self) -> None:
        """Close the HTTP client if we created it, and finish breaker notifications."""
        if self._owns_client:
            await self.client.aclose()
        await self.circuit_breaker.drain()

    async def __aenter__(self) -> ResilientAPIIntegration:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.aclose()


def _transport_error(
    exc: httpx.TransportError, method: str, url: str, endpoint: str
) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{method} {url} timed out", endpoint=endpoint)
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(f"{method} {url}: cannot connect", endpoint=endpoint)
    return APIConnectionError(f"{method} {url}: {exc!r}", endpoint=endpoint)


__all__ = [
    "DEFAULTS",
    "APIError",
    "APIStatusError",
    "ResilientAPIIntegration",
    "ResultHook",
    "parse_retry_after",
    "set_default_on_result",
]
