"""Scale out, end to end: ``serve --workers 2`` on one SQLite data dir, with real processes.

Every answer is checked against a model of what was acknowledged (no stale or missing reads,
whichever worker answers); events of one worker reach WebSocket clients on the other; a
client resuming with ``since`` gets exactly what it missed; ``kill -9`` of a worker loses no
acknowledged write.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _scale_out import (
    WORKER,
    fresh_connections,
    random_workload,
    recv_events,
    recv_json,
    recv_type,
)
from websockets.asyncio.client import connect

from deep_tree_echo.testing.live_server import EchoServer

pytestmark = pytest.mark.slow

# Every term cached (min df 1): the search cache is checked by the model too.
ENV = {"DTE_RATE_LIMIT_REQUESTS": "0", "DTE_LOG_LEVEL": "warning", "DTE_SEARCH_CACHE_MIN_DF": "1"}


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    """One ``serve --workers 2`` on a SQLite data dir, shared by the tests of this module."""
    with EchoServer(tmp_path_factory.mktemp("workers"), workers=2, env=ENV, timeout=90) as server:
        assert len(server.worker_pids) == 2, server.output()
        yield server


async def test_two_workers_answer_as_one_store(workers: EchoServer) -> None:
    clients = [fresh_connections(workers.url) for _ in range(3)]
    try:
        served = await random_workload(clients, 1000, seed=8)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert set(served) == {str(pid) for pid in workers.worker_pids}, served
    assert min(served.values()) >= 100, served  # both did a real share of the work


async def test_in_process_commands_still_refuse_a_served_dir(workers: EchoServer) -> None:
    from deep_tree_echo.server.datadir_lock import DataDirLock
    from deep_tree_echo.server.errors import DataDirLockedError

    with pytest.raises(DataDirLockedError) as locked:
        DataDirLock(workers.data_dir, exclusive=False).acquire()
    assert f"--url {workers.url}" in locked.value.message


async def test_events_cross_workers_and_resume_exactly(workers: EchoServer) -> None:
    async with connect(f"{workers.ws_url}/v1/ws") as watcher:
        ws_pid = watcher.response.headers[WORKER]
        await watcher.send(json.dumps({"type": "subscribe", "session_id": "cross"}))
        # (a sessionless memory_update of an earlier test may come first: tenant-wide)
        assert (await recv_type(watcher, "subscribed"))["session_id"] == "cross"
        # POST until one request lands on the *other* worker (bounded)
        async with fresh_connections(workers.url) as http:
            other = None
            for i in range(60):
                r = await http.post("/v1/process", json={
                    "message_type": "text", "data": f"remember tea {i}", "session_id": "cross"})
                assert r.status_code == 200, r.text
                if r.headers[WORKER] != ws_pid:
                    other = i
                    break
            assert other is not None, "every request landed on the WebSocket's worker"
            # one memory_update and one agent_message per request, in order, none twice
            events = await recv_events(watcher, 2 * (other + 1), session="cross")
        ids = [e["event_id"] for e in events]
        assert ids == sorted(set(ids)), ids
        assert all(e["session_id"] == "cross" for e in events)
        assert [e["type"] for e in events[-2:]] == ["memory_update", "agent_message"]
        seen = events[1]["event_id"]  # the client "disconnects" after its second event

    async with fresh_connections(workers.url) as http:
        for i in range(3):  # missed while away, on whichever workers
            r = await http.post("/v1/process", json={
                "message_type": "text", "data": f"missed {i}", "session_id": "cross"})
            assert r.status_code == 200
    async with connect(f"{workers.ws_url}/v1/ws") as again:
        await again.send(json.dumps({"type": "subscribe", "session_id": "cross", "since": seen}))
        assert await recv_type(again, "subscribed") == {"type": "subscribed",
                                                        "session_id": "cross", "since": seen}
        missed = len(events) - 2 + 6
        replay = await recv_events(again, missed, session="cross")
        assert [e["event_id"] for e in replay[: len(events) - 2]] == ids[2:]
        replay_ids = [e["event_id"] for e in replay]
        assert replay_ids == sorted(set(replay_ids)) and replay_ids[0] > seen
        # nothing else of the session is queued for it: the pong comes before any more
        await again.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(15):
            while (frame := await recv_json(again))["type"] != "pong":
                assert frame.get("session_id") != "cross", frame


async def test_kill_9_of_a_worker_loses_no_acknowledged_write(workers: EchoServer) -> None:
    victim = workers.worker_pids[0]
    acknowledged: dict[str, int] = {}
    failed = 0

    async with fresh_connections(workers.url) as http:
        async def write(i: int) -> None:
            nonlocal failed
            try:
                r = await http.put(f"/v1/memories/k{i}", json={"content": f"kill test {i}"})
            except httpx.TransportError:
                failed += 1  # the connection died with the worker: never acknowledged
                return
            if r.status_code in (200, 201):
                acknowledged[f"k{i}"] = i

        for i in range(150):
            if i == 50:
                os.kill(victim, signal.SIGKILL)
            await asyncio.gather(*(write(i * 4 + j) for j in range(4)))
        # the service kept serving after the kill: the writes after it were acknowledged
        # (only those in flight on the killed worker may have failed)
        assert sum(1 for v in acknowledged.values() if v >= 200) >= 350, failed
    assert workers.running
    workers.restart()  # every acknowledged write is in the store, whoever reads it
    async with fresh_connections(workers.url) as http:
        for memory_id, i in acknowledged.items():
            r = await http.get(f"/v1/memories/{memory_id}")
            assert r.status_code == 200, (memory_id, r.text)
            assert r.json()["data"]["content"] == f"kill test {i}"
    # every committed change has its memory_update event, exactly once (written in the same
    # transaction), including changes whose worker died before answering
    with sqlite3.connect(f"file:{workers.data_dir / 'memories.db'}?mode=ro", uri=True) as db:
        committed = {row[0] for row in db.execute(
            "SELECT id FROM memories WHERE tenant = 'default' AND id GLOB 'k[0-9]*'")}
        announced = [json.loads(row[0])["memory_id"] for row in db.execute(
            "SELECT payload FROM events WHERE kind = 'memory_update'")]
    db.close()  # the with block commits; it does not close
    assert set(acknowledged) <= committed
    of_these = sorted(m for m in announced if m in committed)
    assert of_these == sorted(committed)  # one event per committed write, none missing



def test_without_redis_each_worker_enforces_its_share() -> None:
    from deep_tree_echo.config import EchoSettings
    from deep_tree_echo.server.app import _rate_limiter

    limiter = _rate_limiter(EchoSettings(rate_limit_requests=601, workers=3))
    assert limiter is not None and limiter.max_requests == 200 and limiter.backend is None
    one = _rate_limiter(EchoSettings(rate_limit_requests=1, workers=3))
    assert one is not None and one.max_requests == 1


async def test_with_redis_the_rate_limit_is_one_for_all_workers(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    env = {**ENV, "DTE_RATE_LIMIT_REQUESTS": "12", "DTE_RATE_LIMIT_WINDOW": "3600",
           "DTE_REDIS_URL": redis_url}
    with EchoServer(tmp_path_factory.mktemp("limited"), workers=2, env=env,
                    timeout=90) as server:
        statuses: dict[int, int] = {}
        workers_seen: set[str] = set()
        async with fresh_connections(server.url) as http:
            for i in range(40):
                r = await http.get(f"/v1/memories/absent-{i}")
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                workers_seen.add(r.headers[WORKER])
        assert statuses == {404: 12, 429: 28}, statuses  # 12 in all, not 12 per worker
        assert len(workers_seen) == 2


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not our child) ends within ``timeout`` s: a pidfd becomes
    readable when it does (an event, not polling)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # already gone
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no way to stop its workers: they notice and stop."""
    with EchoServer(tmp_path, workers=2, env=ENV, timeout=90) as server:
        pids = server.worker_pids
        assert len(pids) == 2, server.output()
        server.kill()
        server.process.wait()
        assert all(_wait_for_exit(pid, 30) for pid in pids), server.output()
