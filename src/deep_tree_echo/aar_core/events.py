"""In-process publish/subscribe bus connecting the Echo core with its integrations.

Handlers subscribe to an exact event type (``"memory.update"``), to everything (``"*"``) or to
a wildcard pattern (``"memory.*"``). Patterns use :func:`fnmatch.fnmatchcase` semantics, so
``*`` also crosses dots: ``"memory.*"`` matches ``"memory.update"`` *and* ``"memory.a.b"``;
``?`` and ``[...]`` work as in shell globs. Matching is case-sensitive.

Delivery: ``await bus.emit(type, data)`` runs every matching handler concurrently, each under
the bus's per-handler timeout. A failing or timed-out handler never stops the others; it is
logged (logger ``deep_tree_echo.events``), counted in :attr:`EventBus.stats` and reported as a
``bus.handler_error`` event.

Sync handlers are called directly on the event loop (no executor), so they must be quick.
With exactly one matching handler the bus runs it inline in the emitting task, like a direct
``await handler(data)`` (same task, same context variables); the timeout timer is only armed
if the handler actually suspends. With several handlers, each async handler gets its own task.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

from deep_tree_echo.aar_core.errors import EventHandlerTimeout
from deep_tree_echo.errors import InvalidInputError

__all__ = ["HANDLER_ERROR", "EventBus", "EventHandler"]

EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
"""A sync or async callable taking the event's data dict."""

HANDLER_ERROR: Final = "bus.handler_error"
"""Event emitted when a handler raises or times out (never for ``bus.handler_error`` itself)."""

logger = logging.getLogger("deep_tree_echo.events")

_WILDCARD_CHARS = frozenset("*?[")
_MAX_CACHED_TYPES = 4096
_FailureKind = Literal["exception", "timeout"]
_Failure = tuple[BaseException, _FailureKind]

if sys.version_info >= (3, 12):  # pragma: no cover - exercised only on 3.12+

    def _start_task(coro: Coroutine[Any, Any, _Failure | None]) -> asyncio.Task[_Failure | None]:
        return asyncio.Task(coro, eager_start=True)

else:

    def _start_task(coro: Coroutine[Any, Any, _Failure | None]) -> asyncio.Task[_Failure | None]:
        return asyncio.get_running_loop().create_task(coro)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, None]:
    """Finish a coroutine that was started with ``send(None)`` and suspended on ``pending``.

    A trampoline: yields what the handler yields to the running task and forwards whatever the
    task sends or throws in (wake-ups, cancellation), so the handler continues in the same task.
    """
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                pending = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            pending = coro.send(sent)
        except StopIteration:
            return


def _describe(handler: Callable[..., Any]) -> str:
    """A readable name for ``handler`` in logs and ``bus.handler_error`` events."""
    qualname = getattr(handler, "__qualname__", None)
    if qualname is None:
        return repr(handler)
    module = getattr(handler, "__module__", None)
    return f"{module}.{qualname}" if module else str(qualname)


def _check_event_type(event_type: object) -> str:
    if not isinstance(event_type, str):
        raise TypeError(f"event_type must be a str, not {type(event_type).__name__}")
    if not event_type:
        raise InvalidInputError("event_type must be a non-empty string", code="invalid_event_type")
    return event_type


