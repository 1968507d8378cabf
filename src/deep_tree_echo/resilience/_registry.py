"""Weak registries of live breakers and limiters, read by the Prometheus collector at scrape time.

Keeping metrics out of the hot path: components only count into their own attributes, and
``observability`` reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the components import this module
    from deep_tree_echo.resilience.circuit_breaker import CircuitBreaker
    from deep_tree_echo.resilience.rate_limiter import RateLimiter

_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
_limiters: weakref.WeakSet[RateLimiter] = weakref.WeakSet()


def register_breaker(breaker: CircuitBreaker) -> None:
    """Remember ``breaker`` until it is garbage-collected."""
    _breakers.add(breaker)


def register_limiter(limiter: RateLimiter) -> None:
    """Remember ``limiter`` until it is garbage-collected."""
    _limiters.add(limiter)


def iter_breakers() -> Iterator[CircuitBreaker]:
    return iter(list(_breakers))


def iter_limiters() -> Iterator[RateLimiter]:
    return iter(list(_limiters))
