"""A real ``deep-tree-echo serve`` process on a free loopback port, for end-to-end tests.

Readiness is uvicorn's ``Uvicorn running on`` line, read from the process output; with
``workers=N`` it is the N workers' ``deep-tree-echo worker PID ready`` lines.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from subprocess import Popen
from types import TracebackType

from deep_tree_echo.testing._process import ManagedProcess, free_port, start_process

READY_LINE = r"Uvicorn running on"
WORKER_READY_LINE = r"deep-tree-echo worker (\d+) ready"


class EchoServer:
    """One ``deep-tree-echo serve`` process: ``.url``, ``.port``, ``.data_dir``, ``.process``.

    :meth:`kill` crashes it (SIGKILL); :meth:`restart` starts it again on the same port and
    data directory, so tests can check what survives a crash or a restart.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        workers: int = 1,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.workers = workers
        self.host = host
        self.port = port or free_port(host)
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        self.timeout = timeout
        self._managed: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base WebSocket URL, e.g. ``ws://127.0.0.1:54321``."""
        return f"ws://{self.host}:{self.port}"

    @property
    def command(self) -> list[str]:
        """The command line the server runs with."""
        return [
            sys.executable, "-m", "deep_tree_echo", "serve",
            "--host", self.host, "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            *(["--workers", str(self.workers)] if self.workers > 1 else []), *self.args,
        ]

    @property
    def managed(self) -> ManagedProcess:
        """The running process and its recent output."""
        if self._managed is None:
            raise RuntimeError("the server was not started")
        return self._managed

    @property
    def process(self) -> Popen[str]:
        """The ``subprocess.Popen`` of the server."""
        return self.managed.proc

    @property
    def running(self) -> bool:
        return self._managed is not None and self._managed.proc.poll() is None

    def output(self) -> str:
        """The last lines the server printed (useful in failure messages)."""
        return self._managed.output() if self._managed is not None else ""

    def start(self) -> EchoServer:
        """Start the process and wait for its ready line (raises ``ServerStartError``)."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.workers > 1:
            self._managed = start_process(self.command, WORKER_READY_LINE, timeout=self.timeout,
                                          env=env, ready_count=self.workers)
        else:
            self._managed = start_process(self.command, READY_LINE, timeout=self.timeout, env=env)
        return self

    @property
    def worker_pids(self) -> list[int]:
        """Pids of the worker processes that announced themselves at start (``workers > 1``)."""
        found = (re.search(WORKER_READY_LINE, line) for line in self.managed.ready_lines)
        return [int(m[1]) for m in found if m is not None]

    def stop(self) -> None:
        """Graceful stop (SIGTERM, SIGKILL after a timeout)."""
        if self._managed is not None:
            self._managed.stop()

    def kill(self) -> None:
        """SIGKILL the process, as a crash would."""
        if self._managed is not None:
            self._managed.kill()

    def restart(self) -> EchoServer:
        """Stop (if running) and start again on the same port and data directory."""
        self.stop()
        return self.start()

    def __enter__(self) -> EchoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EchoServer {self.url} {state} data_dir={str(self.data_dir)!r}>"


__all__ = ["READY_LINE", "WORKER_READY_LINE", "EchoServer"]