class EventBus:
    """Routes events to the handlers registered for matching event types or patterns."""

    __slots__ = (
        "_cache",
        "_delivered",
        "_emitted",
        "_failed",
        "_registrations",
        "_timeout",
        "_timeouts",
        "name",
    )

    def __init__(self, *, handler_timeout: float | None = 5.0, name: str = "echo") -> None:
        if handler_timeout is not None and handler_timeout <= 0:
            raise InvalidInputError("handler_timeout must be positive or None")
        self.name = name
        self._timeout = handler_timeout
        # (pattern, handler, is_wildcard) in registration order; resolution keeps this order.
        self._registrations: list[tuple[str, EventHandler, bool]] = []
        self._cache: dict[str, tuple[EventHandler, ...]] = {}
        self._emitted = 0
        self._delivered = 0
        self._failed = 0
        self._timeouts = 0

    @property
    def handler_timeout(self) -> float | None:
        return self._timeout

    @property
    def stats(self) -> dict[str, int]:
        """Counters since creation: ``emitted`` events, ``delivered`` (handler runs that
        succeeded), ``failed`` (handler runs that raised *or* timed out) and ``timeouts``
        (the timed-out subset of ``failed``)."""
        return {
            "emitted": self._emitted,
            "delivered": self._delivered,
            "failed": self._failed,
            "timeouts": self._timeouts,
        }

    # -- subscription -------------------------------------------------------------------------

    def register(self, event_type: str, handler: EventHandler) -> None:
        """Subscribe ``handler`` to ``event_type`` (exact name, ``*`` or fnmatch pattern).

        Registering the same handler for the same pattern twice is a no-op, and a handler
        matched by several patterns still runs once per event.
        """
        pattern = _check_event_type(event_type)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        for registered, existing, _ in self._registrations:
            if registered == pattern and existing == handler:
                return
        wildcard = not _WILDCARD_CHARS.isdisjoint(pattern)
        self._registrations.append((pattern, handler, wildcard))
        self._cache.clear()

    def unregister(self, event_type: str, handler: EventHandler) -> bool:
        """Remove ``handler`` from ``event_type``; return whether it was registered there."""
        pattern = _check_event_type(event_type)
        for index, (registered, existing, _) in enumerate(self._registrations):
            if registered == pattern and existing == handler:
                del self._registrations[index]
                self._cache.clear()
                return True
        return False

    def handlers(self, event_type: str) -> list[EventHandler]:
        """The handlers an event of ``event_type`` would be delivered to, in call order."""
        return list(self._resolve(event_type))

    def clear(self) -> None:
        """Remove every registration."""
        self._registrations.clear()
        self._cache.clear()

    async def aclose(self) -> None:
        """Drop all handlers; nothing runs in the background, so there is nothing to await."""
        self.clear()

    close = aclose

    def _resolve(self, event_type: str) -> tuple[EventHandler, ...]:
        try:
            cached = self._cache.get(event_type)
        except TypeError:  # unhashable: report it like any other non-str
            cached = None
        if cached is not None:
            return cached
        _check_event_type(event_type)
        matched: dict[EventHandler, None] = {}
        for pattern, handler, wildcard in self._registrations:
            if pattern == event_type or (wildcard and fnmatchcase(event_type, pattern)):
                matched.setdefault(handler, None)
        resolved = tuple(matched)
        if len(self._cache) >= _MAX_CACHED_TYPES:
            self._cache.clear()
        self._cache[event_type] = resolved
        return resolved

    # -- delivery -----------------------------------------------------------------------------

    async def emit(self, event_type: str, data: dict[str, Any]) -> int:
        """Deliver ``data`` to every matching handler; return how many completed successfully."""
        handlers = self._cache.get(event_type) if type(event_type) is str else None
        if handlers is None:
            handlers = self._resolve(event_type)
        self._emitted += 1
        if len(handlers) != 1:
            if not handlers:
                return 0
            return await self._emit_many(event_type, handlers, data)
        # Fast path, inlined on purpose: run the one handler in this task. Drive its first step
        # ourselves; most handlers finish without suspending, and then no timer is armed.
        handler = handlers[0]
        try:
            result = handler(data)
            if result is not None:
                if self._timeout is None:
                    await result
                elif type(result) is types.CoroutineType:
                    try:
                        pending = result.send(None)
                    except StopIteration:
                        pass
                    else:
                        await self._finish_suspended(result, pending)
                else:
                    await self._await_with_timeout(result)
        except _HandlerTimedOut as exc:
            await self._report(event_type, handler, exc.error, "timeout")
            return 0
        except Exception as exc:
            await self._report(event_type, handler, exc, "exception")
            return 0
        self._delivered += 1
        return 1

    async def _finish_suspended(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        if self._timeout is None:
            await _resume(coro, pending)
            return
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                await _resume(coro, pending)
        except TimeoutError:
            if deadline.expired():
                raise _HandlerTimedOut(self._timeout) from None
            raise

    async def _await_with_timeout(self, awaitable: Awaitable[Any]) -> None:
        if self._timeout is None:
            await awaitable
            return
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                await awaitable
        except TimeoutError:
            if deadline.expired():
                raise _HandlerTimedOut(self._timeout) from None
            raise

    async def _run(self, result: Awaitable[Any]) -> None:
        """Await a handler's result under the timeout, arming the timer only if it suspends."""
        if type(result) is types.CoroutineType:
            try:
                pending = result.send(None)
            except StopIteration:
                return
            await self._finish_suspended(result, pending)
        else:
            await self._await_with_timeout(result)

    async def _guarded(self, result: Awaitable[Any]) -> _Failure | None:
        try:
            await self._run(result)
        except _HandlerTimedOut as exc:
            return exc.error, "timeout"
        except Exception as exc:
            return exc, "exception"
        return None

    async def _emit_many(
        self, event_type: str, handlers: tuple[EventHandler, ...], data: dict[str, Any]
    ) -> int:
        # Like eager tasks: each handler's first step runs here, in order. Most finish without
        # suspending and cost no task. The first one that suspends keeps running inline in this
        # task (it may have captured current_task(), e.g. via asyncio.timeout or a TaskGroup,
        # so it must not move); every handler after it gets its own task, so all run concurrently.
        ok = 0
        failures: list[tuple[EventHandler, BaseException, _FailureKind]] = []
        started: list[tuple[EventHandler, asyncio.Task[_Failure | None]]] = []
        inline: tuple[EventHandler, Coroutine[Any, Any, Any], Any] | None = None
        try:
            for handler in handlers:
                try:
                    result = handler(data)
                    if result is None:
                        ok += 1
                    elif inline is None and type(result) is types.CoroutineType:
                        try:
                            pending = result.send(None)
                        except StopIteration:
                            ok += 1
                        else:
                            inline = (handler, result, pending)
                    else:
                        started.append((handler, _start_task(self._guarded(result))))
                except Exception as exc:
                    failures.append((handler, exc, "exception"))
            if inline is not None:
                handler, coro, pending = inline
                try:
                    await self._finish_suspended(coro, pending)
                    ok += 1
                except _HandlerTimedOut as exc:
                    failures.append((handler, exc.error, "timeout"))
                except Exception as exc:
                    failures.append((handler, exc, "exception"))
            if started:
                outcomes = await asyncio.gather(*(task for _, task in started))
                for (handler, _), outcome in zip(started, outcomes, strict=True):
                    if outcome is None:
                        ok += 1
                    else:
                        failures.append((handler, *outcome))
        except BaseException:
            for _, task in started:
                task.cancel()
            raise
        self._delivered += ok
        for handler, error, kind in failures:
            await self._report(event_type, handler, error, kind)
        return ok

    async def _report(
        self,
        event_type: str,
        handler: EventHandler,
        error: BaseException,
        kind: _FailureKind,
    ) -> None:
        self._failed += 1
        if kind == "timeout":
            self._timeouts += 1
        name = _describe(handler)
        logger.error(
            "event handler %s failed on %r (%s): %r",
            name,
            event_type,
            kind,
            error,
            exc_info=error if kind == "exception" else None,
        )
        if event_type == HANDLER_ERROR:
            return  # never report failures of error handlers recursively
        await self.emit(
            HANDLER_ERROR,
            {"event_type": event_type, "handler": name, "error": repr(error), "kind": kind},
        )

    def __repr__(self) -> str:
        return (
            f"<EventBus {self.name!r} registrations={len(self._registrations)} "
            f"timeout={self._timeout}>"
        )


class _HandlerTimedOut(Exception):
    """Internal signal carrying the :class:`EventHandlerTimeout` for a timed-out handler."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout)
        self.error = EventHandlerTimeout(
            f"event handler exceeded its {timeout}s timeout", timeout=timeout
        )
