"""The states of a circuit breaker and the :class:`Permit` it hands out for one call."""

from __future__ import annotations

from enum import Enum

__all__ = ["BY_VALUE", "CircuitState", "Permit"]


class CircuitState(Enum):
    """Where a circuit breaker is in its cycle."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BY_VALUE = {s.value: s for s in CircuitState}


class Permit:
    """Admission of one call; hand it back through exactly one of on_success/on_failure/release.

    ``generation`` is the breaker generation it was issued in; ``trial`` marks a half-open trial;
    ``shared`` marks a permit issued by the Redis-shared state.
    """

    __slots__ = ("done", "generation", "shared", "trial")

    def __init__(self, generation: int, trial: bool = False, shared: bool = False) -> None:
        self.generation = generation
        self.trial = trial
        self.shared = shared
        self.done = False

    def __repr__(self) -> str:
        return f"Permit(generation={self.generation}, trial={self.trial}, shared={self.shared})"
