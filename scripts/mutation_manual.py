"""Hand-written mutants for code mutmut cannot reach: decorated FastAPI routes and Lua scripts.

mutmut 3 leaves decorated functions alone (``server/routes/replication.py`` is all routes),
treats a Lua script as one string and never mutates module-level constants (the PostgreSQL
statements in ``_postgres_sql.py``). Each mutant below is one plausible bug, applied to a scratch
copy of ``src/`` in .mutmut/manual/; the named tests must fail for it to count as killed.

Usage: python scripts/mutation_manual.py [GROUP ...]
       (groups: replication, store_redis_lua, store_postgres_sql)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutmut" / "manual"
_ROUTES = "src/deep_tree_echo/server/routes/replication.py"
_REDIS = "src/deep_tree_echo/aar_core/memory/_redis_lua.py"
_PG_SQL = "src/deep_tree_echo/aar_core/memory/_postgres_sql.py"
_PG_TESTS = (
    "tests/aar_core/memory/test_version_order.py",
    "tests/aar_core/memory/test_memory_stores.py",
    "tests/aar_core/memory/test_memory_purge.py",
    "tests/aar_core/memory/test_memory_tenants.py",
    "-k", "postgres",
)
_REPL_TESTS = ("tests/server/test_replication_routes.py",)
_LUA_TESTS = (
    "tests/aar_core/memory/test_version_order.py",
    "tests/aar_core/memory/test_memory_stores.py",
    "tests/aar_core/memory/test_memory_purge.py",
    "tests/aar_core/memory/test_memory_redis.py",
)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS: dict[str, list[Mutant]] = {
    "replication": [
        Mutant("id_check_dropped", _ROUTES, "if record.id != memory_id:", "if False:",
               _REPL_TESTS),
        Mutant("id_check_inverted", _ROUTES, "if record.id != memory_id:",
               "if record.id == memory_id:", _REPL_TESTS),
        Mutant("returns_incoming_version", _ROUTES,
               "version = stored.version if stored is not None else record.version",
               "version = record.version", _REPL_TESTS),
        Mutant("applied_always_true", _ROUTES, '"applied": applied,', '"applied": True,',
               _REPL_TESTS),
        Mutant("get_hides_tombstones", _ROUTES,
               "record = await memory.get_record(memory_id, include_deleted=True)",
               "record = await memory.get_record(memory_id)", _REPL_TESTS),
        Mutant("get_unknown_is_200", _ROUTES,
               "raise HTTPException(404, f\"no record of {memory_id!r} on this node\")",
               "return {}", _REPL_TESTS),
        Mutant("any_content_type", _ROUTES,
               '_negotiation.request_format(request.headers.get("content-type"), '
               "allowed=_JSON_ONLY)", "pass", _REPL_TESTS),
    ],
    "store_redis_lua": [
        Mutant("length_tiebreak_reversed", _REDIS, "return #an > #bn", "return #an < #bn",
               _LUA_TESTS),
        Mutant("equal_is_newer", _REDIS, "return #an > #bn", "return #an >= #bn", _LUA_TESTS),
        Mutant("byte_compare_reversed", _REDIS, "if x ~= y then return x > y end",
               "if x ~= y then return x < y end", _LUA_TESTS),
        Mutant("logical_ignored", _REDIS, "if al ~= bl then return al > bl end", "",
               _LUA_TESTS),
        Mutant("wall_as_text", _REDIS,
               "aw, al, bw, bl = tonumber(aw), tonumber(al), tonumber(bw), tonumber(bl)", "",
               _LUA_TESTS),
        Mutant("purge_without_check", _REDIS,
               "if redis.call('HGET', KEYS[i], 'v') == ARGV[i] then hits[#hits + 1] = i end",
               "if redis.call('EXISTS', KEYS[i]) == 1 then hits[#hits + 1] = i end",
               _LUA_TESTS),
        Mutant("put_keeps_old_fields", _REDIS, "redis.call('DEL', KEYS[1])\n", "",
               _LUA_TESTS),
        Mutant("put_not_indexed", _REDIS, "redis.call('ZADD', KEYS[2], 0, id)\n", "",
               _LUA_TESTS),
    ],
    "store_postgres_sql": [
        Mutant("equal_is_newer", _PG_SQL, "WHERE excluded.version > dte_memories.version",
               "WHERE excluded.version >= dte_memories.version", _PG_TESTS),
        Mutant("compare_reversed", _PG_SQL, "WHERE excluded.version > dte_memories.version",
               "WHERE excluded.version < dte_memories.version", _PG_TESTS),
        Mutant("put_unconditional", _PG_SQL,
               "WHERE excluded.version > dte_memories.version\n", "", _PG_TESTS),
        Mutant("put_keeps_old_data", _PG_SQL, "data = excluded.data, ", "", _PG_TESTS),
        Mutant("put_keeps_old_version", _PG_SQL, "version = excluded.version, ", "", _PG_TESTS),
        Mutant("put_keeps_tombstone_flag", _PG_SQL, "deleted = excluded.deleted, ", "",
               _PG_TESTS),
        Mutant("put_keeps_old_expiry", _PG_SQL, "expires_at = excluded.expires_at,", "",
               _PG_TESTS),
        Mutant("put_keeps_old_extra", _PG_SQL, "extra = excluded.extra, ", "", _PG_TESTS),
        Mutant("put_keeps_old_access", _PG_SQL,
               "access_count = excluded.access_count,\n    last_access = excluded.last_access,",
               "", _PG_TESTS),
        Mutant("purge_ignores_version", _PG_SQL,
               "AND (id, version) IN (SELECT * FROM unnest(CAST(:ids AS text[]), "
               "CAST(:versions AS text[])))",
               "AND id IN (SELECT * FROM unnest(CAST(:ids AS text[])))", _PG_TESTS),
        Mutant("purge_any_tenant", _PG_SQL, "WHERE tenant = :tenant\n  AND (id, version)",
               "WHERE (id, version)", _PG_TESTS),
    ],
}


def run_one(mutant: Mutant) -> str:
    """'killed', 'survived' or 'stale' (the original text is no longer in the file)."""
    src = WORK / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(ROOT / "src", src)
    target = WORK / mutant.path
    text = target.read_text()
    if text.count(mutant.old) != 1:
        return "stale"
    target.write_text(text.replace(mutant.old, mutant.new))
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=300, check=False)
    return "survived" if proc.returncode == 0 else "killed"


def run(groups: list[str]) -> dict[str, dict[str, str]]:
    WORK.mkdir(parents=True, exist_ok=True)
    results = load()
    for group in groups:
        results[group] = {}
        for mutant in MUTANTS[group]:
            results[group][mutant.name] = status = run_one(mutant)
            print(f"  {group}.{mutant.name}: {status}", flush=True)
    (WORK / "results.txt").write_text(
        "".join(f"{g} {m} {s}\n" for g, ms in results.items() for m, s in ms.items())
    )
    return results


def load() -> dict[str, dict[str, str]]:
    results: dict[str, dict[str, str]] = {}
    path = WORK / "results.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            group, name, status = line.split()
            results.setdefault(group, {})[name] = status
    return results


def main() -> int:
    groups = sys.argv[1:] or list(MUTANTS)
    results = run(groups)
    survived = [m for g in groups for m, s in results[g].items() if s != "killed"]
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
