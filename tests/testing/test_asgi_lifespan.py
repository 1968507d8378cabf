"""LifespanManager: the ASGI lifespan protocol for in-process clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from deep_tree_echo.testing import LifespanError, LifespanManager


def make_app(events: list[str], *, fail_startup: bool = False) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        if fail_startup:
            raise RuntimeError("database unreachable")
        yield {"db": "connected"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/db")
    async def db(request: Request) -> dict[str, str]:
        return {"db": request.state.db}

    return app


async def test_startup_state_and_shutdown() -> None:
    events: list[str] = []
    async with LifespanManager(make_app(events)) as manager:
        assert events == ["startup"]
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/db")).json() == {"db": "connected"}
    assert events == ["startup", "shutdown"]


async def test_startup_failure_is_raised_with_the_apps_reason() -> None:
    events: list[str] = []
    with pytest.raises(LifespanError, match="database unreachable"):
        async with LifespanManager(make_app(events, fail_startup=True)):
            pytest.fail("the body must not run")
    assert events == ["startup"]


async def test_apps_without_lifespan_support_still_serve() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "no lifespan here"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain"})

    async with LifespanManager(app) as manager:
        assert manager.supported is False
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/")).text == "plain"
