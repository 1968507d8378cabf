"""uvicorn as ``serve`` runs it: one server class for one process and for each worker.

:class:`ServiceServer` ends the console's event streams as shutdown begins: uvicorn waits for
open responses, and an event stream never finishes by itself. :func:`run_workers` is uvicorn's
supervisor with worker processes that run this class (uvicorn's own run a plain
``uvicorn.Server``, and a worker's shutdown then waited out its graceful timeout).
"""

from __future__ import annotations

from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess

from deep_tree_echo.server._event_feed import close_event_streams


def _starlette_app(app: Any) -> Any:
    """The app under uvicorn's wrappers (each keeps the next in ``.app``)."""
    while app is not None and not hasattr(app, "state"):
        app = getattr(app, "app", None)
    return app


class ServiceServer(uvicorn.Server):
    """uvicorn's server; it closes the app's event feed when told to exit."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.loaded_app if self.config.loaded else self.config.app
        close_event_streams(_starlette_app(app))
        super().handle_exit(sig, frame)


class _WorkerProcess(multiprocess.Process):
    """A supervised worker that runs :class:`ServiceServer`."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = ServiceServer(config=self.config)
        return self._server


def run_workers(config: uvicorn.Config) -> multiprocess.Multiprocess:
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
        supervisor.run()
    finally:
        multiprocess.Process = original  # type: ignore[misc]
    return supervisor
