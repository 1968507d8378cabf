"""JSON request decoding: plain ``json.loads`` vs :func:`deep_tree_echo._json.loads_text` (which
also refuses lone surrogates), side by side in one process, on typical and large bodies.

Run: ``PYTHONPATH=src python bench/json_decode.py``. Prints microseconds per decode and the
ratio (loads_text / json.loads) for each body; run it twice on a shared machine.
"""

from __future__ import annotations

import json
import timeit

from deep_tree_echo._json import loads_text

BODIES = {
    "process 120 B": json.dumps({"data": "what is the wifi password?", "session_id": "conv",
                                 "context": {"memory_scope": "session"}}).encode(),
    "memory 2 KB": json.dumps({"content": "the sky is blue " * 120, "importance": 0.7}).encode(),
    "memory 100 KB": json.dumps({"content": "word " * 20_000}).encode(),
    "100 KB, escapes": json.dumps({"content": "line\n" * 20_000}).encode(),
    "emoji escapes 2 KB": json.dumps({"content": "\U0001f600 ok " * 150}).encode(),  # pairs
}


def main() -> None:
    print(f"{'body':<20} {'json.loads us':>14} {'loads_text us':>14} {'ratio':>6}")
    for name, body in BODIES.items():
        number = 20_000 if len(body) < 10_000 else 500
        plain = min(timeit.repeat(lambda b=body: json.loads(b), number=number, repeat=9))
        checked = min(timeit.repeat(lambda b=body: loads_text(b), number=number, repeat=9))
        plain_us, checked_us = plain / number * 1e6, checked / number * 1e6
        print(f"{name:<20} {plain_us:>14.2f} {checked_us:>14.2f} {checked_us / plain_us:>6.2f}")


if __name__ == "__main__":
    main()
