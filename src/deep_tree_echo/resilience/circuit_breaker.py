"""Circuit breaker: stop calling a failing dependency, then probe it with a few trial calls.

States: CLOSED (calls pass, outcomes counted) -> OPEN (calls rejected at once with
:class:`CircuitOpenError`) -> after ``recovery_timeout`` HALF_OPEN (exactly
``half_open_max_calls`` trial calls; all succeed -> CLOSED, any fails -> OPEN again).

Two ways to trip: ``failure_threshold`` consecutive failures (default), or, when
``failure_rate_threshold`` (a fraction in (0, 1]) is set, the failure rate over a count-based
sliding window of the last ``sliding_window_size`` calls, once ``minimum_calls`` are recorded.
With ``slow_call_duration`` set, a call lasting at least that long counts as a failure.

Every transition increments a generation counter; outcomes of calls admitted under an older
generation are dropped, so a slow call started before the circuit opened cannot close it.
The hot path is non-raising: :meth:`CircuitBreaker.try_acquire` returns a :class:`Permit` or
``None`` and the caller reports with :meth:`~CircuitBreaker.on_success` /
:meth:`~CircuitBreaker.on_failure` / :meth:`~CircuitBreaker.release`; ``call``, the decorator
and ``async with`` are built on it. No lock is held while the protected call runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from deep_tree_echo._events import EventSink
from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.resilience._backend_health import _BackendHealth
from deep_tree_echo.resilience._circuit_state import CircuitState, Permit
from deep_tree_echo.resilience._registry import register_breaker
from deep_tree_echo.resilience._shared_circuit import SharedCircuitMixin
from deep_tree_echo.resilience._window import OutcomeWindow
from deep_tree_echo.resilience.errors import CircuitOpenError

if TYPE_CHECKING:  # imported lazily: loading redis costs ~0.1 s, and only shared state needs it
    from deep_tree_echo.resilience.redis_backends import RedisCircuitState

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_CoroutineType = types.CoroutineType
_isawaitable = inspect.isawaitable

#: How long a breaker keeps to its local state after Redis failed, before trying Redis again.
SHARED_RETRY_INTERVAL = 5.0


_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN

Listener = Callable[["CircuitBreaker", CircuitState, CircuitState], Any]


class CircuitBreaker(SharedCircuitMixin):
    """Protects calls to one dependency; see the module docstring for the state machine."""

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 60,
        *,
        name: str | None = None,
        failure_rate_threshold: float | None = None,
        sliding_window_size: int = 100,
        minimum_calls: int = 10,
        slow_call_duration: float | None = None,
        half_open_max_calls: int = 1,
        record_exceptions: tuple[type[BaseException], ...] = (Exception,),
        ignore_exceptions: tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.monotonic,
        listeners: Sequence[Listener] = (),
        event_bus: EventSink | None = None,
        shared_state: RedisCircuitState | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigurationError("failure_threshold must be >= 1")
        if recovery_timeout < 0:
            raise ConfigurationError("recovery_timeout must be >= 0")
        if failure_rate_threshold is not None and not 0 < failure_rate_threshold <= 1:
            raise ConfigurationError("failure_rate_threshold is a fraction in (0, 1]")
        if sliding_window_size < 1 or minimum_calls < 1:
            raise ConfigurationError("sliding_window_size and minimum_calls must be >= 1")
        if half_open_max_calls < 1:
            raise ConfigurationError("half_open_max_calls must be >= 1")
        self.name = name if name is not None else f"breaker-{id(self):x}"
        self.failure_threshold = failure_threshold
        self.recovery_timeout = float(recovery_timeout)
        self.failure_rate_threshold = failure_rate_threshold
        self.sliding_window_size = sliding_window_size
        self.minimum_calls = min(minimum_calls, sliding_window_size)
        self.slow_call_duration = slow_call_duration
        self.half_open_max_calls = half_open_max_calls
        self.record_exceptions = record_exceptions
        self.ignore_exceptions = ignore_exceptions
        self.listeners: list[Listener] = list(listeners)
        self.event_bus = event_bus
        self.shared_state = shared_state
        self._clock = clock
        self._state = _CLOSED
        self._generation = 0
        self._opened_at = 0.0
        self._consecutive = 0
        self._window = OutcomeWindow(sliding_window_size) if failure_rate_threshold else None
        self._trials_left = 0
        self._trial_successes = 0
        self._closed_permit = Permit(0)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._ctx: contextvars.ContextVar[tuple[Permit, float, Any] | None] = (
            contextvars.ContextVar(f"circuit_breaker_{id(self)}", default=None)
        )
        self._shared_health = _BackendHealth(
            logger, f"circuit {self.name}: shared state", SHARED_RETRY_INTERVAL
        )
        register_breaker(self)

    # ------------------------------------------------------------------ introspection

    @property
    def state(self) -> CircuitState:
        """Current state; an OPEN breaker whose recovery timeout has passed reads as HALF_OPEN."""
        if self._state is _OPEN and self._clock() >= self._opened_at + self.recovery_timeout:
            self._transition(_HALF_OPEN)
        return self._state

    def peek_state(self) -> CircuitState:
        """What :attr:`state` would report, without transitioning or notifying anyone.

        For observers (``/metrics``): reading must not move OPEN to HALF_OPEN or fire listeners.
        """
        if self._state is _OPEN and self._clock() >= self._opened_at + self.recovery_timeout:
            return _HALF_OPEN
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures (count mode) or failures in the sliding window (rate mode)."""
        return self._window.failures if self._window is not None else self._consecutive

    @property
    def failure_rate(self) -> float | None:
        """Failures over calls in the sliding window (rate mode); None in count mode."""
        return self._window.failure_rate() if self._window is not None else None

    @property
    def generation(self) -> int:
        """Incremented on every state transition."""
        return self._generation

    def retry_after(self) -> float:
        """Seconds until a call may be admitted (0.0 when one would be admitted now)."""
        state = self.state
        if state is _CLOSED:
            return 0.0
        if state is _OPEN:
            return max(0.0, self._opened_at + self.recovery_timeout - self._clock())
        return 0.0 if self._trials_left > 0 else self.recovery_timeout

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value} gen={self._generation}>"

    # ------------------------------------------------------------------ non-raising hot path

    def try_acquire(self) -> Permit | None:
        """A permit to run one call, or ``None`` when the circuit rejects it (local state)."""
        state = self._state
        if state is _CLOSED:
            return self._closed_permit
        if state is _OPEN:
            if self._clock() < self._opened_at + self.recovery_timeout:
                return None
            self._transition(_HALF_OPEN)
        if self._trials_left > 0:
            self._trials_left -= 1
            return Permit(self._generation, trial=True)
        return None

    def on_success(self, permit: Permit, duration: float = 0.0) -> None:
        """Report that the call admitted by ``permit`` succeeded after ``duration`` seconds."""
        slow = self.slow_call_duration is not None and duration >= self.slow_call_duration
        if permit.shared:
            self._spawn(self._record_shared(permit, slow))
            return
        if permit.generation != self._generation:
            permit.done = True
            return
        if permit.trial:
            if permit.done:
                return
            permit.done = True
            if slow:
                self._transition(_OPEN)
                return
            self._trial_successes += 1
            if self._trial_successes >= self.half_open_max_calls:
                self._transition(_CLOSED)
            return
        self._record_closed(slow)

    def on_failure(self, permit: Permit, exc: BaseException, duration: float = 0.0) -> None:
        """Report that the call raised ``exc``; ignored exceptions and cancellation only release."""
        if not self.is_recorded(exc):
            self.release(permit)
            return
        if permit.shared:
            self._spawn(self._record_shared(permit, True))
            return
        if permit.generation != self._generation:
            permit.done = True
            return
        if permit.trial:
            if not permit.done:
                permit.done = True
                self._transition(_OPEN)
            return
        self._record_closed(True)

    def release(self, permit: Permit) -> None:
        """Give a permit back without an outcome (cancelled or ignored call)."""
        if not permit.trial or permit.done:
            return
        permit.done = True
        if permit.shared:
            self._spawn(self._release_shared(permit))
        elif permit.generation == self._generation and self._state is _HALF_OPEN:
            self._trials_left += 1

    def is_recorded(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts as a failure (never for ``asyncio.CancelledError``)."""
        return (
            isinstance(exc, self.record_exceptions)
            and not isinstance(exc, self.ignore_exceptions)
            and not isinstance(exc, asyncio.CancelledError)
        )

    def _record_closed(self, failed: bool) -> None:
        window = self._window
        if window is None:
            if failed:
                self._consecutive += 1
                if self._consecutive >= self.failure_threshold:
                    self._transition(_OPEN)
            else:
                self._consecutive = 0
            return
        window.add(failed)
        if (
            window.count >= self.minimum_calls
            and window.failures >= window.count * cast(float, self.failure_rate_threshold)
        ):
            self._transition(_OPEN)

    # ------------------------------------------------------------------ transitions

    def _transition(self, new: CircuitState, *, force: bool = False) -> None:
        old = self._state
        if old is new and not force:
            return
        self._state = new
        self._generation += 1
        if new is _OPEN:
            self._opened_at = self._clock()
            self._trials_left = 0
        elif new is _HALF_OPEN:
            self._trials_left = self.half_open_max_calls
            self._trial_successes = 0
        else:
            self._closed_permit = Permit(self._generation)
            self._consecutive = 0
            if self._window is not None:
                self._window.reset()
        if old is not new:
            logger.info("circuit %s: %s -> %s", self.name, old.value, new.value)
            self._notify(old, new)

    def reset(self) -> None:
        """Force CLOSED and clear counters (the shared state too, in the background)."""
        self._transition(_CLOSED, force=True)
        if self.shared_state is not None:
            self._spawn(self._force_shared("closed"))

    async def areset(self) -> None:
        """Like :meth:`reset`, but waits for the shared state to be reset."""
        self._transition(_CLOSED, force=True)
        if self.shared_state is not None:
            await self._force_shared("closed")

    def _notify(self, old: CircuitState, new: CircuitState) -> None:
        for listener in self.listeners:
            try:
                result = listener(self, old, new)
            except Exception:
                logger.exception("circuit %s: state listener %r failed", self.name, listener)
            else:
                if _isawaitable(result):
                    self._spawn(result)
        if self.event_bus is not None:
            payload = {"name": self.name, "old": old.value, "new": new.value,
                       "timestamp": time.time()}
            self._spawn(self._emit(self.event_bus, payload))

    async def _emit(self, bus: EventSink, payload: dict[str, Any]) -> None:
        result = bus.emit("circuit.state_changed", payload)
        if _isawaitable(result):
            await result

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        """Run ``awaitable`` in the background, keeping a reference and logging its errors."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if isinstance(awaitable, Coroutine):
                awaitable.close()
            logger.warning("circuit %s: no running event loop, async notification dropped",
                           self.name)
            return
        task = loop.create_task(self._guard(awaitable))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("circuit %s: background notification failed", self.name)

    async def drain(self) -> None:
        """Wait for pending background work (async listeners, event-bus emits, Redis writes)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Wait for background work and close a Redis client the shared state created."""
        await self.drain()
        if self.shared_state is not None:
            await self.shared_state.aclose()

    # ------------------------------------------------------------------ raising async API

    async def acquire(self) -> Permit:
        """A permit for one call (shared state when configured), else :class:`CircuitOpenError`."""
        if self.shared_state is not None:
            shared_permit = await self._acquire_shared()
            if shared_permit is not None:
                return shared_permit
        permit = self.try_acquire()
        if permit is None:
            raise CircuitOpenError(self.name, self.retry_after(), state=self._state.value)
        return permit

    async def complete(
        self, permit: Permit, exc: BaseException | None = None, duration: float = 0.0
    ) -> None:
        """Report the outcome of a call (``exc`` None for success), awaiting shared state."""
        if not permit.shared:
            if exc is None:
                self.on_success(permit, duration)
            else:
                self.on_failure(permit, exc)
            return
        await self._complete_shared(permit, exc, duration)

    async def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` (sync or async) through the breaker."""
        if self.shared_state is not None or self.slow_call_duration is not None:
            return await self._call_general(func, args, kwargs)
        if self._state is _CLOSED:
            permit = self._closed_permit
        else:
            maybe = self.try_acquire()
            if maybe is None:
                raise CircuitOpenError(self.name, self.retry_after(), state=self._state.value)
            permit = maybe
        try:
            result = func(*args, **kwargs)
            if type(result) is _CoroutineType or _isawaitable(result):
                result = await result
        except BaseException as exc:
            self.on_failure(permit, exc)
            raise
        if permit is self._closed_permit and self._window is None:
            self._consecutive = 0
        else:
            self.on_success(permit)
        return result

    async def _call_general(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        permit = await self.acquire()
        clock = self._clock
        start = clock()
        try:
            result = func(*args, **kwargs)
            if _isawaitable(result):
                result = await result
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and permit.shared:
                await self._release_shielded(permit)
            else:
                await self.complete(permit, exc, clock() - start)
            raise
        await self.complete(permit, None, clock() - start)
        return result

    def call_sync(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a synchronous ``func`` through the breaker (local state only)."""
        permit = self.try_acquire()
        if permit is None:
            raise CircuitOpenError(self.name, self.retry_after(), state=self._state.value)
        clock = self._clock
        start = clock() if self.slow_call_duration is not None else 0.0
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self.on_failure(permit, exc)  # a failure counts whatever its duration
            raise
        self.on_success(permit, clock() - start if self.slow_call_duration is not None else 0.0)
        return result

    # ------------------------------------------------------------------ decorator / context

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, func: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a sync or async function so each call goes through the breaker."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if (
                    self._state is not _CLOSED
                    or self.shared_state is not None
                    or self.slow_call_duration is not None
                ):
                    return await self.call(func, *args, **kwargs)
                permit = self._closed_permit  # inlined closed-state fast path of call()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    self.on_failure(permit, exc)
                    raise
                if permit is self._closed_permit and self._window is None:
                    self._consecutive = 0
                else:
                    self.on_success(permit)
                return result

            return async_wrapper

        @functools.wraps(func)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self.call_sync(func, *args, **kwargs)

        return sync_wrapper

    async def __aenter__(self) -> CircuitBreaker:
        permit = await self.acquire()
        self._ctx.set((permit, self._clock(), self._ctx.get()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        entry = self._ctx.get()
        if entry is None:  # pragma: no cover - __aexit__ without __aenter__
            return
        permit, start, previous = entry
        self._ctx.set(previous)
        duration = self._clock() - start
        if isinstance(exc, asyncio.CancelledError):
            await self._release_shielded(permit)
        else:
            await self.complete(permit, exc, duration)


__all__ = ["SHARED_RETRY_INTERVAL", "CircuitBreaker", "CircuitState", "Listener", "Permit"]
