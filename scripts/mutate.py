"""Run mutmut on the critical modules, one module at a time, each against its own tests.

Usage: python scripts/mutate.py [MODULE ...] [--budget SECONDS] [--total SECONDS] [--children N]

Each module gets a scratch project in .mutmut/<module>/ (a generated pyproject.toml whose
[tool.mutmut] names only that file and only its test files, plus symlinks to src/ and tests/),
so mutmut's stats pass and every mutant run touch only the relevant tests. mutmut's own
per-mutant CPU timeout applies; --budget bounds each module's whole run in wall-clock time and
--total the whole command (default 300 s per module, 3600 s in all, plus the hand-written
mutants: a few minutes).
Results stay in .mutmut/<module>/mutants/ and are summarised by scripts/mutation_report.py.
Code mutmut cannot reach (decorated routes, Lua scripts) has hand-written mutants in
scripts/mutation_manual.py: the groups ``replication``, ``store_redis_lua`` and
``store_postgres_sql``.
Not part of `make test`: run it with `make mutate`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutmut"
PKG = "src/deep_tree_echo"


@dataclass(frozen=True)
class Target:
    """One critical module: the file mutmut mutates, the functions to try, the tests to run."""

    source: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()  # empty: every function in the file

    @property
    def dotted(self) -> str:
        return self.source.removeprefix("src/").removesuffix(".py").replace("/", ".")

    def mutant_patterns(self) -> list[str]:
        if not self.functions:
            return [f"{self.dotted}.*"]
        return [f"{self.dotted}.*{name}__mutmut_*" for name in self.functions]


_MEM = "tests/aar_core/memory"
_RES = "tests/resilience"
_SRV = "tests/server"
_BREAKER_TESTS = (
    f"{_RES}/test_circuit_breaker.py",
    f"{_RES}/test_breaker_edges.py",
    f"{_RES}/test_breaker_trials.py",
    f"{_RES}/test_shared_circuit_state.py",
    f"{_RES}/test_shared_circuit_edges.py",
)
_STORE_TESTS = (
    f"{_MEM}/test_memory_stores.py",
    f"{_MEM}/test_memory_purge.py",
    f"{_MEM}/test_version_order.py",
    f"{_MEM}/test_memory_tenants.py",
)

TARGETS: dict[str, Target] = {
    "circuit_breaker": Target(f"{PKG}/resilience/circuit_breaker.py", _BREAKER_TESTS),
    "circuit_state": Target(
        f"{PKG}/resilience/_circuit_state.py",
        (f"{_RES}/test_circuit_breaker.py", f"{_RES}/test_circuit_parts.py"),
    ),
    "shared_circuit": Target(
        f"{PKG}/resilience/_shared_circuit.py",
        (
            f"{_RES}/test_shared_circuit_state.py",
            f"{_RES}/test_shared_circuit_edges.py",
            f"{_RES}/test_breaker_edges.py",
        ),
    ),
    "rate_limiter": Target(
        f"{PKG}/resilience/rate_limiter.py",
        (f"{_RES}/test_rate_limiter.py", f"{_RES}/test_limiter_edges.py"),
    ),
    "redis_backends": Target(
        f"{PKG}/resilience/redis_backends.py",
        (
            f"{_RES}/test_shared_circuit_state.py",
            f"{_RES}/test_rate_limiter.py",
            f"{_RES}/test_limiter_edges.py",
            f"{_RES}/test_breaker_edges.py",
            f"{_RES}/test_redis_backends_edges.py",
        ),
    ),
    "record": Target(
        f"{PKG}/aar_core/memory/record.py",
        (
            f"{_MEM}/test_record_parsing.py",
            f"{_MEM}/test_memory_stores.py",
            f"{_MEM}/test_memory_hlc.py",
            f"{_MEM}/test_version_order.py",
            f"{_SRV}/test_replication_routes.py",
        ),
    ),
    "hlc": Target(
        f"{PKG}/aar_core/memory/hlc.py",
        (
            f"{_MEM}/test_memory_hlc.py",
            f"{_MEM}/test_hlc_drift.py",
            f"{_MEM}/test_version_order.py",
        ),
    ),
    "store_inmemory": Target(
        f"{PKG}/aar_core/memory/_inmemory.py",
        _STORE_TESTS,
        ("put_if_newer", "purge"),
    ),
    "postcache": Target(
        f"{PKG}/aar_core/memory/_postcache.py",
        (f"{_MEM}/test_postcache_admission.py", f"{_MEM}/test_sqlite_postcache.py"),
    ),
    "classwalk": Target(
        f"{PKG}/aar_core/memory/_classwalk.py",
        (f"{_MEM}/test_memory_search.py", f"{_MEM}/test_sqlite_postcache.py"),
    ),
    "manager_writes": Target(
        f"{PKG}/aar_core/memory/manager.py",
        (f"{_MEM}/test_memory_manager.py", f"{_MEM}/test_memory_tenants.py",
         f"{_MEM}/test_sqlite_change_log.py"),
        ("_validated", "_record", "_upsert", "_add", "_written", "_delete", "_put", "_change",
         "_apply_remote"),
    ),
    "outbox_sqlite": Target(
        f"{PKG}/server/outbox/sqlite.py",
        (f"{_SRV}/test_event_outbox.py",),
        ("_insert", "read", "head", "purge", "purged_through", "insert_on", "shares_file_with"),
    ),
    "reply": Target(
        f"{PKG}/aar_core/_reply.py",
        (f"{_SRV}/test_reply_with_memory.py",),
        ("announce", "take", "stored", "confirm", "close"),
    ),
    "relay_log": Target(
        f"{PKG}/server/outbox/relay.py",
        (f"{_SRV}/test_event_outbox.py", f"{_SRV}/test_reply_with_memory.py",
         f"{_SRV}/test_relay_peer_events.py"),
        ("log_changes_of", "stop", "_store"),
    ),
    "events": Target(
        f"{PKG}/aar_core/events.py",
        ("tests/aar_core/test_events.py", "tests/aar_core/test_events_edges.py"),
    ),
    "timeref": Target(
        f"{PKG}/aar_core/timeref.py",
        ("tests/aar_core/test_timeref.py", "tests/aar_core/test_timeref_table.py",
         "tests/aar_core/test_dialogue.py",
         "tests/aar_core/test_dialogue_durations.py"),
    ),
    "ranking": Target(
        f"{PKG}/aar_core/memory/ranking.py",
        (f"{_MEM}/test_memory_search.py", f"{_MEM}/test_ranking_units.py"),
    ),
    "resilient_api": Target(
        f"{PKG}/resilience/api.py",
        (f"{_RES}/test_resilient_api.py", f"{_RES}/test_resilient_api_edges.py"),
    ),
    "api_gateway": Target(
        f"{PKG}/integration/gateway.py",
        ("tests/integration/test_api_gateway.py",),
    ),
    "synchronization": Target(
        f"{PKG}/integration/synchronization.py",
        ("tests/integration/test_synchronization.py",
         "tests/integration/test_synchronization_policies.py"),
    ),
    "event_driven": Target(
        f"{PKG}/integration/event_driven.py",
        ("tests/integration/test_event_driven.py",),
    ),
    "adapters": Target(
        f"{PKG}/integration/adapters.py",
        ("tests/integration/test_adapters.py",),
    ),
    "ws_route": Target(
        f"{PKG}/server/routes/ws.py",
        (f"{_SRV}/test_ws_protocol.py", f"{_SRV}/test_websocket_fanout.py",
         f"{_SRV}/test_event_outbox.py", f"{_SRV}/test_tenancy.py"),
    ),
    "store_sqlite": Target(
        f"{PKG}/aar_core/memory/sqlite.py",
        (*_STORE_TESTS, f"{_MEM}/test_sqlite_commit.py", f"{_MEM}/test_sqlite_change_log.py",
         f"{_MEM}/test_sqlite_batch.py", f"{_MEM}/test_sqlite_sync.py",
         f"{_MEM}/test_sqlite_access_reads.py", f"{_MEM}/test_sqlite_writer.py",
         f"{_SRV}/test_reply_with_memory.py"),
        ("put_if_newer", "purge", "put_logged", "_put", "_read_records", "get",
         "record_access"),
    ),
    "sqlite_writer": Target(
        f"{PKG}/aar_core/memory/_sqlite_writer.py",
        (f"{_MEM}/test_sqlite_writer.py", f"{_MEM}/test_sqlite_commit.py",
         f"{_MEM}/test_sqlite_change_log.py", f"{_MEM}/test_sqlite_batch.py",
         f"{_MEM}/test_sqlite_sync.py", f"{_MEM}/test_sqlite_access_reads.py",
         f"{_MEM}/test_memory_stores.py"),
    ),
    "sqlite_batch": Target(
        f"{PKG}/aar_core/memory/_sqlite_batch.py",
        (f"{_MEM}/test_sqlite_batch.py", f"{_MEM}/test_sqlite_commit.py",
         f"{_MEM}/test_sqlite_change_log.py"),
    ),
    "sqlite_checkpoint": Target(
        f"{PKG}/aar_core/memory/_sqlite_checkpoint.py",
        (f"{_MEM}/test_sqlite_checkpoint.py",),
    ),
    "sqlite_access": Target(
        f"{PKG}/aar_core/memory/_sqlite_access.py",
        (f"{_MEM}/test_sqlite_access_reads.py", f"{_MEM}/test_memory_stores.py",
         f"{_MEM}/test_sqlite_change_log.py", f"{_MEM}/test_memory_purge.py",
         f"{_MEM}/test_sqlite_writer.py"),
    ),
    "sqlite_sync": Target(
        f"{PKG}/aar_core/memory/_sqlite_sync.py",
        (f"{_MEM}/test_sqlite_sync.py", f"{_MEM}/test_sqlite_writelock.py"),
    ),
    "store_redis": Target(
        f"{PKG}/aar_core/memory/redis_store.py",
        (
            f"{_MEM}/test_memory_stores.py",
            f"{_MEM}/test_memory_purge.py",
            f"{_MEM}/test_memory_redis.py",
            f"{_MEM}/test_version_order.py",
            f"{_MEM}/test_memory_tenants.py",
            f"{_MEM}/test_memory_store_search.py",
        ),
        ("put_if_newer", "purge"),
    ),
    "store_postgres": Target(
        f"{PKG}/aar_core/memory/postgres_store.py",
        (*_STORE_TESTS, f"{_MEM}/test_memory_store_search.py", f"{_MEM}/test_store_refusals.py",
         f"{_MEM}/test_memory_postgres_topk.py", f"{_MEM}/test_postgres_deadlock.py",
         f"{_MEM}/test_postgres_bulk_lock.py"),
        ("put_if_newer", "purge", "write_params", "put_many", "_fetch", "_run_once",
         "_deadlocked"),
    ),
    "middleware": Target(
        f"{PKG}/server/middleware.py",
        (
            f"{_SRV}/test_http_guards.py",
            f"{_SRV}/test_auth_and_limits.py",
            f"{_SRV}/test_principals.py",
            f"{_SRV}/test_auth_scopes.py",
            f"{_SRV}/test_schema_and_errors.py",
            f"{_SRV}/test_middleware_edges.py",
        ),
    ),
    "principals": Target(
        f"{PKG}/server/principals.py",
        (f"{_SRV}/test_keyring.py", f"{_SRV}/test_principals.py"),
        ("key_digest", "key_id", "parse_key_entry", "_file_entry", "load_keys_file", "_add",
         "from_settings", "clients_configured", "cluster_configured", "match"),
    ),
}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _pyproject(target: Target) -> str:
    """The scratch pyproject: the project's pytest settings plus a one-module mutmut config."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pytest_ini = project["tool"]["pytest"]["ini_options"]
    pytest_ini = {k: v for k, v in pytest_ini.items() if k != "testpaths"}
    mutmut = {
        "source_paths": ["src"],
        "only_mutate": [target.source],
        "pytest_add_cli_args_test_selection": [t for t in target.tests if (ROOT / t).exists()],
        "pytest_add_cli_args": ["-p", "no:cacheprovider"],
        "timeout_multiplier": 5.0,
        "timeout_constant": 2.0,
        "use_git_change_detection": False,
        "track_dependencies": False,
    }
    lines = ["[tool.pytest.ini_options]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in pytest_ini.items()]
    lines += ["", "[tool.mutmut]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in mutmut.items()]
    return "\n".join(lines) + "\n"


def prepare(name: str, target: Target, fresh: bool) -> Path:
    work = WORK / name
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "pyproject.toml").write_text(_pyproject(target))
    for link in ("src", "tests"):
        path = work / link
        if not path.is_symlink():
            path.symlink_to(ROOT / link, target_is_directory=True)
    return work


def run(name: str, target: Target, budget: float, children: int, fresh: bool) -> int:
    work = prepare(name, target, fresh)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children)]
    if target.functions:  # otherwise no names: mutmut then resumes a kept run where it stopped
        cmd += target.mutant_patterns()
    print(f"== {name}: {target.source} against {', '.join(target.tests)}", flush=True)
    log = work / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            print(f"   budget of {budget:.0f}s spent: partial results kept", flush=True)
            code = 124
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help="default: all")
    parser.add_argument("--budget", type=float, default=300.0, help="wall-clock seconds per module")
    parser.add_argument("--total", type=float, default=3600.0,
                        help="wall-clock seconds for the whole run (modules left get none)")
    parser.add_argument("--children", type=int, default=2, help="parallel mutant workers")
    parser.add_argument("--keep", action="store_true",
                        help="resume: keep earlier results and run only the mutants not yet run")
    args = parser.parse_args()
    from mutation_manual import MUTANTS
    from mutation_manual import run as run_manual
    from mutation_report import report

    names = args.modules or [*TARGETS, *MUTANTS]
    unknown = [n for n in names if n not in TARGETS and n not in MUTANTS]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join([*TARGETS, *MUTANTS])}")
    deadline = time.monotonic() + args.total
    for name in names:
        if name in TARGETS:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"== {name}: skipped, the total budget of {args.total:.0f}s is spent",
                      flush=True)
                continue
            budget = min(args.budget, left)
            run(name, TARGETS[name], budget, args.children, fresh=not args.keep)
    manual = [n for n in names if n in MUTANTS]
    if manual:
        print(f"== hand-written mutants: {', '.join(manual)}", flush=True)
        run_manual(manual)
    return report(names)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
