"""The mutation report's check of equivalent entries: an entry judged on one change does not
excuse a mutant that now makes another (mutmut renumbers a function's mutants when it is
edited). Runs the report's functions on a small mutated module written here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import mutate
import mutation_report
from mutation_manual import MUTANTS

MUTATED = '''
def x_f__mutmut_orig(a):
    b = a + 1
    return b * 2

def x_f__mutmut_1(a):
    b = a - 1
    return b * 2

class C:
    async def xǁCǁg__mutmut_orig(self):
        return "close"

    async def xǁCǁg__mutmut_2(self):
        return "CLOSE"
'''


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    source = tmp_path / "demo" / "mutants" / "src" / "demo.py"
    source.parent.mkdir(parents=True)
    source.write_text(MUTATED)
    monkeypatch.setattr(mutation_report, "WORK", tmp_path)
    monkeypatch.setitem(mutation_report.TARGETS, "demo", mutate.Target("src/demo.py", ()))
    mutation_report._functions.cache_clear()
    return tmp_path


def test_change_names_the_mutated_lines(work: Path) -> None:
    assert mutation_report.change("demo", "pkg.demo.x_f__mutmut_1") == "b = a - 1"
    assert mutation_report.change("demo", "pkg.demo.xǁCǁg__mutmut_2") == 'return "CLOSE"'
    assert mutation_report.change("demo", "pkg.demo.x_f__mutmut_9") is None  # not generated
    assert mutation_report.change("not_a_target", "pkg.demo.x_f__mutmut_1") is None


def test_a_module_never_run_has_no_changes(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(mutation_report.TARGETS, "unrun", mutate.Target("src/unrun.py", ()))
    assert mutation_report.change("unrun", "pkg.unrun.x_f__mutmut_1") is None


def test_an_entry_judged_on_another_change_is_stale(work: Path) -> None:
    assert not mutation_report.stale("demo", "pkg.demo.x_f__mutmut_1", "b = a - 1")
    assert mutation_report.stale("demo", "pkg.demo.x_f__mutmut_1", "return b / 2")
    assert not mutation_report.stale("demo", "pkg.demo.x_f__mutmut_1", None)  # unchecked


def test_every_listed_equivalent_parses() -> None:
    listed = mutation_report.equivalents()
    assert listed, "scripts/mutation_equivalents.txt is empty"
    for name, (why, change) in listed.items():
        # mutmut's names, or a hand-written mutant's "<group>.<name>"
        assert name.startswith("deep_tree_echo.") or name.split(".")[0] in MUTANTS, name
        assert why, f"{name}: no reason given"
        assert change is None or change, f"{name}: '@@' without a change"
