"""Waiting, without a timed guess, until a writer is blocked on a file lock a test holds."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


def _someone_waits(mark: str) -> bool:
    lines = Path("/proc/locks").read_text(encoding="ascii").splitlines()
    return any("->" in line and mark in line for line in lines)


async def blocked_on(path: str | os.PathLike[str]) -> None:
    """Return once some process or thread waits for the ``flock`` of ``path``: the kernel
    lists each blocked request in ``/proc/locks`` as ``N: -> FLOCK ... <dev>:<inode> ...``.
    Gives up after 10 s (``TimeoutError``: nobody came to wait)."""
    mark = f":{os.stat(path).st_ino} "
    async with asyncio.timeout(10.0):
        # the kernel's lock table has no notification: poll it (nothing else to await)
        while not _someone_waits(mark):  # noqa: ASYNC110
            await asyncio.sleep(0.002)
