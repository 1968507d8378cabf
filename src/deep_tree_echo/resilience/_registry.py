"""Weak registries of live breakers and limiters, read by the Prometheus collector at scrape time.

Keeping metrics out of the hot path: components only count into their own attributes, and
``observability`` reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

_breakers: weakref.WeakSet[Any] = weakref.WeakSet()
_limiters: weakref.WeakSet[Any] = weakref.WeakSet()


def register_breaker(breaker: Any) -> None:
    """Remember ``breaker`` (needs ``name`` and ``state``) until it is garbage-collected."""
    _breakers.add(breaker)


def register_limiter(limiter: Any) -> None:
    """Remember ``limiter`` (needs ``name`` and ``rejections``) until it is garbage-collected."""
    _limiters.add(limiter)


def iter_breakers() -> Iterator[Any]:
    return iter(list(_breakers))


def iter_limiters() -> Iterator[Any]:
    return iter(list(_limiters))
