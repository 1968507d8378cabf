"""SQLite durability: every write acknowledged before a SIGKILL is there after reopening."""

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

    async def writer(m, w):
        i = 0
        while True:
            memory_id = f"w{w}-{i}"
            await m.store_memory(memory_id, {"content": f"memory {i} of writer {w}"})
            sys.stdout.write(memory_id + "\\n")  # printed only once acknowledged
            sys.stdout.flush()
            i += 1

    async def main():
        m = MemoryManager(SQLiteStore(sys.argv[1]), node_id="child")
        await m.initialize()
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        await asyncio.gather(*(writer(m, w) for w in range(8)))

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "durable.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(db),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    acked: list[str] = []
    try:
        assert await child.stdout.readline() == b"ready\n"
        while len(acked) < 300:  # the child's acks are the events we wait on
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
    missing = [memory_id for memory_id in acked if memory_id not in present]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    assert len(acked) >= 300

    manager = MemoryManager(SQLiteStore(db))
    await manager.initialize()
    assert await manager.count() == len(present)
    assert await manager.retrieve_memory(acked[-1]) is not None
    await manager.close()
