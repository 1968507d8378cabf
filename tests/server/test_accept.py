"""Even shares of a shared listening socket: the worker board and the balanced listener, with
real sockets, a real board file and real sibling processes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from deep_tree_echo.server._accept import BalancedListener, WorkerBoard

SIBLING = """
import sys
from pathlib import Path
from deep_tree_echo.server._accept import WorkerBoard
board = WorkerBoard(Path(sys.argv[1]))
print(board.claim(), flush=True)
for line in sys.stdin:
    board.publish(int(line))
    print("ok", flush=True)
"""


class Sibling:
    """Another worker process on the board: it claims a slot and publishes what it is told."""

    def __init__(self, board: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SIBLING, str(board)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.slot = int(self.proc.stdout.readline())

    def holds(self, connections: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{connections}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()  # reaped: no zombie left to look alive


@pytest.fixture
def board_path(tmp_path: Path) -> Path:
    path = tmp_path / "board"
    WorkerBoard.create(path).close()
    return path


@pytest.fixture
def siblings(board_path: Path) -> Iterator[list[Sibling]]:
    started: list[Sibling] = []
    yield started
    for sibling in started:
        sibling.kill()


def test_board_counts_live_workers_only(board_path: Path, siblings: list[Sibling]) -> None:
    board = WorkerBoard(board_path)
    assert board.claim() == 0
    board.publish(2)
    assert board.fewest_elsewhere() is None  # alone: its own slot does not count
    siblings.append(Sibling(board_path))
    assert siblings[0].slot == 1
    assert board.fewest_elsewhere() == 0
    siblings[0].holds(3)
    siblings.append(Sibling(board_path))
    siblings[1].holds(5)
    assert board.fewest_elsewhere() == 3
    assert board.holders() == {
        os.getpid(): 2, siblings[0].proc.pid: 3, siblings[1].proc.pid: 5,
    }
    siblings[0].kill()
    assert board.fewest_elsewhere() == 5  # a dead worker's count is ignored
    replacement = Sibling(board_path)
    siblings.append(replacement)
    assert replacement.slot == 1  # and its slot taken again
    assert board.fewest_elsewhere() == 0
    board.close()
    assert os.getpid() not in WorkerBoard(board_path).holders()  # closing frees it


def test_a_full_board_is_an_error(board_path: Path) -> None:
    boards = [WorkerBoard(board_path) for _ in range(256)]
    for board in boards:
        board.claim()  # one process may hold several slots (one per listening socket)
    with pytest.raises(RuntimeError, match="no free slot"):
        WorkerBoard(board_path).claim()


class Echo(asyncio.Protocol):
    """Answers each line with itself; counts open connections in ``open``."""

    open: set[Echo] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        Echo.open.add(self)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        Echo.open.discard(self)


@pytest.fixture
async def listening(board_path: Path) -> AsyncIterator[tuple[socket.socket, WorkerBoard]]:
    sock = socket.create_server(("127.0.0.1", 0))
    board = WorkerBoard(board_path)
    Echo.open = set()
    yield sock, board
    for echo in list(Echo.open):
        echo.transport.close()
    sock.close()
    board.close()


def listener(sock: socket.socket, board: WorkerBoard, wait: float) -> BalancedListener:
    return BalancedListener(sock, Echo, board, lambda: len(Echo.open), wait=wait)


Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def echoed(port: int, text: bytes = b"hi\n") -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(text)
    assert await reader.readline() == text
    return reader, writer


async def test_alone_it_takes_every_connection(
    listening: tuple[socket.socket, WorkerBoard],
) -> None:
    sock, board = listening
    balanced = listener(sock, board, wait=60)
    balanced.start()
    clients = [await echoed(sock.getsockname()[1]) for _ in range(4)]
    assert balanced.accepted == 4
    assert board.holders() == {os.getpid(): 4}  # published as it took the fourth
    for _, writer in clients:
        writer.close()
    balanced.close()
    assert board.holders() == {}


async def test_it_waits_for_a_sibling_holding_fewer(
    listening: tuple[socket.socket, WorkerBoard], board_path: Path, siblings: list[Sibling],
) -> None:
    sock, board = listening
    siblings.append(Sibling(board_path))  # holds 0 and never accepts
    balanced = listener(sock, board, wait=60)
    balanced.start()
    port = sock.getsockname()[1]
    first = await echoed(port)  # 0 <= 0: its turn
    connecting = asyncio.create_task(echoed(port))
    await balanced.waiting.wait()  # 1 > 0: the sibling's turn
    assert balanced.accepted == 1 and not connecting.done()
    siblings[0].holds(1)  # the sibling took one: even again
    second = await connecting
    assert balanced.accepted == 2
    assert not balanced.waiting.is_set()
    for _, writer in (first, second):
        writer.close()
    balanced.close()


async def test_a_sibling_that_never_accepts_only_delays_a_connection(
    listening: tuple[socket.socket, WorkerBoard], board_path: Path, siblings: list[Sibling],
) -> None:
    sock, board = listening
    siblings.append(Sibling(board_path))
    balanced = listener(sock, board, wait=0.05)
    balanced.start()
    port = sock.getsockname()[1]
    clients = [await echoed(port) for _ in range(3)]  # each after waiting for the sibling
    assert balanced.accepted == 3
    for _, writer in clients:
        writer.close()
    balanced.close()


async def test_without_waiting_it_never_defers(
    listening: tuple[socket.socket, WorkerBoard], board_path: Path, siblings: list[Sibling],
) -> None:
    sock, board = listening
    siblings.append(Sibling(board_path))
    balanced = listener(sock, board, wait=0)
    balanced.start()
    clients = [await echoed(sock.getsockname()[1]) for _ in range(3)]
    assert balanced.accepted == 3
    assert not balanced.waiting.is_set()
    for _, writer in clients:
        writer.close()
    balanced.close()
