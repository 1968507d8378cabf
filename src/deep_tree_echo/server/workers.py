"""Several worker processes on one port: the app factory each worker imports.

``deep-tree-echo serve --workers N`` resolves the settings once in the parent, passes them to
the workers in the ``DTE_WORKER_SETTINGS`` environment variable (JSON) and lets uvicorn's
supervisor start N processes that share the listening socket and import
:func:`create_worker_app`. The parent holds the data-dir lock for the whole service; uvicorn
restarts a worker that dies, and a worker stops when its supervisor is gone (even killed with
SIGKILL, which leaves it no way to stop them). Every worker answers with an
``X-Echo-Worker: <pid>`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deep_tree_echo.config import EchoSettings

SETTINGS_ENV: Final = "DTE_WORKER_SETTINGS"
WORKER_HEADER: Final = "x-echo-worker"
#: Printed by each worker once its app has started (tests wait for N of these lines).
READY_MESSAGE: Final = "deep-tree-echo worker {pid} ready"

logger = logging.getLogger(__name__)


class WorkerHeaderMiddleware:
    """Add ``X-Echo-Worker: <pid>`` to every HTTP response and WebSocket handshake."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (WORKER_HEADER.encode(), str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


def worker_settings() -> EchoSettings:
    """The settings the parent passed down (else the ``DTE_*`` environment)."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        return EchoSettings()
    return EchoSettings.model_validate_json(text)


def worker_process_settings() -> EchoSettings:
    """This worker's settings (:func:`worker_settings`) with a node id of its own, and logging
    set up as the parent's (the app factory, ``server.app.create_worker_app``, uses them)."""
    settings = worker_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(levelname)-9s %(name)s: %(message)s")
    if settings.node_id is not None:
        # one clock per process: versions of two workers must never tie
        settings = settings.model_copy(update={"node_id": f"{settings.node_id}{_suffix()}"})
    return settings


def _suffix() -> str:
    return f"-w{os.getpid()}"


def service_node_id(node_id: str) -> str:
    """The id of the node this worker belongs to (its own id without the ``-w<pid>`` suffix).

    The NATS bridge speaks for the node: sibling workers ignore each other's messages, whose
    events already reach them through the shared outbox.
    """
    return node_id.removesuffix(_suffix())


def announce_ready() -> None:
    """Tell the parent's output that this worker serves (see :data:`READY_MESSAGE`).

    One ``write`` of the whole line: ``print`` writes the text and the newline separately, and
    workers starting together then interleave them on the shared pipe ("...readydeep-tree-echo
    worker 2 ready"), so a reader counting lines sees fewer workers than are ready.
    """
    sys.stderr.flush()
    os.write(sys.stderr.fileno(), (READY_MESSAGE.format(pid=os.getpid()) + "\n").encode())


@contextlib.asynccontextmanager
async def exit_with_supervisor() -> AsyncIterator[None]:
    """While open, stop this worker (SIGTERM to itself: a graceful shutdown) once its
    supervisor is gone. Orphaned workers would go on holding the port and serving a service
    nobody manages, and a restarted ``serve`` would find the port taken.

    The supervisor's pidfd becomes readable when it exits (Linux 5.3+); where there is none,
    nothing is watched.
    """
    parent = os.getppid()
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):  # no pidfd here: uvicorn's own supervision only
        logger.info("no pidfd: worker %d does not watch its supervisor", os.getpid())
        yield
        return
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    loop.add_reader(fd, gone.set)

    async def watch() -> None:
        await gone.wait()
        logger.warning("the supervisor (pid %d) is gone: worker %d stops", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)

    task = loop.create_task(watch(), name="supervisor-watch")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        loop.remove_reader(fd)
        os.close(fd)
