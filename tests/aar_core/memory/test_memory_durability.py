"""SQLite durability: every write acknowledged before a SIGKILL is there after reopening.

The harness also proves it can fail: the same kill run against a store variant that
acknowledges a write before its COMMIT must report acknowledged writes as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from deep_tree_echo.aar_core.memory import MemoryManager, SQLiteStore

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from deep_tree_echo.aar_core.memory import MemoryManager, SQLiteStore

    class AckBeforeCommit(SQLiteStore):
        # Deliberately broken: says a write is stored, then commits it in the background.

        def __init__(self, path):
            super().__init__(path)
            self.background = set()

        async def put_if_newer(self, record, **options):
            task = asyncio.ensure_future(SQLiteStore.put_if_newer(self, record, **options))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
            return True

    async def writer(m, w):
        i = 0
        while True:
            memory_id = f"w{w}-{i}"
            await m.store_memory(memory_id, {"content": f"memory {i} of writer {w}"})
            sys.stdout.write(memory_id + "\\n")  # printed only once acknowledged
            sys.stdout.flush()
            i += 1

    async def main():
        store_class = AckBeforeCommit if sys.argv[2] == "broken" else SQLiteStore
        m = MemoryManager(store_class(sys.argv[1]), node_id="child")
        await m.initialize()
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        await asyncio.gather(*(writer(m, w) for w in range(8)))

    asyncio.run(main())
    """
)


async def kill_after_acks(
    tmp_path: Path, variant: str, acks: int = 300
) -> tuple[list[str], set[str]]:
    """Run the writer child with store ``variant``, SIGKILL it after ``acks`` acknowledged
    writes; return the acknowledged ids and the live ids found in the file afterwards."""
    db = tmp_path / f"{variant}.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(db),
        variant,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    acked: list[str] = []
    try:
        assert await child.stdout.readline() == b"ready\n"
        while len(acked) < acks:  # the child's acks are the events we wait on
            line = await child.stdout.readline()
            assert line, f"child died early: {(await child.stderr.read()).decode()}"
            acked.append(line.decode().rstrip("\n"))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        rest_bytes, _ = await child.communicate()
    assert child.returncode == -signal.SIGKILL
    rest = rest_bytes.decode()
    # Lines written before the kill are acknowledged writes too; a torn last line is not.
    acked += [line for line in rest.split("\n")[:-1] if line]

    store = SQLiteStore(db)
    present = {r.id for r in [r async for r in store.scan()] if not r.deleted}
    await store.close()
    return acked, present


@pytest.mark.slow
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    acked, present = await kill_after_acks(tmp_path, "sqlite")
    missing = [memory_id for memory_id in acked if memory_id not in present]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    assert len(acked) >= 300
    db = tmp_path / "sqlite.db"

    manager = MemoryManager(SQLiteStore(db))
    await manager.initialize()
    assert await manager.count() == len(present)
    assert await manager.retrieve_memory(acked[-1]) is not None
    await manager.close()


@pytest.mark.slow
async def test_the_kill_harness_catches_a_store_that_acks_before_commit(tmp_path: Path) -> None:
    acked, present = await kill_after_acks(tmp_path, "broken")
    missing = [memory_id for memory_id in acked if memory_id not in present]
    # The same check as above fails for this store: acknowledged writes are gone.
    assert missing, "the harness did not notice writes acknowledged before COMMIT"
    assert len(acked) >= 300
    assert set(acked) >= present  # nothing appeared that was not acknowledged
