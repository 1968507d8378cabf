"""``POST /v1/process`` req/s and p99 with one worker vs two on the same store.

Run: ``.venv/bin/python bench/workers.py [--store sqlite|postgres ...] [--postgres-url URL]
[--rounds N] [--connections C]`` (needs ``wrk``: ``apt-get install wrk``; about 20 s per store,
worker count and round).

Each configuration is a real ``deep-tree-echo serve [--workers 2]`` process (auth and the rate
limit on, as deployed, with a limit a run never reaches) loaded by ``wrk`` from a separate
process, every request with a fresh word and one of 32 sessions. ``postgres`` uses
``--postgres-url`` or starts a throwaway server like the test suite does. The figure to
watch is the ratio two/one (goal: >= 1.5); on a machine with fewer free cores than
workers + load generator it cannot reach that.

So each run also reads the CPU time the server's whole process tree used during the measured
slice (``/proc/<pid>/stat``, parent and every worker) and reports CPU milliseconds per
request: that is load-independent, and it says whether a second worker adds cost per request
(lock waits, contention) or only shares the cores. ``cpu-bound x`` is the ratio two workers
would reach on two free cores, ``2 * cpu_one / cpu_two`` (1 worker can use one core, 2 can use
two): the figure that stays meaningful when wrk and other jobs share the machine.

``machine x`` is how much pure-Python work two processes get done together against one alone
(a 2 s spin of each, measured before each pair of runs; 2.00 on cores that never slow each
other down). On a shared virtual machine it moves between about 1.15 and 2 from one minute to
the next: both cores busy can make each one slower, whatever the code.

``busy`` is how many of the machine's cores were busy during the slice (``/proc/stat``: the
server, wrk, the database and the kernel alike). ``machine cap x`` is ``cores / busy`` of the
one-worker run: the most any second worker could add on this machine, even one that cost
nothing extra per request. Below 1.5, the wall goal cannot be met here whatever the code does.

``share-nothing x`` is the ceiling that counts: two single-worker servers that share nothing
(each its own data directory, or on PostgreSQL its own database) loaded at once, each by its
own wrk with half the connections, against one alone. No two workers sharing one store can
beat two servers sharing nothing, so ``of ceiling`` (ratio / share-nothing x) says how much of
what this machine allows the workers reach; where share-nothing x is below 1.5, the goal
cannot be met here by any design.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.queues
import os
import re
import shutil
import socket
import statistics
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
CPUS = os.cpu_count() or 1

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


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its live descendants."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree = {root}
    for _ in range(8):  # bounded: the tree is a few levels deep
        grown = tree | {pid for pid, (ppid, _) in stats.items() if ppid in tree}
        if grown == tree:
            break
        tree = grown
    ticks = sum(stats[pid][1] for pid in tree if pid in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def _server(store: str, workers: int, pg_url: str | None) -> Iterator[tuple[int, int]]:
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
        yield port, managed.proc.pid
    finally:
        managed.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _share_nothing_url(pg_url: str) -> str:
    """A second, empty database on the server of ``pg_url`` (the share-nothing run's other
    server writes there)."""
    import asyncio

    import asyncpg

    name = f"dte_bench_{os.getpid()}_{int(time.time() * 1000)}"

    async def create() -> None:
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    asyncio.run(create())
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


def _wait_accepting(port: int) -> None:
    for _ in range(1200):  # bounded: 120 s
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def _machine_busy() -> tuple[float, float]:
    """``(busy CPU seconds of the whole machine so far, now)`` from ``/proc/stat``: every
    process, the load generator and the kernel included (idle and iowait excluded)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user..steal, less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK"), time.monotonic()


