"""Run an ASGI application's lifespan in-process, for clients on ``httpx.ASGITransport``.

``ASGITransport`` sends HTTP scopes only; :class:`LifespanManager` drives the lifespan
protocol (startup before the first request, shutdown afterwards) and hands the state the
app's lifespan yielded to every request scope, as uvicorn does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any

from deep_tree_echo.testing.errors import LifespanError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LifespanManager:
    """``async with LifespanManager(app) as manager:`` runs startup, then shutdown on exit.

    ``manager.app`` is the app to serve requests with: it adds the lifespan state to each
    request scope.
    """

    def __init__(self, app: ASGIApp, *, timeout: float = 30.0) -> None:
        self._app = app
        self.timeout = timeout
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._failure: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._answered = False
        self.supported = True

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The wrapped application, with a copy of the lifespan state in each scope."""
        if scope["type"] in ("http", "websocket") and self.state:
            scope = {**scope, "state": {**self.state, **scope.get("state", {})}}
        await self._app(scope, receive, send)

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        self._answered = True
        if kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self._failure = str(message.get("message", "")) or kind
        if kind.startswith("lifespan.startup."):
            self._started.set()
        elif kind.startswith("lifespan.shutdown."):
            self._stopped.set()

    async def _run(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                        "state": self.state}
        try:
            await self._app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._answered:
                # raising on the lifespan scope before answering means "not supported":
                # like uvicorn, carry on without a lifespan
                self.supported = False
            elif self._failure is None and not self._stopped.is_set():
                self._failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._started.set()
            self._stopped.set()

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the app's answer."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        async with asyncio.timeout(self.timeout):
            await self._started.wait()
        if not self.supported:
            await self._finish()
            return
        if self._failure is not None:
            await self._finish()
            raise LifespanError(f"ASGI lifespan startup failed: {self._failure}")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app's answer."""
        if self._task is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        async with asyncio.timeout(self.timeout):
            await self._stopped.wait()
        await self._finish()
        if self._failure is not None:
            raise LifespanError(f"ASGI lifespan shutdown failed: {self._failure}")

    async def _finish(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> LifespanManager:
        await self.startup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()
