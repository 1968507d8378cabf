"""Retrieval quality on real conversations: recall@5 / @10 of the evidence turns, every store.

Run: ``.venv/bin/python bench/recall.py [--data DIR] [--stores memory,sqlite,redis,postgres]``

As the dataset's README says: each turn is stored as one memory ("Speaker: text", with the
session date), each question of categories 1-4 is the query, and recall@k is the share of its
evidence turns found in the top k (averaged over questions). Each store kind gets the same
memories through ``MemoryManager``; the in-memory index is the reference (ratio column).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _stores import KINDS, factory

from deep_tree_echo.aar_core.memory import MemoryManager, MemoryStore

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev"


Turns = list[tuple[str, dict[str, str]]]
Questions = list[tuple[str, set[str]]]


def load(data_dir: Path) -> list[tuple[Turns, Questions]]:
    """Per conversation: its turns (id, memory data) and its questions (text, evidence ids)."""
    out = []
    for path in sorted(data_dir.glob("*.json")):
        conv = json.loads(path.read_text(encoding="utf-8"))
        turns = []
        k = 1
        while f"session_{k}" in conv:
            date = conv.get(f"session_{k}_date_time", "")
            for turn in conv[f"session_{k}"]:
                content = f"{turn['speaker']}: {turn['text']}"
                turns.append((turn["dia_id"], {"content": content, "session_date": date}))
            k += 1
        questions = [
            (qa["question"], set(qa["evidence"]))
            for qa in conv["qa"]
            if qa.get("category") in (1, 2, 3, 4) and qa.get("evidence")
        ]
        out.append((turns, questions))
    return out


async def measure(
    kind: str,
    make: Callable[[str], Awaitable[MemoryStore]],
    conversations: list[tuple[Turns, Questions]],
) -> tuple[float, float, int, float]:
    hits5 = hits10 = 0.0
    asked = 0
    took = 0.0
    for turns, questions in conversations:
        manager = MemoryManager(await make(kind), node_id="bench")
        await manager.initialize()
        for memory_id, data in turns:
            await manager.store_memory(memory_id, data)
        for question, evidence in questions:
            t0 = time.perf_counter()
            found = [hit.id for hit in await manager.search(question, limit=10)]
            took += time.perf_counter() - t0
            hits5 += len(evidence & set(found[:5])) / len(evidence)
            hits10 += len(evidence & set(found)) / len(evidence)
            asked += 1
        await manager.close()
    return hits5 / asked, hits10 / asked, asked, took / asked * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--stores", default=",".join(KINDS))
    args = parser.parse_args()
    kinds = tuple(k for k in args.stores.split(",") if k)
    conversations = load(args.data)
    if not conversations:
        sys.exit(f"no conversations (*.json) in {args.data}: pass --data DIR")
    print(f"python {sys.version.split()[0]}; {len(conversations)} conversations from {args.data}")
    with factory(kinds) as stores:
        results = {kind: await measure(kind, stores.new, conversations) for kind in kinds}
    ref = results.get("memory")
    head = ("store", "questions", "recall@5", "recall@10", "vs memory", "ms/query")
    print("{:10} {:>9} {:>9} {:>10} {:>11} {:>9}".format(*head))
    for kind, (r5, r10, n, ms) in results.items():
        ratio = f"{r5 / ref[0]:.3f}/{r10 / ref[1]:.3f}" if ref else "-"
        print(f"{kind:10} {n:9d} {r5:9.3f} {r10:10.3f} {ratio:>11} {ms:9.2f}")


if __name__ == "__main__":
    asyncio.run(main())
