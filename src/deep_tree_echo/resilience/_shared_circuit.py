"""The Redis-shared half of :class:`~deep_tree_echo.resilience.circuit_breaker.CircuitBreaker`.

With ``shared_state`` (a :class:`~deep_tree_echo.resilience.redis_backends.RedisCircuitState`)
every process naming the breaker shares one state machine in Redis; while Redis is unreachable
the breaker keeps to its local state and tries Redis again after ``SHARED_RETRY_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from deep_tree_echo.resilience._backend_health import _BackendHealth
from deep_tree_echo.resilience._circuit_state import BY_VALUE, CircuitState, Permit
from deep_tree_echo.resilience.errors import CircuitOpenError

if TYPE_CHECKING:  # imported lazily: loading redis costs ~0.1 s, and only shared state needs it
    from deep_tree_echo.resilience.redis_backends import RedisCircuitState

__all__ = ["SharedCircuitMixin"]


class SharedCircuitMixin:
    """Shared-state methods of the circuit breaker (the breaker's own attributes, declared)."""

    name: str
    shared_state: RedisCircuitState | None
    failure_threshold: int
    failure_rate_threshold: float | None
    sliding_window_size: int
    minimum_calls: int
    half_open_max_calls: int
    recovery_timeout: float
    slow_call_duration: float | None
    _state: CircuitState
    _clock: Callable[[], float]
    _shared_health: _BackendHealth
    _tasks: set[asyncio.Future[Any]]

    def _transition(self, new: CircuitState, *, force: bool = False) -> None:
        raise NotImplementedError

    def release(self, permit: Permit) -> None:
        raise NotImplementedError

    def is_recorded(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        raise NotImplementedError

    async def _acquire_shared(self) -> Permit | None:
        """A shared permit, :class:`CircuitOpenError`, or ``None`` to use the local state."""
        shared = self.shared_state
        assert shared is not None
        if not self._shared_health.available(self._clock()):
            return None
        try:
            decision = await shared.acquire(
                self.name, recovery_timeout=self.recovery_timeout,
                half_open_max_calls=self.half_open_max_calls,
            )
        except shared.unavailable_errors as exc:
            self._shared_failed(exc)
            return None
        self._shared_ok(decision.state)
        if decision.allowed:
            return Permit(decision.generation, decision.trial, shared=True)
        raise CircuitOpenError(self.name, decision.retry_after, state=decision.state)

    async def _complete_shared(
        self, permit: Permit, exc: BaseException | None, duration: float
    ) -> None:
        if exc is not None and not self.is_recorded(exc):
            if permit.trial and not permit.done:
                permit.done = True
                await self._release_shared(permit)
            return
        slow = self.slow_call_duration is not None and duration >= self.slow_call_duration
        await self._record_shared(permit, exc is not None or slow)

    def _shared_failed(self, exc: BaseException) -> None:
        self._shared_health.failed(exc, self._clock())

    def _shared_ok(self, state: str) -> None:
        self._shared_health.ok()
        new = BY_VALUE[state]
        if new is not self._state:
            self._transition(new)

    async def _record_shared(self, permit: Permit, failed: bool) -> None:
        shared = self.shared_state
        assert shared is not None
        if permit.done:
            return
        permit.done = True
        try:
            state, _ = await shared.record(
                self.name, permit.generation, failed=failed, trial=permit.trial,
                failure_threshold=self.failure_threshold,
                failure_rate_threshold=self.failure_rate_threshold,
                window_size=self.sliding_window_size, minimum_calls=self.minimum_calls,
                half_open_max_calls=self.half_open_max_calls,
            )
        except shared.unavailable_errors as exc:
            self._shared_failed(exc)
        else:
            self._shared_ok(state)

    async def _release_shared(self, permit: Permit) -> None:
        shared = self.shared_state
        assert shared is not None
        try:
            await shared.release(
                self.name, permit.generation, half_open_max_calls=self.half_open_max_calls
            )
        except shared.unavailable_errors as exc:
            self._shared_failed(exc)

    async def _release_shielded(self, permit: Permit) -> None:
        """Release after cancellation; a shared trial permit is returned before re-raising."""
        if not (permit.shared and permit.trial) or permit.done:
            self.release(permit)
            return
        permit.done = True
        task = asyncio.ensure_future(self._release_shared(permit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def _force_shared(self, state: str) -> None:
        shared = self.shared_state
        assert shared is not None
        try:
            await shared.transition(
                self.name, state, half_open_max_calls=self.half_open_max_calls
            )
        except shared.unavailable_errors as exc:
            self._shared_failed(exc)
