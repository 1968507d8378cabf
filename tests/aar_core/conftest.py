"""Memory-test fixtures: a fresh PostgreSQL database per test on the session's real server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest


@pytest.fixture
async def postgres_db(postgres_url: str) -> AsyncIterator[str]:
    """URL of a new, empty database on the real PostgreSQL server, dropped after the test."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
