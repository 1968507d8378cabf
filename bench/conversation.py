"""How well Echo understands a long conversation (LoCoMo development set, no model).

Run: ``.venv/bin/python bench/conversation.py [--data DIR] [--latency | --latency-only]``

Per conversation a fresh in-process gateway (embedded engine, in-memory store) is told every
turn as ``"Speaker: text"`` through ``process_cognitive_input`` with the session's date as
``context.timestamp`` (as a chat client would send it), then:

* retrieval: recall@5 and @10 of the evidence turns when the question is the
  ``memory.search`` query (categories 1-4, before any question is asked);
* answers: each question is asked through ``process_cognitive_input``; a reply counts when it
  holds every content word of the gold answer (categories 1, 2, 4), reported per category;
* category 5 (the conversation does not answer): how often the reply is a confident
  (>= 0.5) answer instead of "I don't know";
* calibration: for categories 1, 2, 4, the share of correct replies per confidence band.

``--latency`` adds p50/p99 of ``process_cognitive_input`` (what ``POST /v1/process`` runs
after parsing) for questions against 10k stored memories (the dev turns, repeated with
varied speakers), in process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from deep_tree_echo.aar_core.gateway import AARGateway

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev"
_WORD = re.compile(r"\w+")
#: Function words left out of the gold answer before matching (the bench's own list, so the
#: measure does not move with the analysis under test).
def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FUNCTION_WORDS = _set(
    "a an the and or of in on at to for with by from is are was were be been it its his "
    "her their they he she them this that these those as"
)
BANDS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01))
DONT_KNOW = re.compile(r"\b(don't know|do not know|no memor|not sure)", re.IGNORECASE)


def session_time(text: str) -> datetime:
    """``"1:56 pm on 8 May, 2023"`` as a datetime."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y")


def turns(conv: dict[str, Any]) -> list[tuple[str, str, str, datetime]]:
    """(dia_id, speaker, text, session time) of every turn in order."""
    out = []
    k = 1
    while f"session_{k}" in conv or f"session_{k}_date_time" in conv:
        when_text = conv.get(f"session_{k}_date_time")
        for turn in conv.get(f"session_{k}", []) if when_text else []:
            out.append((turn["dia_id"], turn["speaker"], turn["text"], session_time(when_text)))
        k += 1
    return out


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def gold_words(answer: Any) -> set[str]:
    return {w for w in words(str(answer)) if w not in _FUNCTION_WORDS}


async def run_conversation(path: Path, stats: dict[str, Any]) -> None:
    conv = json.loads(path.read_text())  # noqa: ASYNC240 - a bench, nothing else runs
    gateway = AARGateway({"memory_store": "memory"})
    await gateway.initialize()
    try:
        dia_of: dict[str, str] = {}
        last = None
        for dia_id, speaker, text, when in turns(conv):
            last = when
            result = await gateway.process_cognitive_input(
                {"type": "text", "content": f"{speaker}: {text}",
                 "context": {"session_id": f"{path.stem}-talk", "timestamp": when.isoformat()}}
            )
            memory_id = result.get("cognitive_response", {}).get("memory_id")
            if memory_id:
                dia_of[memory_id] = dia_id
        qa = conv["qa"]
        for item in qa:  # retrieval first: no question is stored yet
            cat = int(item["category"])
            evidence = set(item.get("evidence") or [])
            if cat == 5 or not evidence:
                continue
            found = [dia_of.get(r.id) for r in await gateway.memory.search(item["question"], 10)]
            for k in (5, 10):
                stats[f"recall@{k}"].append(len(evidence & set(found[:k])) / len(evidence))
        asked_at = (last or datetime.now()).isoformat()
        for item in qa:
            cat = int(item["category"])
            result = await gateway.process_cognitive_input(
                {"type": "text", "content": item["question"],
                 # asked from another session, over the tenant's memories (the told turns)
                 "context": {"session_id": f"{path.stem}-qa", "timestamp": asked_at,
                             "memory_scope": "tenant"}}
            )
            reply = str(result.get("cognitive_response", {}).get("text", ""))
            confidence = float(result.get("confidence", 0.0))
            if cat == 5:
                answered = not DONT_KNOW.search(reply)
                stats["cat5"].append(answered and confidence >= 0.5)
                continue
            gold = gold_words(item.get("answer", ""))
            ok = bool(gold) and gold <= words(reply)
            stats[f"cat{cat}"].append(ok)
            if cat in (1, 2, 4):
                stats["bands"].append((confidence, ok))
    finally:
        await gateway.cleanup()


