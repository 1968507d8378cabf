"""Shared by the circuit-breaker tests: a clock the test moves, the failure they raise, and the
two calls they protect."""

from __future__ import annotations

from typing import Any


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    """The failure a protected call raises in these tests."""


async def fail() -> None:
    """A protected call that fails."""
    raise Boom("down")


async def ok(value: Any = "ok") -> Any:
    """A protected call that succeeds with ``value``."""
    return value
