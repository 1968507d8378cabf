"""uvicorn as ``serve`` runs it: one server class for one process and for each worker.

:class:`ServiceServer` ends the console's event streams as shutdown begins (uvicorn waits for
open responses, and an event stream never finishes by itself) and, in a worker of
``serve --workers N``, accepts through a :class:`~._accept.BalancedListener` so the workers
hold even shares of the connections. :func:`run_workers` is uvicorn's supervisor with worker
processes that run this class (uvicorn's own would run a plain ``uvicorn.Server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

from deep_tree_echo.server._accept import BOARD_ENV, BalancedListener, WorkerBoard
from deep_tree_echo.server._event_feed import close_event_streams


def _starlette_app(app: Any) -> Any:
    """The app under uvicorn's wrappers (each keeps the next in ``.app``)."""
    while app is not None and not hasattr(app, "state"):
        app = getattr(app, "app", None)
    return app


class ServiceServer(uvicorn.Server):
    """uvicorn's server, with the two changes the module's doc describes."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.loaded_app if self.config.loaded else self.config.app
        close_event_streams(_starlette_app(app))
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        board = os.environ.get(BOARD_ENV)
        if sockets is None or not board:
            await super().startup(sockets)
            return
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        from deep_tree_echo.server.workers import worker_settings

        config, state = self.config, self.server_state

        def create_protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=self.lifespan.state,
            )

        listeners = [
            BalancedListener(
                sock, create_protocol, WorkerBoard(Path(board)), lambda: len(state.connections),
                wait=worker_settings().worker_accept_wait, ssl_context=config.ssl,
                backlog=config.backlog,
            )
            for sock in sockets
        ]
        for listener in listeners:
            listener.start()
        self.servers = listeners  # type: ignore[assignment]  # shutdown() only calls close()
        self.started = True


class _WorkerProcess(multiprocess.Process):
    """A supervised worker that runs :class:`ServiceServer`."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = ServiceServer(config=self.config)
        return self._server


@contextlib.contextmanager
def _board(wait: float) -> Iterator[None]:
    """A worker board for the workers (:data:`BOARD_ENV`) while open; none when ``wait`` is 0."""
    if wait <= 0:
        yield
        return
    shm = Path("/dev/shm")
    fd, name = tempfile.mkstemp(prefix="dte-workers-", dir=shm if shm.is_dir() else None)
    os.close(fd)
    path = Path(name)
    WorkerBoard.create(path).close()
    os.environ[BOARD_ENV] = name
    try:
        yield
    finally:
        os.environ.pop(BOARD_ENV, None)
        path.unlink(missing_ok=True)


def run_workers(config: uvicorn.Config, accept_wait: float) -> multiprocess.Multiprocess:
    """Run ``config.workers`` supervised :class:`ServiceServer` processes on one socket until
    the service stops; returns the supervisor (its ``processes`` say how they ended).

    uvicorn's supervisor creates its workers from the module's ``Process`` class, so that
    name points at :class:`_WorkerProcess` while the supervisor runs (in this process only:
    the workers unpickle their class by its own name).
    """
    supervisor = multiprocess.Multiprocess(config, sockets=[config.bind_socket()])
    original = multiprocess.Process
    multiprocess.Process = _WorkerProcess  # type: ignore[misc]
    try:
        with _board(accept_wait):
            supervisor.run()
    finally:
        multiprocess.Process = original  # type: ignore[misc]
    return supervisor
