"""``/v1/replica/records``: version-preserving record exchange between nodes (in-process app).

Every request under ``/v1/replica`` carries the cluster key (a request hook adds it), the
other routes go without credentials (auth off for clients).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _server_helpers import AppClient

from deep_tree_echo.aar_core.memory import MemoryRecord, Version

KEY = "k-" + "r" * 30
CLUSTER_KEY = "cluster-" + "c" * 30
PEER = {"Authorization": f"Bearer {CLUSTER_KEY}"}
URL = "/v1/replica/records"


async def _as_peer(request: httpx.Request) -> None:
    if request.url.path.startswith("/v1/replica/") and "authorization" not in request.headers:
        request.headers["Authorization"] = PEER["Authorization"]


@pytest.fixture
async def client(app_client: AppClient) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(cluster_key=CLUSTER_KEY) as c:
        c.event_hooks["request"].append(_as_peer)
        yield c


def record(memory_id: str, version: Version, **changes: Any) -> dict[str, Any]:
    body = MemoryRecord(
        id=memory_id,
        data={"content": f"as of {version.to_str()}"},
        version=version,
        created_at=1_700_000_000.0,
        updated_at=1_700_000_000.0 + version.wall_ms / 1000,
    ).to_dict()
    body.update(changes)
    return body


async def test_put_applies_the_record_with_its_own_version(client: httpx.AsyncClient) -> None:
    v = Version(1_700_000_000_000, 3, "peer-a")
    r = await client.put(f"{URL}/m1", json=record("m1", v))
    assert r.status_code == 200
    assert r.json() == {"applied": True, "version": v.to_str()}

    got = await client.get(f"{URL}/m1")
    assert got.status_code == 200
    assert got.json() == record("m1", v)  # every field, the version string included
    assert (await client.get("/v1/memories/m1")).json()["version"] == v.to_str()

    # the same version again, and an older one, are not applied: the node keeps v
    again = await client.put(f"{URL}/m1", json=record("m1", v))
    assert again.json() == {"applied": False, "version": v.to_str()}
    older = Version(1_600_000_000_000, 0, "peer-b")
    stale = await client.put(f"{URL}/m1", json=record("m1", older))
    assert stale.json() == {"applied": False, "version": v.to_str()}
    assert (await client.get(f"{URL}/m1")).json()["data"] == {"content": f"as of {v.to_str()}"}

    newer = Version(1_700_000_000_000, 4, "peer-b")
    r = await client.put(f"{URL}/m1", json=record("m1", newer))
    assert r.json() == {"applied": True, "version": newer.to_str()}


async def test_local_writes_after_a_replicated_version_are_newer(
    client: httpx.AsyncClient,
) -> None:
    """apply_remote folds the version into the node's clock: its next stamp is newer."""
    future = Version(int((time.time() + 30) * 1000), 7, "peer-fast")  # within the drift bound
    assert (await client.put(f"{URL}/m2", json=record("m2", future))).json()["applied"]
    r = await client.put("/v1/memories/m2", json={"content": "local edit"})
    assert Version.parse(r.json()["version"]) > future


async def test_get_returns_tombstones_and_404_only_for_unknown_ids(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.put("/v1/memories/gone", json={"content": "x"})).status_code == 201
    assert (await client.delete("/v1/memories/gone")).status_code == 204
    assert (await client.get("/v1/memories/gone")).status_code == 404

    r = await client.get(f"{URL}/gone")
    assert r.status_code == 200
    body = r.json()
    assert body["deleted"] is True and body["data"] == {} and body["id"] == "gone"

    missing = await client.get(f"{URL}/never-seen")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_replicated_tombstone_deletes_a_live_memory(client: httpx.AsyncClient) -> None:
    live = (await client.put("/v1/memories/t", json={"content": "x"})).json()
    newer = Version.parse(live["version"])
    newer = Version(newer.wall_ms, newer.logical + 1, "peer-z")
    tomb = record("t", newer, deleted=True, data={})
    assert (await client.put(f"{URL}/t", json=tomb)).json() == {
        "applied": True, "version": newer.to_str()
    }
    assert (await client.get("/v1/memories/t")).status_code == 404
    assert (await client.get(f"{URL}/t")).json()["deleted"] is True


GOOD = record("bad", Version(1_700_000_000_000, 0, "peer-a"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in GOOD.items() if k != "version"}, "version"),
        ({**GOOD, "version": "yesterday"}, "version"),
        ({**GOOD, "version": "17-0-"}, "version"),
        ({**GOOD, "version": "17-123456-peer"}, "version"),
        ({**GOOD, "version": 17}, "version"),
        ({**GOOD, "data": "text"}, "data"),
        ({k: v for k, v in GOOD.items() if k != "data"}, "data"),
        ({**GOOD, "created_at": "noon"}, "created_at"),
        ({k: v for k, v in GOOD.items() if k != "updated_at"}, "updated_at"),
        ({**GOOD, "access_count": -1}, "access_count"),
        ({**GOOD, "access_count": True}, "access_count"),
        ({**GOOD, "deleted": "yes"}, "deleted"),
        ({**GOOD, "expires_at": "never"}, "expires_at"),
        ({**GOOD, "id": ""}, "id"),
        ({**GOOD, "id": "other"}, "id"),  # id mismatch with the path
    ],
)
async def test_malformed_records_are_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    r = await client.put(f"{URL}/bad", json=body)
    assert r.status_code in (400, 422)
    error = r.json()["error"]
    assert error["details"]["field"] == field
    assert field in error["message"]
    assert (await client.get(f"{URL}/bad")).status_code == 404  # nothing stored


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"[1, 2]", {"content-type": "application/json"}, 400),
        (b'{"id": "bad"}', {"content-type": "text/plain"}, 415),
        (b'{"content": NaN}', {"content-type": "application/json"}, 400),
    ],
)
async def test_bodies_that_are_not_records_are_refused(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int
) -> None:
    r = await client.put(f"{URL}/bad", content=content, headers=headers)
    assert r.status_code == status
    assert "error" in r.json()
    assert (await client.get(f"{URL}/bad")).status_code == 404


