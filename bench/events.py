"""ns per emit to async handlers: direct await vs EventBus vs pyee vs blinker.

Run: ``.venv/bin/python bench/events.py``. Every variant is timed until its handlers have
actually run: pyee schedules each coroutine as a task, so its loop is followed by a drain that
waits for the last completion, and that time is included.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

from blinker import Signal
from pyee.asyncio import AsyncIOEventEmitter

from deep_tree_echo.aar_core.events import EventBus

N = 100_000
REPEATS = 5
DATA: dict[str, Any] = {"agent_id": "a1", "message": "hello"}


class Counter:
    """The handler body shared by all variants: count, and wake a waiter at a target."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.done: asyncio.Event | None = None

    def hit(self) -> None:
        self.count += 1
        if self.count == self.target and self.done is not None:
            self.done.set()

    async def drain(self, target: int) -> None:
        if self.count >= target:
            return
        self.target = target
        self.done = asyncio.Event()
        await self.done.wait()


Runner = Callable[[int], Awaitable[None]]


async def best_ns(run: Runner, n: int) -> float:
    """Best-of-REPEATS ns per emit."""
    await run(1000)  # warm up
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        start = time.perf_counter_ns()
        await run(n)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def make_direct(c: Counter, handlers: int) -> Runner:
    async def handler(data: dict[str, Any]) -> None:
        c.hit()

    hs = [handler] * handlers

    async def run(n: int) -> None:
        for _ in range(n):
            for h in hs:
                await h(DATA)

    return run


def make_bus(c: Counter, handlers: int, timeout: float | None = 5.0) -> Runner:
    bus = EventBus(handler_timeout=timeout)
    for _ in range(handlers):

        async def handler(data: dict[str, Any]) -> None:
            c.hit()

        bus.register("agent.message", handler)

    async def run(n: int) -> None:
        emit = bus.emit
        for _ in range(n):
            await emit("agent.message", DATA)

    return run


def make_pyee(c: Counter, handlers: int) -> Runner:
    ee = AsyncIOEventEmitter()
    for _ in range(handlers):

        async def handler(data: dict[str, Any]) -> None:
            c.hit()

        ee.on("agent.message", handler)

    async def run(n: int) -> None:
        target = c.count + n * handlers
        emit = ee.emit
        for _ in range(n):
            emit("agent.message", DATA)
        await c.drain(target)

    return run


def make_blinker(c: Counter, handlers: int) -> Runner:
    sig = Signal()
    keep = []
    for _ in range(handlers):

        async def handler(sender: Any, **data: Any) -> None:
            c.hit()

        keep.append(handler)
        sig.connect(handler, weak=False)

    async def run(n: int) -> None:
        send = sig.send_async
        for _ in range(n):
            await send(None, **DATA)

    return run


VARIANTS: list[tuple[str, Callable[[Counter, int], Runner]]] = [
    ("direct await", make_direct),
    ("EventBus (ours)", make_bus),
    ("EventBus, no timeout", lambda c, h: make_bus(c, h, None)),
    ("pyee AsyncIOEventEmitter", make_pyee),
    ("blinker send_async", make_blinker),
]


async def measure(handlers: int, n: int) -> list[tuple[str, float]]:
    rows = []
    for label, factory in VARIANTS:
        counter = Counter()
        runner = factory(counter, handlers)
        ns = await best_ns(runner, n)
        expected = (1000 + REPEATS * n) * handlers
        assert counter.count == expected, (label, counter.count, expected)
        rows.append((label, ns))
    return rows


def print_table(title: str, rows: list[tuple[str, float]]) -> None:
    ours = dict(rows)["EventBus (ours)"]
    print(f"\n{title}")
    print(f"{'variant':<28}{'ns/emit':>12}{'vs ours':>10}")
    for label, ns in rows:
        print(f"{label:<28}{ns:>12.0f}{ns / ours:>9.2f}x")


async def main() -> None:
    print_table(f"1 async handler, {N} emits, best of {REPEATS}", await measure(1, N))
    print_table(
        f"10 async handlers, {N // 10} emits, best of {REPEATS}", await measure(10, N // 10)
    )


if __name__ == "__main__":
    asyncio.run(main())
