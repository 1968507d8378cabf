"""What a served request leaves to the garbage collector: tracked objects and collection pauses.

Run: ``PYTHONPATH=src .venv/bin/python bench/gc_heap.py [--requests 30000] [--threshold 700]``

In one process, on the in-memory store the gateway bench serves from (``bench/gateway.py``):

* ``tracked/1k memories``: growth of ``len(gc.get_objects())`` (after a full collection) per
  1,000 memories stored through ``MemoryManager.store_memory`` with data shaped like the echo
  agent's (nested ``relations`` and ``dates``);
* ``tracked/1k requests``: the same per 1,000 ``gateway.process_cognitive_input`` calls
  (a memory and a session turn each, 64 sessions, a fresh word per request as the gateway
  bench sends), after :func:`gc.freeze` of the start-up heap as ``serve`` does;
* the pauses of every collection during those requests, per generation (a ``gc.callbacks``
  probe: wall time between its ``start`` and ``stop``): count, p50, p99, max and total ms.

``--through app`` sends the requests through the whole served app instead (``bench/gateway.py``'s
``full`` app, as ASGI calls in this process: middleware, route, event outbox, metrics).

Object counts do not depend on the machine's load; pause times do, a little (they are CPU
work with no I/O, measured on a shared machine). Compare two checkouts by running this file
with ``PYTHONPATH`` pointing at each one's ``src``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.aar_core.memory import MemoryManager

SETTINGS: dict[str, Any] = {"memory_store": "memory", "log_level": "warning"}


def tracked() -> int:
    """GC-tracked objects after a full collection."""
    gc.collect()
    return len(gc.get_objects())


async def memories_growth(n: int) -> float:
    """Tracked objects added per 1,000 memories stored through the manager."""
    async with MemoryManager() as manager:
        for i in range(200):  # warm the caches (analysis, views)
            await manager.store_memory(f"warm-{i}", _data(i))
        before = tracked()
        for i in range(n):
            await manager.store_memory(f"m-{i}", _data(i))
        return (tracked() - before) * 1000 / n


def _data(i: int) -> dict[str, Any]:
    return {
        "content": f"w{i % 64:02d}q{i:07d} went to the lab on monday",
        "kind": "episodic",
        "importance": 0.6,
        "session_id": f"bench-{i % 64}",
        "relations": {"session": f"bench-{i % 64}", "agent": "echo", "used_memories": []},
        "dates": [],
    }


class PauseProbe:
    """Wall time of every collection, by generation (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._start) * 1000)


def _gateway_caller(gateway: AARGateway) -> Callable[[int], Awaitable[None]]:
    async def call(i: int) -> None:
        result = await gateway.process_cognitive_input(
            {
                "type": "text",
                "content": f"w{i % 64:02d}q{i:07d}",
                "context": {"external_source": "bench", "session_id": f"bench-{i % 64}"},
            }
        )
        if result.get("status") != "success":
            raise RuntimeError(f"request {i} failed: {result}")

    return call


def _app_caller(app: Any) -> Callable[[int], Awaitable[None]]:
    """``POST /v1/process`` as the gateway bench's client sends it, as one ASGI call."""
    from gateway import _request_bytes  # bench/gateway.py

    async def call(i: int) -> None:
        head, _, body = _request_bytes(0, i % 64, i).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")[1:]
        headers = [(name.lower(), value) for name, value in (x.split(b": ", 1) for x in lines)]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/process",
            "raw_path": b"/v1/process", "root_path": "", "query_string": b"",
            "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"request {i} answered {status}")

    return call


async def requests_growth(n: int, through: str) -> tuple[float, PauseProbe, float]:
    """Tracked objects per 1,000 requests, the collections' pauses, and requests per second."""
    async with contextlib.AsyncExitStack() as stack:
        if through == "app":
            from gateway import _full_app  # bench/gateway.py

            app = _full_app()
            await stack.enter_async_context(app.router.lifespan_context(app))
            call = _app_caller(app)
        else:
            gateway = await stack.enter_async_context(AARGateway(SETTINGS))
            call = _gateway_caller(gateway)

        for i in range(500):  # warm-up, then the start-up heap frozen as serve does
            await call(i)
        gc.collect()
        gc.freeze()
        before = tracked()
        probe = PauseProbe()
        gc.callbacks.append(probe)
        start = time.perf_counter()
        try:
            for i in range(n):
                await call(1000 + i)
        finally:
            elapsed = time.perf_counter() - start
            gc.callbacks.remove(probe)
        growth = (tracked() - before) * 1000 / n
        gc.unfreeze()
        return growth, probe, n / elapsed


def _row(gen: int, pauses: list[float]) -> str:
    if not pauses:
        return f"  gen{gen}: no collections"
    pauses = sorted(pauses)
    p99 = pauses[min(len(pauses) - 1, int(len(pauses) * 0.99))]
    return (
        f"  gen{gen}: {len(pauses):>6} collections  p50 {statistics.median(pauses):7.3f} ms  "
        f"p99 {p99:7.3f} ms  max {pauses[-1]:7.2f} ms  total {sum(pauses):8.1f} ms"
    )


async def main(requests: int, memories: int, through: str) -> None:
    print(f"python {sys.version.split()[0]}, gc thresholds {gc.get_threshold()}")
    print(f"tracked objects per 1,000 memories stored ({memories}): "
          f"{await memories_growth(memories):.0f}")
    growth, probe, rate = await requests_growth(requests, through)
    print(f"tracked objects per 1,000 requests through the {through} ({requests}): {growth:.0f}"
          f"  ({rate:.0f} req/s)")
    print("collection pauses during those requests:")
    for gen, pauses in probe.pauses.items():
        print(_row(gen, pauses))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--memories", type=int, default=20_000)
    parser.add_argument("--threshold", type=int, default=0,
                        help="gen-0 threshold to set first (0: keep the default)")
    parser.add_argument("--through", choices=("gateway", "app"), default="gateway",
                        help="send requests to the gateway, or through the served app (ASGI)")
    args = parser.parse_args()
    if args.threshold:
        gc.set_threshold(args.threshold, *gc.get_threshold()[1:])
    asyncio.run(main(args.requests, args.memories, args.through))
