"""Helpers for the server tests: settings, an app with its lifespan run, a live uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from deep_tree_echo.config import EchoSettings
from deep_tree_echo.testing._process import free_port


def make_settings(**overrides: Any) -> EchoSettings:
    values: dict[str, Any] = {"test_mode": True, "rate_limit_requests": 0}
    values.update(overrides)
    return EchoSettings.coerce(values)


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan (ASGITransport does not) and yield a client bound to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


class _Server(uvicorn.Server):
    """uvicorn.Server that sets an event once it listens (no polling for readiness)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns signals
        yield


@asynccontextmanager
async def live_server(app: FastAPI, **config: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in this event loop; yields its URL."""
    port = free_port()
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        await task
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