def _wrk(servers: list[tuple[int, int]], seconds: int, script: str, connections: int) -> Result:
    """One wrk per ``(port, pid)`` server, all at once, each with its share of the connections
    and of wrk's threads: the servers' summed req/s, their worst p99 (ms), their CPU ms per
    request (process trees) and the busy cores of the whole machine."""
    share = max(1, connections // len(servers))
    threads = max(1, THREADS // len(servers))
    cpu_before = sum(_tree_cpu(pid) for _, pid in servers)
    busy_before, at_before = _machine_busy()
    runs = [subprocess.Popen(
        ["wrk", "-t", str(threads), "-c", str(share), "-d", f"{seconds}s", "--latency",
         "-s", script, f"http://127.0.0.1:{port}/v1/process"],
        stdout=subprocess.PIPE, text=True) for port, _ in servers]
    outputs = [run.communicate(timeout=seconds + 60)[0] for run in runs]
    cpu = sum(_tree_cpu(pid) for _, pid in servers) - cpu_before
    busy_after, at_after = _machine_busy()
    rates, p99s, counts = [], [], 0
    for run, out in zip(runs, outputs, strict=True):
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
        count = re.search(r"(\d+) requests in", out)
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        if run.returncode or rate is None or p99 is None or count is None or "Non-2xx" in out:
            raise RuntimeError(f"wrk failed, or its output was not understood:\n{out}")
        rates.append(float(rate[1]))
        p99s.append(float(p99[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99[2]])
        counts += int(count[1])
    cores = (busy_after - busy_before) / (at_after - at_before)
    return sum(rates), max(p99s), cpu * 1000 / max(1, counts), cores


def _share_nothing(store: str, pg_url: str | None, other_url: str | None, script: str,
                   connections: int) -> Result:
    """Two single-worker servers sharing nothing, loaded at once (see the docstring)."""
    with _server(store, 1, pg_url) as first, _server(store, 1, other_url) as second:
        _wrk([first, second], WARMUP_S, script, connections)
        return _wrk([first, second], MEASURE_S, script, connections)


def _spin(seconds: float, out: multiprocessing.queues.Queue[int]) -> None:
    """Pure-Python work for ``seconds`` of wall time; puts the number of steps done."""
    end = time.monotonic() + seconds
    steps = 0
    table: dict[int, str] = {}
    while time.monotonic() < end:
        for i in range(1000):
            table[i % 97] = json.dumps([i, "x" * 20])
        steps += 1
    out.put(steps)


def machine_scaling(seconds: float = 2.0) -> float:
    """Work two processes do together over what one does alone (see the module docstring)."""
    rates = []
    for procs in (1, 2):
        out: multiprocessing.queues.Queue[int] = multiprocessing.Queue()
        spinners = [multiprocessing.Process(target=_spin, args=(seconds, out))
                    for _ in range(procs)]
        for p in spinners:
            p.start()
        rates.append(sum(out.get() for _ in spinners))
        for p in spinners:
            p.join()
    return rates[1] / rates[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", action="append", choices=("sqlite", "postgres"))
    parser.add_argument("--postgres-url")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds per store: one worker, two, and the share-nothing pair (the"
                             " order alternates: 1,2,pair then pair,2,1 ...); with more than"
                             " one, a last row gives the medians, which a noisy machine moves"
                             " less than any single round")
    parser.add_argument("--connections", type=int, default=CONNECTIONS,
                        help=f"wrk's open connections, for both worker counts (default "
                             f"{CONNECTIONS})")
    args = parser.parse_args()
    stores = args.store or ["sqlite", "postgres"]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    script = Path(tempfile.mkdtemp(prefix="dte-wrk-")) / "process.lua"
    script.write_text(LUA)
    print(f"POST /v1/process, wrk -t{THREADS} -c{args.connections}, {MEASURE_S}s after {WARMUP_S}s "
          f"warm-up, auth + rate limit on; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    print(f"{'store':>8} | {'1 worker req/s':>14} {'p99 ms':>7} {'cpu ms':>6} {'busy':>5} | "
          f"{'2 workers req/s':>15} {'p99 ms':>7} {'cpu ms':>6} {'busy':>5} | {'ratio':>5} | "
          f"machine cap x | cpu-bound x | machine x | share-nothing x | of ceiling")
    for store in stores:
        pg: contextmanager[str] | nullcontext[str | None]  # type: ignore[valid-type]
        if store == "postgres" and not args.postgres_url:
            from _services import postgres_server

            pg = postgres_server()
        else:
            pg = nullcontext(args.postgres_url)
        rounds: list[tuple[Result, Result, Result]] = []
        machine: list[float] = []
        with pg as pg_url:
            other_url = _share_nothing_url(pg_url) if store == "postgres" and pg_url else None
            for n in range(args.rounds):
                machine.append(machine_scaling())
                results: dict[int, Result] = {}
                # 0 = the share-nothing pair; the order alternates, so drift hits all alike
                for workers in ((1, 2, 0) if n % 2 == 0 else (0, 2, 1)):
                    if workers == 0:
                        results[0] = _share_nothing(store, pg_url, other_url, str(script),
                                                    args.connections)
                        continue
                    with _server(store, workers, pg_url) as server:
                        _wrk([server], WARMUP_S, str(script), args.connections)
                        results[workers] = _wrk([server], MEASURE_S, str(script),
                                                args.connections)
                rounds.append((results[1], results[2], results[0]))
                _row(store, results[1], results[2], machine[-1], results[0])
        if len(rounds) > 1:
            one, two, apart = (tuple(statistics.median(r[k][i] for r in rounds)
                                     for i in range(4)) for k in range(3))
            ratios = [r[1][0] / r[0][0] for r in rounds]
            ceilings = [r[2][0] / r[0][0] for r in rounds]
            _row("median", one, two, statistics.median(machine), apart)  # type: ignore[arg-type]
            print(f"{'':>8}   per-round ratios {', '.join(f'{x:.2f}' for x in ratios)}; "
                  f"median {statistics.median(ratios):.2f}; share-nothing "
                  f"{', '.join(f'{x:.2f}' for x in ceilings)}; median "
                  f"{statistics.median(ceilings):.2f}")


Result = tuple[float, float, float, float]  # req/s, p99 ms, CPU ms per request, busy cores


def _row(label: str, one_run: Result, two_run: Result, machine: float, apart: Result) -> None:
    (one, one_p99, one_cpu, one_busy), (two, two_p99, two_cpu, two_busy) = one_run, two_run
    ratio = two / one
    bound = 2 * one_cpu / two_cpu
    cap = CPUS / one_busy  # what a second worker could add if nothing else used a core
    ceiling = apart[0] / one  # two servers sharing nothing, at once
    print(f"{label:>8} | {one:>14.0f} {one_p99:>7.1f} {one_cpu:>6.2f} {one_busy:>5.2f} | "
          f"{two:>15.0f} {two_p99:>7.1f} {two_cpu:>6.2f} {two_busy:>5.2f} | {ratio:>5.2f} | "
          f"{cap:>7.2f} | {bound:>5.2f} | {machine:>5.2f} | {ceiling:>7.2f} | "
          f"{ratio / ceiling:>5.2f}  (wall {'meets' if ratio >= GOAL else 'misses'} >= {GOAL}; "
          f"share-nothing {'allows' if ceiling >= GOAL else 'forbids'} it: {apart[0]:.0f} req/s,"
          f" {apart[2]:.2f} cpu ms, {apart[3]:.2f} busy)", flush=True)


if __name__ == "__main__":
    main()
