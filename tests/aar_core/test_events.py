"""EventBus: pattern routing, concurrency, failure isolation, timeouts and error events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from deep_tree_echo.aar_core.errors import EventHandlerTimeout
from deep_tree_echo.aar_core.events import HANDLER_ERROR, EventBus, EventHandler
from deep_tree_echo.errors import InvalidInputError


class Recorder:
    """Collects (label, data) pairs from the handlers it makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def sync(self, label: str) -> EventHandler:
        def handler(data: dict[str, Any]) -> None:
            self.calls.append((label, data))

        return handler

    def async_(self, label: str) -> EventHandler:
        async def handler(data: dict[str, Any]) -> None:
            self.calls.append((label, data))

        return handler

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.calls]


async def test_exact_star_and_wildcard_patterns() -> None:
    bus = EventBus()
    rec = Recorder()
    bus.register("memory.update", rec.async_("exact"))
    bus.register("memory.*", rec.async_("wild"))
    bus.register("*", rec.sync("all"))

    assert await bus.emit("memory.update", {"n": 1}) == 3
    assert rec.labels == ["exact", "wild", "all"]

    rec.calls.clear()
    # fnmatch semantics: "*" crosses dots, so memory.* also matches deeper names.
    assert await bus.emit("memory.a.b", {}) == 2
    assert rec.labels == ["wild", "all"]

    rec.calls.clear()
    assert await bus.emit("memoryx", {}) == 1
    assert await bus.emit("agent.memory.update", {}) == 1
    assert rec.labels == ["all", "all"]


async def test_emit_without_handlers_returns_zero_and_counts() -> None:
    bus = EventBus()
    assert await bus.emit("nobody.listens", {}) == 0
    assert bus.stats == {"emitted": 1, "delivered": 0, "failed": 0, "timeouts": 0}


async def test_handlers_resolution_is_cached_and_invalidated() -> None:
    bus = EventBus()
    rec = Recorder()
    first, second = rec.async_("first"), rec.sync("second")
    bus.register("agent.message", first)
    assert bus.handlers("agent.message") == [first]
    bus.register("agent.*", second)
    assert bus.handlers("agent.message") == [first, second]
    assert bus.unregister("agent.message", first) is True
    assert bus.unregister("agent.message", first) is False
    assert bus.handlers("agent.message") == [second]
    assert await bus.emit("agent.message", {}) == 1
    assert rec.labels == ["second"]


async def test_duplicate_registration_and_overlapping_patterns_run_once() -> None:
    bus = EventBus()
    rec = Recorder()
    handler = rec.async_("h")
    bus.register("memory.update", handler)
    bus.register("memory.update", handler)
    bus.register("memory.*", handler)
    assert bus.handlers("memory.update") == [handler]
    assert await bus.emit("memory.update", {}) == 1
    assert rec.labels == ["h"]


async def test_bound_methods_unregister_by_equality() -> None:
    class Sink:
        def __init__(self) -> None:
            self.seen = 0

        async def on_event(self, data: dict[str, Any]) -> None:
            self.seen += 1

    sink = Sink()
    bus = EventBus()
    bus.register("x", sink.on_event)
    await bus.emit("x", {})
    assert bus.unregister("x", sink.on_event) is True
    await bus.emit("x", {})
    assert sink.seen == 1


async def test_single_handler_that_suspends_completes_in_the_emitting_task() -> None:
    bus = EventBus()
    seen: list[Any] = []
    emitting_task = asyncio.current_task()

    async def handler(data: dict[str, Any]) -> None:
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, data["v"])
        seen.append(await fut)
        seen.append(asyncio.current_task() is emitting_task)

    bus.register("e", handler)
    assert await bus.emit("e", {"v": 42}) == 1
    assert seen == [42, True]
    assert bus.stats["delivered"] == 1


async def test_handler_returning_a_plain_awaitable() -> None:
    bus = EventBus()
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def handler(data: dict[str, Any]) -> asyncio.Future[None]:
        loop.call_soon(done.set_result, None)
        return done

    bus.register("e", handler)
    assert await bus.emit("e", {}) == 1
    assert done.done()


async def test_many_handlers_run_concurrently() -> None:
    # Each handler waits for the other: only concurrent delivery can finish.
    bus = EventBus(handler_timeout=None)
    a_ready, b_ready = asyncio.Event(), asyncio.Event()

    async def a(data: dict[str, Any]) -> None:
        a_ready.set()
        await b_ready.wait()

    async def b(data: dict[str, Any]) -> None:
        b_ready.set()
        await a_ready.wait()

    async def c(data: dict[str, Any]) -> None:
        await a_ready.wait()
        await b_ready.wait()

    for handler in (a, b, c):
        bus.register("sync.point", handler)
    assert await bus.emit("sync.point", {}) == 3
    assert bus.stats == {"emitted": 1, "delivered": 3, "failed": 0, "timeouts": 0}


async def test_inline_handler_keeps_its_own_asyncio_timeout() -> None:
    # The first suspending handler runs inline; its own asyncio.timeout must cancel only it.
    bus = EventBus()
    rec = Recorder()

    async def bounded(data: dict[str, Any]) -> None:
        async with asyncio.timeout(0):
            await asyncio.Event().wait()

    bus.register("e", bounded)
    bus.register("e", rec.async_("after"))
    errors: list[dict[str, Any]] = []
    bus.register(HANDLER_ERROR, lambda d: errors.append(d))

    assert await bus.emit("e", {}) == 1
    assert rec.labels == ["after"]
    assert [e["kind"] for e in errors] == ["exception"]
    assert "TimeoutError" in errors[0]["error"]


