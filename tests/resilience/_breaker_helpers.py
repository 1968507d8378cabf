"""Shared by the circuit-breaker tests: a clock the test moves, and the failure they raise."""

from __future__ import annotations


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
