"""Even shares of one listening socket between worker processes.

Workers of ``serve --workers N`` accept from one shared socket. With the event loop's own
accept, whichever worker wakes first takes every connection waiting: a client that opens 32
keep-alive connections at once gets them split 16/16 in one run and 23/9 in the next, and the
busier worker saturates while the other idles. Here each worker publishes how many connections
it holds on a :class:`WorkerBoard` (a small file every worker maps) and a :class:`BalancedListener`
takes a new connection only while it holds no more than every other live worker, or once it has
waited ``wait`` seconds (a busy or stuck sibling never leaves a client unanswered).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import socket
import ssl
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

#: Environment variable that gives the workers the board's path.
BOARD_ENV: Final = "DTE_WORKER_BOARD"
_SLOT: Final = struct.Struct("=qq")  # pid, open connections
_SLOTS: Final = 256  # more than the 64 workers allowed, so restarts find free slots


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkerBoard:
    """Open connections per worker, one ``(pid, count)`` slot each, in a file all workers map.

    Reads and writes are plain aligned stores without a lock: a stale or torn count only
    changes which worker takes the next connection, never whether it is taken.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, _SLOT.size * _SLOTS)
        self._slot: int | None = None
        self._pid = os.getpid()

    @classmethod
    def create(cls, path: Path) -> WorkerBoard:
        """A new, empty board at ``path`` (replacing any file there)."""
        path.write_bytes(bytes(_SLOT.size * _SLOTS))
        return cls(path)

    def claim(self) -> int:
        """Take a free slot for this process (an empty one, or one whose process is gone);
        returns its number."""
        with self._locked():
            for slot in range(_SLOTS):
                pid, _ = _SLOT.unpack_from(self._map, slot * _SLOT.size)
                if pid == 0 or (pid != self._pid and not _alive(pid)):
                    _SLOT.pack_into(self._map, slot * _SLOT.size, self._pid, 0)
                    self._slot = slot
                    return slot
        raise RuntimeError(f"no free slot on the worker board {self.path}")

    def publish(self, connections: int) -> None:
        """Record how many connections this process holds (after :meth:`claim`)."""
        if self._slot is not None:
            _SLOT.pack_into(self._map, self._slot * _SLOT.size, self._pid, connections)

    def fewest_elsewhere(self) -> int | None:
        """The fewest connections any other live worker holds (None when there is none)."""
        fewest: int | None = None
        for slot in range(_SLOTS):
            pid, count = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if pid in (0, self._pid) or (fewest is not None and count >= fewest):
                continue
            if _alive(pid):
                fewest = count
        return fewest

    def holders(self) -> dict[int, int]:
        """Connections held, by the pid of each live worker on the board (this one included)."""
        held: dict[int, int] = {}
        for slot in range(_SLOTS):
            pid, count = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if pid != 0 and _alive(pid):
                held[pid] = count
        return held

    def release(self) -> None:
        """Free this process's slot."""
        if self._slot is not None:
            with self._locked():
                _SLOT.pack_into(self._map, self._slot * _SLOT.size, 0, 0)
            self._slot = None

    def close(self) -> None:
        self.release()
        self._map.close()
        os.close(self._fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class BalancedListener:
    """Accept connections from a socket shared by several workers, one at a time, taking each
    only while this worker holds no more connections than any other (see the module's doc).

    ``connections`` says how many this worker holds now; each accepted socket is handed to
    ``protocol_factory`` through ``loop.connect_accepted_socket``. ``close()`` stops accepting.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        board: WorkerBoard,
        connections: Callable[[], int],
        *,
        wait: float = 0.01,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 2048,
    ) -> None:
        self.sock = sock
        self.board = board
        self.wait = wait
        self._factory = protocol_factory
        self._connections = connections
        self._ssl = ssl_context
        self._backlog = backlog
        self._task: asyncio.Task[None] | None = None
        self.accepted = 0
        #: Set while the listener waits for a sibling to take the next connection.
        self.waiting = asyncio.Event()

    def start(self) -> None:
        self.sock.listen(self._backlog)
        self.sock.setblocking(False)
        self.board.claim()
        self.board.publish(self._connections())
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="accept")

    def close(self) -> None:
        """Stop accepting (open connections go on) and free the board's slot."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.board.release()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._readable(loop)
            await self._my_turn(loop)
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another worker took it
            except OSError as exc:  # out of file descriptors, and the like: back off
                logger.error("accept failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            self.accepted += 1
            self.board.publish(self._connections() + 1)
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl)
            except Exception as exc:  # a TLS handshake that failed, a peer gone already
                logger.debug("connection dropped at accept: %s", exc)
                conn.close()

    async def _readable(self, loop: asyncio.AbstractEventLoop) -> None:
        ready = loop.create_future()
        fd = self.sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)

    async def _my_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """Return once this worker may take a connection: it holds no more than any other live
        worker, or it has waited ``wait`` seconds for them."""
        deadline = loop.time() + self.wait
        try:
            while True:
                mine = self._connections()
                self.board.publish(mine)
                fewest = self.board.fewest_elsewhere()
                if fewest is None or mine <= fewest or loop.time() >= deadline:
                    return
                self.waiting.set()
                await asyncio.sleep(min(0.001, self.wait))
        finally:
            self.waiting.clear()
