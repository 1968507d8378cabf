"""Tenant namespaces: name validation, isolation in every store, events and purge per tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _memory_helpers import FakeClock, RecordingBus
from _store_kinds import ALL_KINDS, new_store, store_target

from deep_tree_echo.aar_core.errors import InvalidTenantError
from deep_tree_echo.aar_core.memory import MemoryManager, MemoryRecord, RankWeights, Version
from deep_tree_echo.aar_core.memory._bm25 import tokenize


@pytest.fixture(params=ALL_KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return store_target(request, tmp_path)


@pytest.fixture
async def manager(target: tuple[str, str]) -> AsyncIterator[MemoryManager]:
    m = MemoryManager(new_store(target), node_id="n", wall_clock=FakeClock())
    yield m
    await m.close()


@pytest.mark.parametrize("bad", ["", "-x", ".x", "a/b", "a:b", "a b", "é", "x" * 65, 7, None])
def test_bad_tenant_names_are_a_typed_400(bad: object) -> None:
    with pytest.raises(InvalidTenantError) as info:
        MemoryManager().for_tenant(bad)  # type: ignore[arg-type]
    assert info.value.code == "invalid_tenant" and info.value.http_status == 400


def test_good_tenant_names_are_accepted() -> None:
    m = MemoryManager()
    for name in ("default", "a", "Acme_Corp.eu-1", "9" * 64):
        assert m.for_tenant(name).tenant == name


async def test_store_rows_are_keyed_by_tenant_and_id(target: tuple[str, str]) -> None:
    store = new_store(target)
    await store.open()
    one = MemoryRecord("same", {"content": "alpha words"}, Version(1, 0, "n"), 1.0, 1.0)
    two = MemoryRecord("same", {"content": "beta words"}, Version(1, 0, "n"), 1.0, 1.0)
    assert await store.put_if_newer(one, tenant="t1")
    assert await store.put_if_newer(two, tenant="t2")  # same id and version, other tenant
    got = await store.get("same", tenant="t1")
    assert got is not None and got.data == {"content": "alpha words"}
    assert await store.get("same") is None
    assert await store.count(tenant="t2") == 1 and await store.count() == 0
    weights = RankWeights()
    hits = await store.search(tokenize("words"), limit=5, weights=weights, now=2.0, tenant="t2")
    assert [(h.id, h.data["content"]) for h in hits] == [("same", "beta words")]
    found = await store.search(tokenize("alpha"), limit=5, weights=weights, now=2.0, tenant="t2")
    assert found == []
    assert [r.data for r in [x async for x in store.scan(tenant="t1")]] == [one.data]
    assert await store.tenants() == ["t1", "t2"]
    assert await store.purge({"same": Version(1, 0, "n")}, tenant="t1") == ["same"]
    assert await store.get("same", tenant="t1") is None
    assert await store.get("same", tenant="t2") is not None
    await store.close()


async def test_views_act_on_their_tenant_only_and_events_name_it(
    target: tuple[str, str],
) -> None:
    bus = RecordingBus()
    clock = FakeClock()
    m = MemoryManager(new_store(target), node_id="n", wall_clock=clock, event_bus=bus)
    acme, globex = m.for_tenant("acme"), m.for_tenant("globex")
    await acme.store_memory("plan", {"content": "launch the rocket", "session_id": "s"})
    await globex.store_memory("plan", {"content": "buy the rocket"})
    await m.store_memory("plan", {"content": "default rocket"})
    assert await acme.retrieve_memory("plan") == {"content": "launch the rocket", "session_id": "s"}
    assert [h.data["content"] for h in await globex.search("rocket")] == ["buy the rocket"]
    assert await acme.get_all_memories() == {
        "plan": {"content": "launch the rocket", "session_id": "s"}
    }
    assert await acme.delete_memory("plan")
    assert await acme.count() == 0 and await globex.count() == 1 and await m.count() == 1
    assert [p["tenant"] for _, p in bus.events] == ["acme", "globex", "default", "acme"]
    # purge sweeps every tenant
    clock.advance(10)
    await globex.store_memory("tmp", {"content": "short lived"}, ttl=1)
    clock.advance(100)
    assert await m.purge(older_than=5) == 2  # acme's tombstone and globex's expired memory
    assert await acme.get_record("plan", include_deleted=True) is None
    assert await globex.get_record("plan") is not None
    await m.close()
