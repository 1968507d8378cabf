"""Summarise mutmut results per critical module: kill rate and the surviving mutants.

Usage: python scripts/mutation_report.py [MODULE ...] [--diff]

Reads .mutmut/<module>/mutants/**/*.meta written by scripts/mutate.py. Mutants listed in
scripts/mutation_equivalents.txt (equivalent: no test can tell them apart from the original;
each line `mutant_name  # why`) are left out of the rate and shown separately.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutate import TARGETS, WORK
from mutation_manual import MUTANTS, load

EQUIVALENTS = Path(__file__).resolve().parent / "mutation_equivalents.txt"

_STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
           36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
           37: "type check", None: "not checked"}


def equivalents() -> dict[str, str]:
    found: dict[str, str] = {}
    if EQUIVALENTS.exists():
        for line in EQUIVALENTS.read_text().splitlines():
            name, _, why = line.partition("#")
            if name.strip():
                found[name.strip()] = why.strip()
    return found


def results(name: str) -> dict[str, str]:
    """Mutant name -> status for one module's run (only the functions that module targets)."""
    if name in MUTANTS:  # hand-written mutants
        found = load().get(name, {})
        return {f"{name}.{m.name}": found.get(m.name, "not checked") for m in MUTANTS[name]}
    target = TARGETS[name]
    meta = WORK / name / "mutants" / (target.source + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    patterns = target.mutant_patterns()
    return {k: _STATUS.get(v, "suspicious") for k, v in codes.items()
            if any(fnmatch.fnmatch(k, p) for p in patterns)}


def show(name: str, mutant: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=WORK / name,
                         env=env, capture_output=True, text=True, check=False)
    return "\n".join("        " + line for line in out.stdout.splitlines()[1:])


def report(names: list[str], diff: bool = False) -> int:
    equiv = equivalents()
    print(f"{'module':<16} {'mutants':>7} {'killed':>6} {'timeout':>7} {'equiv':>5} "
          f"{'survived':>8} {'unrun':>5} {'kill rate':>9}")
    worst = 100.0
    survivors: list[tuple[str, str, str]] = []
    for name in names:
        res = results(name)
        counts = Counter(res.values())
        eq = [m for m, s in res.items()
              if m in equiv and s not in ("killed", "timeout", "not checked")]
        killed = counts["killed"] + counts["timeout"]
        unrun = counts["not checked"]
        judged = len(res) - unrun - len(eq)
        rate = 100.0 * killed / judged if judged else 0.0
        worst = min(worst, rate)
        print(f"{name:<16} {len(res):>7} {counts['killed']:>6} {counts['timeout']:>7} "
              f"{len(eq):>5} {judged - killed:>8} {unrun:>5} {rate:>8.1f}%")
        survivors += [(name, m, s) for m, s in sorted(res.items())
                      if s not in ("killed", "timeout", "not checked") and m not in equiv]
    if survivors:
        print("\nsurviving mutants (not listed as equivalent):")
        for name, mutant, status in survivors:
            print(f"  [{name}] {mutant}: {status}")
            if diff and name in TARGETS:
                print(show(name, mutant))
    return 0 if worst >= 90.0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE")
    parser.add_argument("--diff", action="store_true", help="print each survivor's diff")
    args = parser.parse_args()
    names = args.modules or [*(n for n in TARGETS if (WORK / n).exists()), *MUTANTS]
    return report(names, diff=args.diff)


if __name__ == "__main__":
    raise SystemExit(main())
