"""A worker's memory does not grow with the store: RSS with 200k memories in PostgreSQL stays
within 2x of the RSS over an empty store (issue 8). Each side is a fresh child process running
a gateway on the store and answering inputs (search, get, count), as a worker would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from deep_tree_echo.aar_core.memory import MemoryRecord, PostgresStore, Version

ROWS = 200_000
WORDS = ["lab", "river", "coffee", "report", "garden", "train", "music", "budget", "vault"]

_WORKER = """
import asyncio, json, sys
from deep_tree_echo.aar_core.gateway import AARGateway

async def main() -> None:
    config = {"memory_store": "postgres", "database_url": sys.argv[1]}
    async with AARGateway(config) as gw:
        for i in range(20):
            await gw.process_cognitive_input({"type": "text", "content": f"the vault {i} river?"})
            await gw.memory.retrieve_memory(f"m{i * 997}")
        count = await gw.memory.count()
        hits = len(await gw.memory.search("coffee garden", limit=10))
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"rss_kb": rss, "count": count, "hits": hits}))

asyncio.run(main())
"""


def _worker_rss(url: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _WORKER, url],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=True,
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def test_worker_rss_with_200k_memories_stays_within_2x_of_an_empty_store(
    postgres_db: str,
) -> None:
    store = PostgresStore(postgres_db)
    await store.open()  # creates the schema, so the empty run measures an empty table
    empty = _worker_rss(postgres_db)
    batch: list[MemoryRecord] = []
    for i in range(ROWS):
        text = " ".join(WORDS[(i * k) % len(WORDS)] for k in (1, 3, 7)) + f" note {i}"
        batch.append(MemoryRecord(f"m{i}", {"content": text}, Version(i + 1, 0, "n"), 1.0, 1.0))
        if len(batch) == 5000:
            await store.put_many(batch)
            batch = []
    assert await store.count() >= ROWS
    await store.close()
    full = _worker_rss(postgres_db)
    # each worker also remembers the inputs it answered (at most one memory per input)
    assert empty["count"] <= 20 and ROWS < full["count"] <= ROWS + 40
    assert full["hits"] == 10
    assert full["rss_kb"] <= 2 * empty["rss_kb"], (empty, full)