async def test_data_that_breaks_the_memory_rules_is_400(client: httpx.AsyncClient) -> None:
    bad = {**GOOD, "data": {"content": float("nan")}}
    r = await client.put(f"{URL}/bad", content=json.dumps(bad).encode(),  # NaN: not JSON-safe
                         headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert (await client.get(f"{URL}/bad")).status_code == 404
    r = await client.put(f"{URL}/bad%01", json={**GOOD, "id": "bad\x01"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_memory"


async def test_replica_routes_accept_only_the_cluster_key(app_client: AppClient) -> None:
    async with app_client(api_keys=f"{KEY},acme:admin-{KEY}", cluster_key=CLUSTER_KEY) as c:
        r = await c.put(f"{URL}/bad", json=GOOD)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert (await c.get(f"{URL}/bad")).status_code == 401
        client_key = {"Authorization": f"Bearer {KEY}"}
        r = await c.put(f"{URL}/bad", json=GOOD, headers=client_key)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"
        assert (await c.get(f"{URL}/bad", headers=client_key)).status_code == 403
        for wrong in (f"Basic {CLUSTER_KEY}", f"Bearer {CLUSTER_KEY[:-1]}", "Bearer "):
            r = await c.get(f"{URL}/bad", headers={"Authorization": wrong})
            assert r.status_code == 401, wrong
        assert (await c.get(f"{URL}/bad", headers=PEER)).status_code == 404  # nothing stored
        assert (await c.put(f"{URL}/bad", json=GOOD, headers=PEER)).json()["applied"] is True
        assert (await c.get(f"{URL}/bad", headers=PEER)).json() == GOOD
        # ... and the cluster key is not a client key
        assert (await c.get("/v1/memories/bad", headers=PEER)).status_code == 403
        assert (await c.get("/v1/memories/bad", headers=client_key)).status_code == 200


async def test_replica_routes_are_absent_without_a_cluster_key(app_client: AppClient) -> None:
    async with app_client(api_keys=KEY) as c:
        auth = {"Authorization": f"Bearer {KEY}"}
        assert (await c.put(f"{URL}/bad", json=GOOD, headers=auth)).status_code == 404
        assert (await c.get(f"{URL}/bad", headers=auth)).status_code == 404
        paths = (await c.get("/openapi.json", headers=auth)).json()["paths"]
        assert not any(p.startswith("/v1/replica") for p in paths)


async def test_a_version_too_far_ahead_is_refused_and_leaves_the_clock(
    app_client: AppClient,
) -> None:
    async with app_client(cluster_key=CLUSTER_KEY, max_clock_drift=60) as c:
        gateway = c._transport.app.state.gateway  # type: ignore[attr-defined]
        before = gateway.memory.clock.peek()
        poison = {**record("future", Version(1_700_000_000_000, 0, "node-z")),
                  "version": "9999999999999999-00000-node-z"}
        r = await c.put(f"{URL}/future", json=poison, headers=PEER)
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["code"] == "clock_drift"
        assert "ahead of this node's clock" in error["message"] and "60 s" in error["message"]
        assert gateway.memory.clock.peek() == before
        assert (await c.get(f"{URL}/future", headers=PEER)).status_code == 404
        # 90 s ahead is refused with the default bound; 30 s ahead is fine
        ahead = Version(int((time.time() + 90) * 1000), 0, "node-z")
        r = await c.put(f"{URL}/soon", json=record("soon", ahead), headers=PEER)
        assert r.status_code == 400 and r.json()["error"]["code"] == "clock_drift"
        near = Version(int((time.time() + 30) * 1000), 0, "node-z")
        r = await c.put(f"{URL}/soon", json=record("soon", near), headers=PEER)
        assert r.status_code == 200 and r.json()["applied"] is True
        local = (await c.put("/v1/memories/after", json={"content": "x"})).json()["version"]
        assert Version.parse(local).wall_ms < int((time.time() + 60) * 1000)


async def test_replica_bodies_are_capped(app_client: AppClient) -> None:
    async with app_client(max_body_bytes=1000, cluster_key=CLUSTER_KEY) as c:
        big = {**GOOD, "data": {"content": "x" * 2000}}
        r = await c.put(f"{URL}/bad", json=big, headers=PEER)
        assert r.status_code == 413
        assert (await c.get(f"{URL}/bad", headers=PEER)).status_code == 404


async def test_openapi_documents_the_replica_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/v1/replica/records/{memory_id}"]) == {"get", "put"}