async def latency(paths: list[Path], size: int, queries: int) -> tuple[float, ...]:
    """p50/p99 ms of ``process_cognitive_input`` for questions over ``size`` memories: wall
    time, then CPU time of this process (steadier on a shared, loaded machine)."""
    convs = [json.loads(p.read_text()) for p in paths]
    texts = [f"{s}: {t}" for c in convs for _, s, t, _ in turns(c)]
    questions = [str(q["question"]) for c in convs for q in c["qa"]][:queries]
    gateway = AARGateway({"memory_store": "memory"})
    await gateway.initialize()
    try:
        for i in range(size):
            text = texts[i % len(texts)]
            await gateway.memory.store_memory(
                f"m{i}", {"content": f"{text} ({i // len(texts)})", "kind": "episodic"}
            )
        for q in questions[:20]:  # warm-up
            await gateway.process_cognitive_input({"content": q})
        times, cpu = [], []
        for q in questions:
            start, cpu_start = time.perf_counter(), time.process_time()
            await gateway.process_cognitive_input({"content": q, "context": {"session_id": "l"}})
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
    finally:
        await gateway.cleanup()
    return (*_p50_p99(times), *_p50_p99(cpu))


def _p50_p99(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return xs[len(xs) // 2] * 1000, xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000


def _print_latency(figures: tuple[float, ...], queries: int) -> None:
    p50, p99, cpu50, cpu99 = figures
    print(f"process_cognitive_input at 10k memories: p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
          f"(CPU p50 {cpu50:.2f} ms  p99 {cpu99:.2f} ms; {queries} questions)")


def mean(xs: list[Any]) -> float:
    return sum(float(x) for x in xs) / len(xs) if xs else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--latency", action="store_true", help="also time 10k-memory queries")
    parser.add_argument("--latency-only", action="store_true", help="only the latency part")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    paths = sorted(args.data.glob("*.json"))
    if not paths:
        sys.exit(f"no conversations in {args.data}")
    if args.latency_only:
        _print_latency(asyncio.run(latency(paths, 10_000, args.queries)), args.queries)
        return
    stats: dict[str, Any] = defaultdict(list)
    start = time.perf_counter()
    for path in paths:
        asyncio.run(run_conversation(path, stats))
    print(f"LoCoMo dev: {len(paths)} conversations, {time.perf_counter() - start:.1f}s")
    print(f"retrieval  recall@5 {mean(stats['recall@5']):.3f}  "
          f"recall@10 {mean(stats['recall@10']):.3f}  (n={len(stats['recall@5'])})")
    for cat in (1, 2, 3, 4):
        xs = stats[f"cat{cat}"]
        print(f"gold in reply, category {cat}: {mean(xs):.3f}  (n={len(xs)})")
    c124 = stats["cat1"] + stats["cat2"] + stats["cat4"]
    print(f"gold in reply, categories 1+2+4: {mean(c124):.3f}  (n={len(c124)})")
    print(f"category 5 confident wrong (>= 0.5, not don't-know): {mean(stats['cat5']):.3f}  "
          f"(n={len(stats['cat5'])})")
    print("accuracy per confidence band (categories 1, 2, 4):")
    for lo, hi in BANDS:
        inside = [ok for c, ok in stats["bands"] if lo <= c < hi]
        print(f"  [{lo:.1f}, {min(hi, 1.0):.1f}{']' if hi > 1 else ')'}: "
              f"{mean(inside):.3f}  (n={len(inside)})")
    if args.latency:
        _print_latency(asyncio.run(latency(paths, 10_000, args.queries)), args.queries)


if __name__ == "__main__":
    main()