async def test_failure_is_isolated_logged_counted_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    rec = Recorder()
    errors: list[dict[str, Any]] = []

    async def boom(data: dict[str, Any]) -> None:
        raise RuntimeError("handler exploded")

    bus.register("agent.message", rec.sync("before"))
    bus.register("agent.message", boom)
    bus.register("agent.message", rec.async_("after"))
    bus.register(HANDLER_ERROR, errors.append)

    with caplog.at_level(logging.ERROR, logger="deep_tree_echo.events"):
        assert await bus.emit("agent.message", {"m": "hi"}) == 2

    assert rec.labels == ["before", "after"]
    assert len(errors) == 1
    assert errors[0]["event_type"] == "agent.message"
    assert errors[0]["kind"] == "exception"
    assert errors[0]["handler"].endswith("boom")
    assert "handler exploded" in errors[0]["error"]
    assert bus.stats == {"emitted": 2, "delivered": 3, "failed": 1, "timeouts": 0}
    assert any("handler exploded" in r.getMessage() for r in caplog.records)


async def test_single_failing_handler_is_reported() -> None:
    bus = EventBus()
    errors: list[dict[str, Any]] = []

    def boom(data: dict[str, Any]) -> None:
        raise ValueError("bad data")

    bus.register("x", boom)
    bus.register(HANDLER_ERROR, errors.append)
    assert await bus.emit("x", {}) == 0
    assert [(e["event_type"], e["kind"]) for e in errors] == [("x", "exception")]


async def test_timeout_cancels_only_the_slow_handler() -> None:
    bus = EventBus(handler_timeout=0.01)
    rec = Recorder()
    cancelled = asyncio.Event()
    errors: list[dict[str, Any]] = []

    async def hangs(data: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    bus.register("slow", hangs)
    bus.register("slow", rec.async_("fast"))
    bus.register(HANDLER_ERROR, errors.append)

    assert await bus.emit("slow", {}) == 1
    assert cancelled.is_set()
    assert rec.labels == ["fast"]
    assert [e["kind"] for e in errors] == ["timeout"]
    assert EventHandlerTimeout.__name__ in errors[0]["error"]
    assert bus.stats["timeouts"] == 1
    assert bus.stats["failed"] == 1


async def test_timeout_on_single_handler_fast_path() -> None:
    bus = EventBus(handler_timeout=0.01)
    errors: list[dict[str, Any]] = []

    async def hangs(data: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    bus.register("slow", hangs)
    bus.register(HANDLER_ERROR, errors.append)
    assert await bus.emit("slow", {}) == 0
    assert [e["kind"] for e in errors] == ["timeout"]
    # The emitting task is not left cancelled.
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_handler_timeout_error_raised_by_handler_counts_as_exception() -> None:
    bus = EventBus()
    errors: list[dict[str, Any]] = []

    async def raises_timeout(data: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        raise TimeoutError("upstream timed out")

    bus.register("x", raises_timeout)
    bus.register(HANDLER_ERROR, errors.append)
    assert await bus.emit("x", {}) == 0
    assert [e["kind"] for e in errors] == ["exception"]
    assert bus.stats["timeouts"] == 0


async def test_failing_error_handler_is_not_reported_recursively() -> None:
    bus = EventBus()
    calls = 0

    def bad_error_handler(data: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("error handler broke too")

    def boom(data: dict[str, Any]) -> None:
        raise RuntimeError("first")

    bus.register("x", boom)
    bus.register(HANDLER_ERROR, bad_error_handler)
    assert await bus.emit("x", {}) == 0
    assert calls == 1
    assert bus.stats == {"emitted": 2, "delivered": 0, "failed": 2, "timeouts": 0}


async def test_cancelling_the_emitter_cancels_handlers_and_is_not_a_failure() -> None:
    bus = EventBus(handler_timeout=None)
    started = asyncio.Event()
    cancelled: list[str] = []

    def make(label: str) -> EventHandler:
        async def handler(data: dict[str, Any]) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(label)
                raise

        return handler

    bus.register("e", make("a"))
    bus.register("e", make("b"))
    emitter = asyncio.create_task(bus.emit("e", {}))
    await started.wait()
    emitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await emitter
    assert sorted(cancelled) == ["a", "b"]
    assert bus.stats["failed"] == 0


@pytest.mark.parametrize("bad", [123, None, b"bytes", ["list"]])
async def test_emit_rejects_non_string_event_types(bad: Any) -> None:
    bus = EventBus()
    with pytest.raises(TypeError, match="event_type must be a str"):
        await bus.emit(bad, {})


async def test_empty_event_type_and_bad_handler_are_rejected() -> None:
    bus = EventBus()
    with pytest.raises(InvalidInputError, match="non-empty"):
        await bus.emit("", {})
    with pytest.raises(ValueError):
        bus.register("", lambda d: None)
    with pytest.raises(TypeError, match="callable"):
        bus.register("x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        EventBus(handler_timeout=0)


async def test_aclose_drops_handlers() -> None:
    bus = EventBus()
    rec = Recorder()
    bus.register("*", rec.sync("x"))
    await bus.aclose()
    assert await bus.emit("anything", {}) == 0
    assert rec.calls == []
