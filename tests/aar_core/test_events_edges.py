"""EventBus edges the main tests leave open: what each handler receives, how registrations
of one handler under several patterns behave, what a failure report says (event, log, stats)
and handlers that wait on something completed several loop turns later."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from deep_tree_echo.aar_core.errors import EventHandlerTimeout
from deep_tree_echo.aar_core.events import HANDLER_ERROR, EventBus, EventHandler
from deep_tree_echo.errors import InvalidInputError

_completers: set[asyncio.Task[None]] = set()  # strong references until they finish


def _later(value: Any = None, turns: int = 3) -> asyncio.Future[Any]:
    """A future a separate task completes ``turns`` loop iterations from now: a handler that
    awaits it is resumed by the loop, never by whoever drives its first step."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    async def complete() -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
        fut.set_result(value)

    _completers.add(task := loop.create_task(complete()))
    task.add_done_callback(_completers.discard)
    return fut


def _errors(bus: EventBus) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    bus.register(HANDLER_ERROR, errors.append)
    return errors


# -- registrations -------------------------------------------------------------------------


async def test_one_handler_under_two_patterns_is_registered_under_both() -> None:
    bus = EventBus()
    seen: list[str] = []

    def handler(data: dict[str, Any]) -> None:
        seen.append(data["n"])

    bus.register("a", handler)
    bus.register("b", handler)
    assert bus.handlers("a") == [handler]
    assert bus.handlers("b") == [handler]
    assert await bus.emit("b", {"n": "b1"}) == 1
    assert seen == ["b1"]


async def test_unregister_needs_both_the_pattern_and_the_handler() -> None:
    bus = EventBus()

    def first(data: dict[str, Any]) -> None: ...

    def second(data: dict[str, Any]) -> None: ...

    bus.register("a", first)
    bus.register("b", second)
    assert bus.unregister("a", second) is False  # second is registered, but not under "a"
    assert bus.unregister("b", first) is False
    assert bus.handlers("a") == [first]
    assert bus.handlers("b") == [second]


# -- what handlers receive and what emit counts -------------------------------------------------


async def test_every_handler_of_many_receives_the_emitted_dict() -> None:
    bus = EventBus()
    received: list[tuple[str, Any]] = []

    def sync(data: dict[str, Any]) -> None:
        received.append(("sync", data))

    async def quick(data: dict[str, Any]) -> None:
        received.append(("quick", data))

    async def waits(data: dict[str, Any]) -> None:
        await _later()
        received.append(("waits", data))

    async def waits_too(data: dict[str, Any]) -> None:
        await _later()
        received.append(("waits_too", data))

    for handler in (sync, quick, waits, waits_too):
        bus.register("e", handler)
    payload = {"v": 1}
    assert await bus.emit("e", payload) == 4
    assert sorted(label for label, _ in received) == ["quick", "sync", "waits", "waits_too"]
    assert all(data is payload for _, data in received)


