"""Fixtures for the server tests (helpers live in ``_server_helpers``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from _server_helpers import AppClient, make_settings, running_app

from deep_tree_echo.server.app import create_app


@pytest.fixture
def app_client() -> AppClient:
    """``async with app_client(**settings) as client`` — an in-memory app with lifespan run."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return running_app(create_app(make_settings(**overrides)))

    return factory


@pytest.fixture
async def client(app_client: AppClient) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


@pytest.fixture
async def sqlite_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(test_mode=False, data_dir=tmp_path / "data")
    assert settings.store_kind == "sqlite"
    async with running_app(create_app(settings)) as c:
        yield c
