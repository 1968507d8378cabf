"""Summarise mutmut results per critical module: kill rate and the surviving mutants.

Usage: python scripts/mutation_report.py [MODULE ...] [--diff] [--fingerprints]

Reads .mutmut/<module>/mutants/**/*.meta written by scripts/mutate.py. Mutants listed in
scripts/mutation_equivalents.txt (equivalent: no test can tell them apart from the original;
each line `mutant_name  # why  @@ change`) are left out of the rate and shown separately.

mutmut numbers a function's mutants in order, so an edit to the function renumbers them and an
old name may come to mean another mutant. ``@@ change`` is the mutant's changed line(s) as
the entry was judged: an entry whose mutant now changes something else is *stale* and its
mutant counts as a survivor. ``--fingerprints`` prints the entries that have none yet, with
their current change, to be checked and pasted back.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import json
import os
import re
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutate import TARGETS, WORK
from mutation_manual import MUTANTS, load

EQUIVALENTS = Path(__file__).resolve().parent / "mutation_equivalents.txt"

_STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
           36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
           37: "type check", None: "not checked"}


def equivalents() -> dict[str, tuple[str, str | None]]:
    """Mutant name -> (why, the change it was judged on, or None)."""
    found: dict[str, tuple[str, str | None]] = {}
    if EQUIVALENTS.exists():
        for line in EQUIVALENTS.read_text().splitlines():
            name, _, rest = line.partition("#")
            why, marker, change = rest.partition("@@")
            if name.strip():
                found[name.strip()] = (why.strip(), change.strip() if marker else None)
    return found


@cache
def _functions(path: Path) -> dict[str, str]:
    """Source of every function (methods too) in a mutated module, by name."""
    text = path.read_text()
    return {node.name: ast.get_source_segment(text, node) or ""
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def change(name: str, mutant: str) -> str | None:
    """The lines ``mutant`` of module ``name`` changes (stripped, joined by `` | ``); None when
    its source is not there (hand-written mutants, a module not run)."""
    source = WORK / name / "mutants" / TARGETS[name].source if name in TARGETS else None
    if source is None or not source.exists():
        return None
    functions = _functions(source)
    func = mutant.rsplit(".", 1)[-1]
    mutated = functions.get(func)
    original = functions.get(re.sub(r"__mutmut_\d+$", "__mutmut_orig", func))
    if mutated is None or original is None:
        return None
    # the def lines differ by name only
    diff = difflib.ndiff(original.splitlines()[1:], mutated.splitlines()[1:])
    return " | ".join(line[2:].strip() for line in diff if line.startswith("+ "))


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


def stale(name: str, mutant: str, judged_on: str | None) -> bool:
    """Whether an equivalent entry was judged on another change than ``mutant`` now makes."""
    if judged_on is None:
        return False
    now = change(name, mutant)
    return now is not None and now != judged_on


def report(names: list[str], diff: bool = False, fingerprints: bool = False) -> int:
    listed = equivalents()
    print(f"{'module':<16} {'mutants':>7} {'killed':>6} {'timeout':>7} {'equiv':>5} "
          f"{'survived':>8} {'unrun':>5} {'kill rate':>9}")
    worst = 100.0
    survivors: list[tuple[str, str, str]] = []
    unprinted: list[str] = []
    for name in names:
        res = results(name)
        for mutant, status in res.items():
            entry = listed.get(mutant)
            if entry is not None and status in ("survived", "no tests") \
                    and stale(name, mutant, entry[1]):
                res[mutant] = "stale equivalent"
            elif entry is not None and entry[1] is None and fingerprints:
                unprinted.append(f"{mutant}  # {entry[0]}  @@ {change(name, mutant)}")
        equiv = {m for m in listed if res.get(m) != "stale equivalent"}
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
        print("\nsurviving mutants (not listed as equivalent, or listed for another change):")
        for name, mutant, status in survivors:
            print(f"  [{name}] {mutant}: {status}")
            if diff and name in TARGETS:
                print(show(name, mutant))
    if unprinted:
        print("\nequivalents without the change they were judged on (check, then paste back):")
        for line in unprinted:
            print(f"  {line}")
    return 0 if worst >= 90.0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE")
    parser.add_argument("--diff", action="store_true", help="print each survivor's diff")
    parser.add_argument("--fingerprints", action="store_true",
                        help="print equivalent entries that lack '@@ change', with it")
    args = parser.parse_args()
    names = args.modules or [*(n for n in TARGETS if (WORK / n).exists()), *MUTANTS]
    return report(names, diff=args.diff, fingerprints=args.fingerprints)


if __name__ == "__main__":
    raise SystemExit(main())
