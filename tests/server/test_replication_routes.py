"""``/v1/replica/records``: version-preserving record exchange between nodes (in-process app)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from _server_helpers import AppClient

from deep_tree_echo.aar_core.memory import MemoryRecord, Version

KEY = "k-" + "r" * 30
URL = "/v1/replica/records"


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
    future = Version(4_000_000_000_000, 7, "peer-fast")
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


async def test_replica_routes_need_the_api_key(app_client: AppClient) -> None:
    async with app_client(api_keys=KEY) as c:
        r = await c.put(f"{URL}/bad", json=GOOD)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert (await c.get(f"{URL}/bad")).status_code == 401
        good = {"Authorization": f"Bearer {KEY}"}
        assert (await c.get(f"{URL}/bad", headers=good)).status_code == 404  # nothing stored
        assert (await c.put(f"{URL}/bad", json=GOOD, headers=good)).json()["applied"] is True
        assert (await c.get(f"{URL}/bad", headers=good)).json() == GOOD


async def test_replica_bodies_are_capped(app_client: AppClient) -> None:
    async with app_client(max_body_bytes=1000) as c:
        big = {**GOOD, "data": {"content": "x" * 2000}}
        r = await c.put(f"{URL}/bad", json=big)
        assert r.status_code == 413
        assert (await c.get(f"{URL}/bad")).status_code == 404


async def test_openapi_documents_the_replica_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/v1/replica/records/{memory_id}"]) == {"get", "put"}
