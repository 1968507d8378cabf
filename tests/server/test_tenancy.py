"""Tenants are a privacy boundary: same ids, different tenants, nothing shared.

Through HTTP (on every store kind), the WebSocket, ``POST /v1/process`` and the CLI. And the
memory scope inside a tenant: an answer draws on its session and the tenant's shared memories,
not on other sessions, unless the request asks for the whole tenant.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from _server_helpers import live_server, make_settings, running_app
from typer.testing import CliRunner
from websockets.asyncio.client import ClientConnection, connect

from deep_tree_echo.cli import app as cli_app
from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.principals import append_key
from deep_tree_echo.testing.live_server import EchoServer

ACME = "acme-" + "a" * 24
GLOBEX = "globex-" + "g" * 24
ADMIN = "ops-admin-" + "o" * 24
KEYS = f"acme:{ACME},globex:{GLOBEX}"


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


STORES = ["memory", "sqlite", "redis", "postgres"]


@asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the real PostgreSQL server, dropped afterwards."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=STORES)
async def store_settings(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """Settings of an app on one store kind (a clean store), with the two tenants' keys and
    an admin key of tenant ``ops``."""
    overrides: dict[str, Any] = {"api_keys": KEYS, "memory_store": request.param}
    if request.param == "sqlite":
        overrides |= {"test_mode": False, "data_dir": tmp_path / "data"}
    if request.param == "redis":
        import redis.asyncio as aioredis

        url = request.getfixturevalue("redis_server_url")
        flush = aioredis.from_url(url)
        await flush.flushall()  # a clean store for this test
        await flush.aclose()
        overrides["redis_url"] = url
    keys_file = tmp_path / "keys.toml"
    append_key(keys_file, ADMIN, tenant="ops", role="admin")
    overrides["api_keys_file"] = keys_file
    async with AsyncExitStack() as stack:
        if request.param == "postgres":
            server = request.getfixturevalue("postgres_url")
            overrides["database_url"] = await stack.enter_async_context(fresh_database(server))
            overrides["database_pool_size"] = 2
        yield overrides


@pytest.fixture
async def client(store_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(make_settings(**store_settings))) as c:
        yield c


async def test_two_tenants_use_the_same_ids_without_seeing_each_other(
    client: httpx.AsyncClient,
) -> None:
    a, g = auth(ACME), auth(GLOBEX)
    assert (await client.put("/v1/memories/plan", json={"content": "acme launches in May"},
                             headers=a)).status_code == 201
    # the same id is free in the other tenant: created, not replaced
    assert (await client.put("/v1/memories/plan", json={"content": "globex ships in June"},
                             headers=g)).status_code == 201
    assert (await client.get("/v1/memories/plan", headers=a)).json()["data"]["content"] == (
        "acme launches in May")
    assert (await client.get("/v1/memories/plan", headers=g)).json()["data"]["content"] == (
        "globex ships in June")
    assert (await client.put("/v1/memories/acme-only", json={"content": "secret May launch"},
                             headers=a)).status_code == 201
    missing = await client.get("/v1/memories/acme-only", headers=g)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (await client.delete("/v1/memories/acme-only", headers=g)).status_code == 404

    found = (await client.get("/v1/memories", params={"query": "launch May"}, headers=g)).json()
    assert [r["id"] for r in found["results"]] == []
    found = (await client.get("/v1/memories", params={"query": "launch May"}, headers=a)).json()
    assert {r["id"] for r in found["results"]} == {"plan", "acme-only"}
    export = await client.get("/v1/export/memories", headers=g)
    assert [json.loads(line)["id"] for line in export.text.splitlines()] == ["plan"]

    # deleting one tenant's memory leaves the other's
    assert (await client.delete("/v1/memories/plan", headers=g)).status_code == 204
    assert (await client.get("/v1/memories/plan", headers=a)).status_code == 200

    # an admin names the tenant it acts on; without a name it acts on its own (empty) one
    admin = await client.get("/v1/memories/acme-only", headers=auth(ADMIN, **{
        "X-Echo-Tenant": "acme"}))
    assert admin.status_code == 200
    assert (await client.get("/v1/memories/acme-only", headers=auth(ADMIN))).status_code == 404


async def ask(client: httpx.AsyncClient, key: str, text: str, session: str,
              **context: str) -> dict[str, Any]:
    body: dict[str, Any] = {"data": text, "session_id": session}
    if context:
        body["context"] = context
    r = await client.post("/v1/process", json=body, headers=auth(key))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def test_process_answers_only_from_the_tenant_and_the_session(
    client: httpx.AsyncClient,
) -> None:
    await ask(client, ACME, "the wifi password is hunter2", "conv")
    # another tenant, same session id: nothing of acme's
    other = await ask(client, GLOBEX, "what is the wifi password?", "conv")
    assert "hunter2" not in other["text"] and other["memories_used"] == []
    # the same tenant, another session: not by default ...
    stranger = await ask(client, ACME, "what is the wifi password?", "stranger")
    assert "hunter2" not in stranger["text"]
    # ... unless the request asks for the whole tenant
    wide = await ask(client, ACME, "what is the wifi password?", "stranger", memory_scope="tenant")
    assert "hunter2" in wide["text"]
    # the session itself, and the tenant's shared memories (stored without a session)
    assert "hunter2" in (await ask(client, ACME, "what is the wifi password?", "conv"))["text"]
    assert (await client.put("/v1/memories/door", json={"content": "the door code is 4711"},
                             headers=auth(ACME))).status_code == 201
    shared = await ask(client, ACME, "what is the door code?", "stranger")
    assert "4711" in shared["text"]
    assert "4711" not in (await ask(client, GLOBEX, "what is the door code?", "x"))["text"]
    r = await client.post("/v1/process", headers=auth(ACME), json={
        "data": "hi", "context": {"memory_scope": "everything"}})
    assert r.status_code == 422  # an invalid external request, like any malformed field
    assert "memory_scope" in r.json()["error"]["message"]


async def recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def next_is_pong(ws: ClientConnection) -> None:
    """Everything queued for ``ws`` before this ping arrives before its pong: so when the next
    message is the pong, nothing else was delivered."""
    await ws.send(json.dumps({"type": "ping", "ts": 1}))
    assert (await recv(ws))["type"] == "pong"


async def test_websocket_events_stay_inside_their_tenant(store_settings: dict[str, Any]) -> None:
    app = create_app(make_settings(**store_settings))  # events pass through the store's outbox
    async with live_server(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        url = f"ws://{host}/v1/ws?session_id=room"
        async with (
            connect(url, additional_headers=auth(ACME)) as acme,
            connect(url, additional_headers=auth(GLOBEX)) as globex,
            connect(f"{url}&tenant=acme", additional_headers=auth(ADMIN)) as admin,
        ):
            for ws in (acme, globex, admin):
                await next_is_pong(ws)  # connected and subscribed
            await acme.send(json.dumps({"type": "user_message", "session_id": "room",
                                        "message": "the meeting is at noon"}))
            seen = set()
            while "response" not in seen:
                seen.add((await recv(acme))["type"])
            assert {"agent_message", "memory_update"} <= seen
            admin_seen = {(await recv(admin))["type"] for _ in range(2)}
            assert admin_seen == {"agent_message", "memory_update"}  # admin named acme
            await next_is_pong(globex)  # same session id, other tenant: nothing arrived

            # a memory_update without a session reaches only the same tenant's clients
            r = await http.put("/v1/memories/notice", json={"content": "x"}, headers=auth(ACME))
            assert r.status_code == 201
            update = await recv(acme)
            assert update["type"] == "memory_update" and update["memory_id"] == "notice"
            await next_is_pong(globex)

            # and a user key cannot follow another tenant's sessions by naming the tenant
        async with connect(f"{url}&tenant=acme", additional_headers=auth(GLOBEX)) as spy:
            with pytest.raises(Exception) as closed:
                await next_is_pong(spy)
            assert getattr(getattr(closed.value, "rcvd", None), "code", None) == 1008


def test_cli_tenants_in_process(tmp_path: Path) -> None:
    data = str(tmp_path / "data")

    def cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli_app, [*args, "--data-dir", data])
        return result.exit_code, result.stdout

    assert cli("memory", "put", "same", '{"content": "acme fact"}', "--tenant", "acme")[0] == 0
    assert cli("memory", "put", "same", '{"content": "globex fact"}', "--tenant", "globex")[0] == 0
    code, out = cli("memory", "get", "same", "--tenant", "acme")
    assert code == 0 and json.loads(out)["data"]["content"] == "acme fact"
    code, out = cli("memory", "get", "same", "--tenant", "globex")
    assert code == 0 and json.loads(out)["data"]["content"] == "globex fact"
    assert cli("memory", "get", "same")[0] == 1  # the default tenant has no such memory
    assert cli("memory", "put", "x", "{}", "--tenant", "no/such")[0] == 1


def test_cli_tenants_over_http(tmp_path: Path) -> None:
    env = {"DTE_API_KEYS": KEYS, "DTE_RATE_LIMIT_REQUESTS": "0"}
    with EchoServer(tmp_path / "node", env={**os.environ, **env}) as server:

        def cli(key: str, *args: str) -> tuple[int, str]:
            result = CliRunner().invoke(cli_app, [*args, "--url", server.url, "--api-key", key])
            return result.exit_code, result.stdout

        assert cli(ACME, "memory", "put", "same", '{"content": "acme fact"}')[0] == 0
        assert cli(ACME, "memory", "put", "acme-only", '{"content": "acme secret"}')[0] == 0
        assert cli(GLOBEX, "memory", "put", "same", '{"content": "globex fact"}')[0] == 0
        code, out = cli(ACME, "memory", "get", "same")
        assert code == 0 and json.loads(out)["data"]["content"] == "acme fact"
        code, out = cli(GLOBEX, "memory", "get", "same")
        assert code == 0 and json.loads(out)["data"]["content"] == "globex fact"
        assert cli(GLOBEX, "memory", "get", "acme-only")[0] == 1  # 404: not globex's
        assert cli(GLOBEX, "memory", "get", "acme-only", "--tenant", "acme")[0] == 1  # 403
