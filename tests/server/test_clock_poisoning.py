"""The clock-poisoning request against a real ``serve`` process: refused, and nothing moved.

One replica write stamped ``9999999999999999-...`` used to pin a node's hybrid logical clock in
the year 2286 for ever (every later local write stamped after it, across restarts). Now a
client key cannot reach the replica API at all, and the cluster key cannot push a version
further ahead than ``DTE_MAX_CLOCK_DRIFT``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from deep_tree_echo.aar_core.memory import Version
from deep_tree_echo.testing.live_server import EchoServer

pytestmark = pytest.mark.slow

CLIENT_KEY = "client-" + "k" * 32
CLUSTER_KEY = "cluster-" + "c" * 32
POISON = "9999999999999999-00000-node-z"


def _poison_body() -> dict[str, object]:
    now = time.time()
    return {"id": "future", "data": {"content": "from the future"}, "version": POISON,
            "created_at": now, "updated_at": now}


def test_the_clock_poisoning_request_is_refused_and_nothing_moves(tmp_path: Path) -> None:
    env = {**os.environ, "DTE_API_KEYS": CLIENT_KEY, "DTE_CLUSTER_KEY": CLUSTER_KEY,
           "DTE_RATE_LIMIT_REQUESTS": "0"}
    client = {"Authorization": f"Bearer {CLIENT_KEY}"}
    peer = {"Authorization": f"Bearer {CLUSTER_KEY}"}
    with EchoServer(tmp_path / "node", env=env) as server:
        url = server.url
        put = httpx.put(f"{url}/v1/memories/fact", json={"content": "before"}, headers=client)
        assert put.status_code == 201
        before = put.json()["version"]

        target = f"{url}/v1/replica/records/future"
        assert httpx.put(target, json=_poison_body()).status_code == 401
        assert httpx.put(target, json=_poison_body(), headers=client).status_code == 403
        refused = httpx.put(target, json=_poison_body(), headers=peer)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "clock_drift"
        assert "ahead of this node's clock" in error["message"]
        assert "maximum clock drift is 60 s" in error["message"]
        assert httpx.get(target, headers=peer).status_code == 404

        server.restart()
        url = server.url
        got = httpx.get(f"{url}/v1/memories/fact", headers=client)
        assert got.status_code == 200 and got.json()["version"] == before
        assert httpx.get(f"{url}/v1/replica/records/future", headers=peer).status_code == 404
        after = httpx.put(f"{url}/v1/memories/later", json={"content": "after"}, headers=client)
        stamped = Version.parse(after.json()["version"])
        assert stamped > Version.parse(before)
        # the node's clock still follows real time: its next stamp is not in the future
        assert stamped.wall_ms <= int(time.time() * 1000) + 1
