"""Throughput and latency of ``POST /v1/process`` vs a bare Starlette endpoint on the same engine.

Run: ``.venv/bin/python bench/gateway.py`` (about a minute; loopback only).

Two uvicorn servers run in separate child processes with identical uvicorn settings:

* ``full``: ``deep_tree_echo.server.app.create_app`` as deployed: Prometheus timing, API-key
  auth (one key, sent by the client as ``Authorization: Bearer``), the per-client rate limit
  (on, with a limit far above what a run sends, so it counts but never rejects), the body cap,
  exception handlers, content negotiation, the seed's request/response transformation and
  WebSocket forwarding of the gateway's events all in the path (settings: :data:`SETTINGS`);
* ``bare``: one Starlette route that parses the same JSON and awaits the same
  ``gateway.process_cognitive_input`` — the floor any HTTP layer could reach.

Both use the in-memory store and the same settings; the bare server ignores auth and limits.
The client is a small raw asyncio HTTP/1.1 keep-alive client (one connection per concurrent
worker), shared by both runs, so its cost cancels in the ratio.
Each level runs a fixed time slice after a warm-up, capped at a request count (bounded loops).

Req/s ratios need free cores: on a shared, loaded machine they measure the neighbours. So each
slice also reads the server process's CPU time (``/proc/<pid>/stat``) and reports CPU
microseconds per request; ``cpu ratio`` = bare CPU per request / full CPU per request is the
throughput ratio the two would have on an otherwise idle core, and it stays put under load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LEVELS = (1, 16, 64)
WARMUP_S = 0.5
MEASURE_S = 2.0
#: Each level alternates bare and full this many times and reports medians, so a burst of
#: noise on this shared 2-core machine lands on one slice, not on one side of the ratio.
ROUNDS = 3
MAX_REQUESTS = 200_000
GOAL = 0.8
#: p99 of the full gateway at the highest concurrency, at most this multiple of bare's.
P99_GOAL = 1.5

ROOT = Path(__file__).resolve().parent.parent


# -- servers (child processes) ---------------------------------------------------------------


API_KEY = "bench-key"
#: What both servers run with (printed by every run). 10M requests per 60 s for the one client
#: address: the limiter runs on every request but a run (< MAX_REQUESTS) can never reach it.
SETTINGS: dict[str, Any] = {
    "memory_store": "memory",
    "api_keys": [API_KEY],
    "rate_limit_requests": 10_000_000,
    "rate_limit_window": 60.0,
    "log_level": "warning",
}


def _settings() -> Any:
    from deep_tree_echo.config import EchoSettings

    return EchoSettings.coerce(SETTINGS)


def _bare_app() -> Any:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from deep_tree_echo.aar_core.gateway import AARGateway

    gateway = AARGateway(_settings())

    async def process(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        result = await gateway.process_cognitive_input(
            {
                "type": body.get("message_type", "text"),
                "content": body.get("data", ""),
                "context": {
                    "external_source": body.get("source", "api"),
                    "timestamp": body.get("timestamp"),
                    "session_id": body.get("session_id"),
                },
            }
        )
        return JSONResponse(
            {
                "success": result.get("status") == "success",
                "data": result.get("cognitive_response", {}),
                "metadata": {
                    "processing_time": result.get("processing_time"),
                    "confidence": result.get("confidence", 0.0),
                },
            }
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with gateway:
            gc.collect()
            gc.freeze()  # as serve's full app does (create_app(freeze_gc=True)): same footing
            yield

    return Starlette(routes=[Route("/v1/process", process, methods=["POST"])], lifespan=lifespan)


def _full_app() -> Any:
    from deep_tree_echo.server.app import create_app

    return create_app(_settings(), freeze_gc=True)


def serve(kind: str, port: int) -> None:
    import uvicorn

    app = _bare_app() if kind == "bare" else _full_app()
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )


def _start(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    from deep_tree_echo.testing._process import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    return proc, port


async def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):  # bounded: 30 s
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"server on port {port} did not start")


# -- client ----------------------------------------------------------------------------------


def _request_bytes(port: int, worker: int, i: int) -> bytes:
    # A fresh word per request: each answer stores a memory, and a text shared by every
    # request would make memory search cost grow with the run's length (and differ between
    # the two servers, which serve different numbers of requests).
    body = json.dumps(
        {
            "message_type": "text",
            "data": f"w{worker:02d}q{i:07d}",
            "source": "bench",
            "session_id": f"bench-{worker}",
        }
    ).encode()
    head = (
        f"POST /v1/process HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> None:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    if status != b"200":
        raise RuntimeError(f"HTTP {status.decode()}: {head[:200]!r}")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run_level(
    port: int, pid: int, concurrency: int
) -> tuple[float, float, float, int, float]:
    """``(req/s, p50 ms, p99 ms, requests, server CPU us per request)`` of one slice."""
    latencies: list[float] = []
    state = {"measuring": False, "stop": False, "count": 0}

    async def worker(w: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = 0
        try:
            while not state["stop"] and state["count"] < MAX_REQUESTS:
                i += 1
                req = _request_bytes(port, w, i)
                t0 = time.perf_counter()
                await _one(reader, writer, req)
                if state["measuring"]:
                    latencies.append(time.perf_counter() - t0)
                    state["count"] += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker(w)) for w in range(concurrency)]
    await asyncio.sleep(WARMUP_S)
    state["measuring"] = True
    cpu_start = _cpu_seconds(pid)
    start = time.perf_counter()
    await asyncio.sleep(MEASURE_S)
    state["stop"] = True
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds(pid) - cpu_start
    await asyncio.gather(*tasks)
    n = len(latencies)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(n - 1, int(n * 0.99))]
    return n / elapsed, p50 * 1000, p99 * 1000, n, cpu / n * 1e6


async def main() -> None:
    servers = {kind: _start(kind) for kind in ("bare", "full")}
    try:
        for proc, port in servers.values():
            await _wait_ready(port, proc)
        print(
            f"POST /v1/process, embedded engine, in-memory store; median of {ROUNDS} alternating "
            f"{MEASURE_S:.0f}s slices per level after {WARMUP_S}s warm-up; "
            f"python {sys.version.split()[0]}"
        )
        shown = {k: ("***" if k == "api_keys" else v) for k, v in SETTINGS.items()}
        print(f"settings: {shown}")
        print(
            f"{'conc':>4} | {'bare req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'cpu us':>6} | "
            f"{'full req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'cpu us':>6} | {'ratio':>5} "
            f"{'cpu ratio':>9}"
        )
        ratios = []
        cpu_ratios = []
        p99s: tuple[float, float] = (0.0, 0.0)
        for level in LEVELS:
            rounds = []
            for _ in range(ROUNDS):
                bare_proc, bare_port = servers["bare"]
                full_proc, full_port = servers["full"]
                bare = await _run_level(bare_port, bare_proc.pid, level)
                full = await _run_level(full_port, full_proc.pid, level)
                rounds.append((full[0] / bare[0], bare, full))
            cpu_ratio = statistics.median(b[4] / f[4] for _, b, f in rounds)
            cpu_ratios.append(cpu_ratio)
            rounds.sort(key=lambda r: r[0])
            ratio, bare, full = rounds[len(rounds) // 2]  # the median round
            ratios.append(ratio)
            p99s = (bare[2], full[2])
            print(
                f"{level:>4} | {bare[0]:>10.0f} {bare[1]:>7.2f} {bare[2]:>7.2f} {bare[4]:>6.0f} | "
                f"{full[0]:>10.0f} {full[1]:>7.2f} {full[2]:>7.2f} {full[4]:>6.0f} | "
                f"{ratio:>5.2f} {cpu_ratio:>9.2f}"
                f"   (rounds: {', '.join(f'{r[0]:.2f}' for r in rounds)})"
            )
        worst = min(ratios)
        verdict = "meets" if worst >= GOAL else "misses"
        print(f"worst ratio full/bare = {worst:.2f} ({verdict} the goal of >= {GOAL})")
        worst = min(cpu_ratios)
        verdict = "meets" if worst >= GOAL else "misses"
        print(f"worst CPU-per-request ratio bare/full = {worst:.2f} ({verdict} the goal of "
              f">= {GOAL})")
        p99_ratio = p99s[1] / p99s[0]
        verdict = "meets" if p99_ratio <= P99_GOAL else "misses"
        print(f"p99 at c={LEVELS[-1]}: full/bare = {p99_ratio:.2f} ({verdict} the goal of "
              f"<= {P99_GOAL})")
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(timeout=15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("bare", "full"))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        asyncio.run(main())