async def test_delivered_and_timeouts_accumulate_across_emits() -> None:
    bus = EventBus(handler_timeout=0.01)

    async def waits(data: dict[str, Any]) -> None:
        await _later()

    async def hangs(data: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    def quick(data: dict[str, Any]) -> None: ...

    bus.register("ok", waits)
    bus.register("ok", quick)
    assert await bus.emit("ok", {}) == 2
    assert await bus.emit("ok", {}) == 2
    bus.register("slow", hangs)
    assert await bus.emit("slow", {}) == 0
    assert await bus.emit("slow", {}) == 0
    assert bus.stats == {"emitted": 6, "delivered": 4, "failed": 2, "timeouts": 2}


async def test_inline_handler_resumed_later_counts_once_among_several() -> None:
    bus = EventBus()

    def first(data: dict[str, Any]) -> None: ...

    def second(data: dict[str, Any]) -> None: ...

    async def waits(data: dict[str, Any]) -> None:
        await _later()

    for handler in (first, second, waits):
        bus.register("e", handler)
    assert await bus.emit("e", {}) == 3
    assert bus.stats["delivered"] == 3


# -- handlers resumed by the loop, several turns later -------------------------------------------


@pytest.mark.parametrize("limit", [5.0, None])
async def test_single_handler_resumed_by_a_later_future(limit: float | None) -> None:
    bus = EventBus(handler_timeout=limit)
    got: list[Any] = []

    async def handler(data: dict[str, Any]) -> None:
        got.append(await _later("first"))
        got.append(await _later("second"))

    bus.register("e", handler)
    assert await bus.emit("e", {}) == 1
    assert got == ["first", "second"]


@pytest.mark.parametrize("limit", [5.0, None])
async def test_many_handlers_resumed_by_later_futures(limit: float | None) -> None:
    bus = EventBus(handler_timeout=limit)
    got: list[str] = []

    def make(label: str) -> EventHandler:
        async def handler(data: dict[str, Any]) -> None:
            got.append(await _later(label))

        return handler

    for label in ("inline", "task"):
        bus.register("e", make(label))
    assert await bus.emit("e", {}) == 2
    assert sorted(got) == ["inline", "task"]


async def test_plain_awaitables_among_many_handlers() -> None:
    bus = EventBus()
    later = _later("done")

    def returns_future(data: dict[str, Any]) -> asyncio.Future[Any]:
        return later

    async def waits(data: dict[str, Any]) -> None:
        await _later()

    bus.register("e", returns_future)
    bus.register("e", waits)
    assert await bus.emit("e", {}) == 2
    assert later.result() == "done"


@pytest.mark.parametrize("others", [0, 1])
async def test_a_plain_awaitable_that_never_completes_times_out(others: int) -> None:
    bus = EventBus(handler_timeout=0.01)
    errors = _errors(bus)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def returns_never(data: dict[str, Any]) -> asyncio.Future[None]:
        return never

    bus.register("e", returns_never)
    for _ in range(others):
        bus.register("e", lambda data: None)
    assert await bus.emit("e", {}) == others
    assert [(e["kind"], e["error"]) for e in errors] == [
        ("timeout", "EventHandlerTimeout('event handler exceeded its 0.01s timeout')")
    ]
    assert bus.stats["timeouts"] == 1


# -- what a failure report says ------------------------------------------------------------------


def _name(handler: EventHandler) -> str:
    return f"{__name__}.{handler.__qualname__}"


async def test_single_handler_failure_report_names_event_handler_and_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    errors = _errors(bus)

    def boom(data: dict[str, Any]) -> None:
        raise ValueError("bad data")

    bus.register("x.y", boom)
    with caplog.at_level(logging.ERROR, logger="deep_tree_echo.events"):
        assert await bus.emit("x.y", {}) == 0
    assert errors == [{"event_type": "x.y", "handler": _name(boom),
                       "error": "ValueError('bad data')", "kind": "exception"}]
    [record] = caplog.records
    assert record.getMessage() == (
        f"event handler {_name(boom)} failed on 'x.y' (exception): ValueError('bad data')"
    )
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


@pytest.mark.parametrize("others", [0, 1])
async def test_timeout_report_carries_the_timeout(
    caplog: pytest.LogCaptureFixture, others: int
) -> None:
    bus = EventBus(handler_timeout=0.01)
    errors = _errors(bus)

    async def hangs(data: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    bus.register("slow", hangs)
    for _ in range(others):
        bus.register("slow", lambda data: None)
    with caplog.at_level(logging.ERROR, logger="deep_tree_echo.events"):
        assert await bus.emit("slow", {}) == others
    [record] = caplog.records
    assert record.exc_info is None  # a timeout is no traceback's business
    error = record.args[3] if isinstance(record.args, tuple) else None
    assert isinstance(error, EventHandlerTimeout)
    assert error.details == {"timeout": 0.01}
    assert str(error) == "event handler exceeded its 0.01s timeout"
    assert errors == [{"event_type": "slow", "handler": _name(hangs), "error": repr(error),
                       "kind": "timeout"}]


async def test_failures_of_handlers_run_as_tasks_are_reported_with_their_kind() -> None:
    bus = EventBus(handler_timeout=0.01)
    errors = _errors(bus)

    async def inline(data: dict[str, Any]) -> None:
        await _later()

    async def raises(data: dict[str, Any]) -> None:
        await _later()
        raise RuntimeError("late failure")

    async def hangs(data: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    for handler in (inline, raises, hangs):
        bus.register("e", handler)
    assert await bus.emit("e", {}) == 1
    assert sorted((e["handler"], e["kind"], e["error"]) for e in errors) == sorted([
        (_name(raises), "exception", "RuntimeError('late failure')"),
        (_name(hangs), "timeout", repr(EventHandlerTimeout(
            "event handler exceeded its 0.01s timeout", timeout=0.01))),
    ])
    assert bus.stats == {"emitted": 3, "delivered": 3, "failed": 2, "timeouts": 1}


async def test_handler_names_without_a_module_or_a_qualname() -> None:
    bus = EventBus()
    errors = _errors(bus)

    def nameless_module(data: dict[str, Any]) -> None:
        raise RuntimeError("a")

    nameless_module.__module__ = None  # type: ignore[assignment]

    class Callable:
        def __call__(self, data: dict[str, Any]) -> None:
            raise RuntimeError("b")

        def __repr__(self) -> str:
            return "<the callable>"

    bus.register("a", nameless_module)
    bus.register("b", Callable())
    await bus.emit("a", {})
    await bus.emit("b", {})
    assert [e["handler"] for e in errors] == [nameless_module.__qualname__, "<the callable>"]


# -- defaults and refusals ---------------------------------------------------------------------


def test_defaults() -> None:
    bus = EventBus()
    assert bus.handler_timeout == 5.0
    assert bus.name == "echo"
    assert repr(bus) == "<EventBus 'echo' registrations=0 timeout=5.0>"
    assert EventBus(name="ops").name == "ops"


async def test_refusals_name_the_problem() -> None:
    bus = EventBus()
    with pytest.raises(InvalidInputError) as empty:
        await bus.emit("", {})
    assert empty.value.code == "invalid_event_type"
    assert str(empty.value) == "event_type must be a non-empty string"
    with pytest.raises(TypeError, match=r"^event_type must be a str, not int$"):
        bus.register(7, lambda data: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^handler must be callable, got str$"):
        bus.register("x", "nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"^handler_timeout must be positive or None$"):
        EventBus(handler_timeout=-1)
