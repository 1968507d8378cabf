"""Who may call what: every route of the app by every kind of credential, on a live server.

The rows come from the app's own route table: a route added without a row here fails
:func:`test_every_route_has_a_row`, so nobody ships a route whose access rules were never
decided. Credentials: none, a wrong key, a user key of another tenant, a user key of the
owning tenant, an admin key (naming the owning tenant), and the cluster key.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from _server_helpers import live_server, make_settings
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from deep_tree_echo.server._routes import route_table
from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.principals import append_key

OWN_KEY = "acme-user-" + "o" * 24
OTHER_KEY = "globex-user-" + "t" * 24
ADMIN_KEY = "ops-admin-" + "a" * 24
CLUSTER_KEY = "cluster-" + "c" * 24

CREDENTIALS: dict[str, dict[str, str]] = {
    "none": {},
    "wrong": {"Authorization": "Bearer not-a-key"},
    "other": {"Authorization": f"Bearer {OTHER_KEY}"},
    "own": {"Authorization": f"Bearer {OWN_KEY}"},
    "admin": {"Authorization": f"Bearer {ADMIN_KEY}", "X-Echo-Tenant": "acme"},
    "cluster": {"Authorization": f"Bearer {CLUSTER_KEY}"},
}
KINDS = tuple(CREDENTIALS)

#: (method, route) -> expected status for none, wrong, other, own, admin, cluster.
#: "WS" rows: "open" when the socket is served, 1008 when it is closed as a policy violation.
EXPECTED: dict[tuple[str, str], tuple[int | str, ...]] = {
    ("GET", "/healthz"): (200, 200, 200, 200, 200, 200),
    ("GET", "/readyz"): (200, 200, 200, 200, 200, 200),
    ("GET", "/openapi.json"): (200, 200, 200, 200, 200, 200),
    ("GET", "/docs"): (200, 200, 200, 200, 200, 200),
    ("GET", "/docs/oauth2-redirect"): (200, 200, 200, 200, 200, 200),
    ("GET", "/redoc"): (200, 200, 200, 200, 200, 200),
    ("GET", "/metrics"): (401, 401, 200, 200, 200, 403),
    ("POST", "/v1/process"): (401, 401, 200, 200, 200, 403),
    # another tenant creates its own memory under the same id: 201, not 200 (replace)
    ("PUT", "/v1/memories/{memory_id}"): (401, 401, 201, 200, 200, 403),
    ("GET", "/v1/memories/{memory_id}"): (401, 401, 404, 200, 200, 403),
    ("DELETE", "/v1/memories/{memory_id}"): (401, 401, 404, 204, 204, 403),
    ("GET", "/v1/memories"): (401, 401, 200, 200, 200, 403),
    ("GET", "/v1/export/memories"): (401, 401, 200, 200, 200, 403),
    ("PUT", "/v1/replica/records/{memory_id}"): (401, 401, 403, 403, 403, 200),
    ("GET", "/v1/replica/records/{memory_id}"): (401, 401, 403, 403, 403, 200),
    # backups: a client restores into its own tenant (another tenant's restore is its own)
    ("PUT", "/v1/restore/memories/{memory_id}"): (401, 401, 200, 200, 200, 403),
    ("WS", "/v1/ws"): (1008, 1008, "open", "open", "open", 1008),
    # the console's files hold no data; everything it shows comes through the API's auth
    ("GET", "/"): (307, 307, 307, 307, 307, 307),
    ("GET", "/console"): (200, 200, 200, 200, 200, 200),
    ("GET", "/console/{name:path}"): (200, 200, 200, 200, 200, 200),
    ("GET", "/v1/status"): (401, 401, 200, 200, 200, 403),
    ("GET", "/v1/events"): (401, 401, 200, 200, 200, 403),
}


def _app(keys_file: Path) -> FastAPI:
    if not keys_file.exists():
        append_key(keys_file, ADMIN_KEY, tenant="ops", role="admin")
    return create_app(make_settings(
        api_keys=f"acme:{OWN_KEY},globex:{OTHER_KEY}", api_keys_file=keys_file,
        cluster_key=CLUSTER_KEY, rate_limit_requests=0,
    ))


def test_every_route_has_a_row(tmp_path: Path) -> None:
    app = _app(tmp_path / "keys.toml")
    served = set()
    for entry in route_table(app.router.routes):
        if entry.websocket:
            served.add(("WS", entry.path))
        served |= {(method, entry.path) for method in entry.methods - {"HEAD"}}
    assert served == set(EXPECTED), "decide the access rules of every route in EXPECTED"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    async with live_server(_app(tmp_path / "keys.toml")) as host:
        yield host


def _record(memory_id: str) -> dict[str, object]:
    return {"id": memory_id, "data": {"content": "replicated"},
            "version": "0001700000000000-00000-peer", "created_at": 1.7e9, "updated_at": 1.7e9}


async def _call(http: httpx.AsyncClient, method: str, path: str, kind: str) -> int:
    """Prepare what the row needs (as its owner), then call it with credential ``kind``."""
    own = CREDENTIALS["own"]
    peer = CREDENTIALS["cluster"]
    mid = f"m-{method.lower()}-{kind}"
    headers = CREDENTIALS[kind]
    if path == "/v1/memories/{memory_id}":
        assert (await http.put(f"/v1/memories/{mid}", json={"content": "acme's"},
                               headers=own)).status_code == 201
        body = {"json": {"content": "x"}} if method == "PUT" else {}
        r = await http.request(method, f"/v1/memories/{mid}", headers=headers, **body)
    elif path == "/v1/replica/records/{memory_id}":
        assert (await http.put(f"/v1/replica/records/{mid}", json=_record(mid),
                               headers=peer)).status_code == 200
        body = {"json": _record(mid)} if method == "PUT" else {}
        r = await http.request(method, f"/v1/replica/records/{quote(mid)}", headers=headers,
                               **body)
    elif path == "/v1/restore/memories/{memory_id}":
        r = await http.put(f"/v1/restore/memories/{mid}", json=_record(mid), headers=headers)
    elif path == "/console/{name:path}":
        r = await http.get("/console/app.js", headers=headers)
    elif path == "/v1/events":  # a stream that never ends: the status line is enough
        async with http.stream("GET", path, headers=headers) as streamed:
            return streamed.status_code
    elif path == "/v1/process":
        r = await http.post(path, json={"data": "hello", "session_id": "s"}, headers=headers)
    else:
        r = await http.request(method, path, headers=headers)
    return r.status_code


async def _ws(host: str, kind: str) -> int | str:
    async with connect(f"ws://{host}/v1/ws", additional_headers=CREDENTIALS[kind]) as ws:
        try:
            await ws.send(json.dumps({"type": "ping"}))
            reply = json.loads(await ws.recv())
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code
        assert reply["type"] == "pong"
        return "open"


@pytest.mark.parametrize(("method", "path"), list(EXPECTED))
async def test_who_may_call_what(server: str, method: str, path: str) -> None:
    expected = dict(zip(KINDS, EXPECTED[(method, path)], strict=True))
    got: dict[str, int | str] = {}
    call: Callable[[str], Awaitable[int | str]]
    async with httpx.AsyncClient(base_url=f"http://{server}", timeout=10) as http:
        if method == "WS":
            async def call(kind: str) -> int | str:
                return await _ws(server, kind)
        else:
            async def call(kind: str) -> int | str:
                return await _call(http, method, path, kind)
        for kind in KINDS:
            got[kind] = await call(kind)
    assert got == expected


@pytest.mark.parametrize("authorization", ["Basic {key}", "Bearer {prefix}", "bearer{key}",
                                           "Bearer {key} extra", "{key}"])
async def test_other_schemes_and_prefixes_of_a_key_are_refused(
    server: str, authorization: str
) -> None:
    value = authorization.format(key=OWN_KEY, prefix=OWN_KEY[:-1])
    async with httpx.AsyncClient(base_url=f"http://{server}", timeout=10) as http:
        r = await http.get("/v1/memories", headers={"Authorization": value})
        assert r.status_code == 401
        r = await http.get("/v1/replica/records/x",
                           headers={"Authorization": value.replace(OWN_KEY, CLUSTER_KEY)})
        assert r.status_code == 401
