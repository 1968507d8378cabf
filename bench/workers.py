"""``POST /v1/process`` req/s and p99 with one worker vs two on the same store.

Run: ``.venv/bin/python bench/workers.py [--store sqlite|postgres ...] [--postgres-url URL]``
(needs ``wrk``: ``apt-get install wrk``; about 20 s per store and worker count).

Each configuration is a real ``deep-tree-echo serve [--workers 2]`` process (auth and the rate
limit on, as deployed, with a limit a run never reaches) loaded by ``wrk`` from a separate
process, every request with a fresh word and one of 32 sessions. ``postgres`` uses
``--postgres-url`` or starts a throwaway server like the test suite does. The figure to
watch is the ratio two/one (goal: >= 1.5); on a machine with fewer free cores than
workers + load generator it cannot reach that.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from deep_tree_echo.testing._process import free_port, start_process  # noqa: E402

API_KEY = "bench-key"
CONNECTIONS = 32
THREADS = 2
WARMUP_S = 2
MEASURE_S = 8
GOAL = 1.5

LUA = f"""
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{{"message_type":"text","data":"wq%09d note","source":"bench","session_id":"bench-%d"}}',
    n * 100 + math.random(0, 99), n % 32)
  return wrk.format("POST", "/v1/process",
    {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {API_KEY}"}}, body)
end
"""


@contextmanager
def _server(store: str, workers: int, pg_url: str | None) -> Iterator[int]:
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="dte-bench-")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "DTE_API_KEYS": API_KEY,
        "DTE_RATE_LIMIT_REQUESTS": "10000000",
        "DTE_LOG_LEVEL": "warning",
    }
    if store == "postgres":
        assert pg_url is not None
        env.update({"DTE_MEMORY_STORE": "postgres", "DTE_DATABASE_URL": pg_url})
    cmd = [sys.executable, "-m", "deep_tree_echo", "serve", "--port", str(port),
           "--data-dir", data_dir, "--workers", str(workers)]
    # worker processes print a ready line; a single process is ready once it accepts
    ready = r"deep-tree-echo worker \d+ ready" if workers > 1 else r"deep-tree-echo \S+: store="
    managed = start_process(cmd, ready, timeout=120, env=env, ready_count=workers)
    try:
        if workers == 1:
            _wait_accepting(port)
        yield port
    finally:
        managed.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _wait_accepting(port: int) -> None:
    for _ in range(1200):  # bounded: 120 s
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def _wrk(port: int, seconds: int, script: str) -> tuple[float, float]:
    done = subprocess.run(
        ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency",
         "-s", script, f"http://127.0.0.1:{port}/v1/process"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if rate is None or p99 is None or errors is not None:
        raise RuntimeError(f"wrk output not understood or errors:\n{done.stdout}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99[2]]
    return float(rate[1]), float(p99[1]) * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", action="append", choices=("sqlite", "postgres"))
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    stores = args.store or ["sqlite", "postgres"]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    script = Path(tempfile.mkdtemp(prefix="dte-wrk-")) / "process.lua"
    script.write_text(LUA)
    print(f"POST /v1/process, wrk -t{THREADS} -c{CONNECTIONS}, {MEASURE_S}s after {WARMUP_S}s "
          f"warm-up, auth + rate limit on; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    print(f"{'store':>8} | {'1 worker req/s':>14} {'p99 ms':>7} | "
          f"{'2 workers req/s':>15} {'p99 ms':>7} | {'ratio':>5}")
    for store in stores:
        pg: contextmanager[str] | nullcontext[str | None]  # type: ignore[valid-type]
        if store == "postgres" and not args.postgres_url:
            from _services import postgres_server

            pg = postgres_server()
        else:
            pg = nullcontext(args.postgres_url)
        with pg as pg_url:
            results = []
            for workers in (1, 2):
                with _server(store, workers, pg_url) as port:
                    _wrk(port, WARMUP_S, str(script))
                    results.append(_wrk(port, MEASURE_S, str(script)))
        (one, one_p99), (two, two_p99) = results
        ratio = two / one
        print(f"{store:>8} | {one:>14.0f} {one_p99:>7.1f} | {two:>15.0f} {two_p99:>7.1f} | "
              f"{ratio:>5.2f}  ({'meets' if ratio >= GOAL else 'misses'} >= {GOAL})")


if __name__ == "__main__":
    main()
