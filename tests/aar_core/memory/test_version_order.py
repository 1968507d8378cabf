"""Every store orders versions exactly as ``Version`` does, with adversarial node ids.

Found by mutation testing: no test used node ids where one is a prefix of the other, so
reversing the length tie-break in Redis's Lua compare (``node-1`` kept over ``node-10``) or
a non-strict compare passed. Each store is a real one (in-memory, SQLite file, redis-server,
PostgreSQL server with a fresh database per test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _store_kinds import ALL_KINDS, new_store, store_target

from deep_tree_echo.aar_core.memory import MemoryRecord, MemoryStore, Version

#: (older, newer) pairs at the same wall time and counter: only the node id decides.
NODE_PAIRS = [
    ("node-1", "node-10"),  # a prefix is older than its extensions
    ("a", "a-"),
    ("a", "a\x7e"),
    ("node-10", "node-2"),  # byte order, not numeric order
    ("Node", "node"),  # upper case sorts first (no locale collation)
    ("node-z", "node-é"),  # UTF-8 bytes sort like code points
    ("node", "node\u00a0"),
]


def rec(memory_id: str, version: Version, content: str, *, deleted: bool = False) -> MemoryRecord:
    return MemoryRecord(
        id=memory_id, data={"content": content}, version=version,
        created_at=1.0, updated_at=2.0, deleted=deleted,
    )  # fmt: skip


@pytest.fixture(params=ALL_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return store_target(request, tmp_path)


@pytest.fixture
async def store(backend: tuple[str, str]) -> AsyncIterator[MemoryStore]:
    s = new_store(backend)
    await s.open()
    yield s
    await s.close()


def test_the_pairs_are_ordered_as_documented() -> None:
    for older, newer in NODE_PAIRS:
        assert Version(7, 3, older) < Version(7, 3, newer)
        assert Version(7, 3, older).to_str() < Version(7, 3, newer).to_str()


@pytest.mark.parametrize(("older", "newer"), NODE_PAIRS)
async def test_node_id_tie_break_in_either_arrival_order(
    store: MemoryStore, older: str, newer: str
) -> None:
    old, new = Version(7, 3, older), Version(7, 3, newer)
    # newer arrives last: applied
    assert await store.put_if_newer(rec("up", old, "old")) is True
    assert await store.put_if_newer(rec("up", new, "new")) is True
    # newer arrives first: the late older write is refused
    assert await store.put_if_newer(rec("down", new, "new")) is True
    assert await store.put_if_newer(rec("down", old, "old")) is False
    for memory_id in ("up", "down"):
        got = await store.get(memory_id)
        assert got is not None
        assert (got.version, got.data) == (new, {"content": "new"})


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        (Version(999, 0, "z"), Version(1000, 0, "a")),  # wall first, as numbers
        (Version(5, 9, "z"), Version(5, 10, "a")),  # then the counter, as numbers
        (Version(5, 99_998, "b"), Version(5, 99_999, "a")),
        (Version(9_999_999_999_999, 0, "a"), Version(10_000_000_000_000, 0, "a")),
    ],
)
async def test_numeric_parts_decide_before_the_node_id(
    store: MemoryStore, older: Version, newer: Version
) -> None:
    assert await store.put_if_newer(rec("m", newer, "new")) is True
    assert await store.put_if_newer(rec("m", older, "old")) is False
    assert await store.put_if_newer(rec("n", older, "old")) is True
    assert await store.put_if_newer(rec("n", newer, "new")) is True
    for memory_id in ("m", "n"):
        got = await store.get(memory_id)
        assert got is not None and got.version == newer


async def test_an_equal_version_is_not_newer_even_with_other_data(store: MemoryStore) -> None:
    v = Version(7, 3, "node-1")
    assert await store.put_if_newer(rec("e", v, "first")) is True
    assert await store.put_if_newer(rec("e", v, "second")) is False
    assert await store.put_if_newer(rec("e", v, "tomb", deleted=True)) is False
    got = await store.get("e")
    assert got is not None and got.data == {"content": "first"} and not got.deleted


async def test_purge_matches_the_exact_version_not_a_prefix_of_its_node_id(
    store: MemoryStore,
) -> None:
    assert await store.put_if_newer(rec("p", Version(7, 3, "node-10"), "x", deleted=True))
    assert await store.put_if_newer(rec("q", Version(7, 3, "node-1"), "y", deleted=True))
    removed = await store.purge({"p": Version(7, 3, "node-1"), "q": Version(7, 3, "node-10")})
    assert removed == []
    assert await store.count() == 2
    removed = await store.purge({"p": Version(7, 3, "node-10"), "q": Version(7, 3, "node-1")})
    assert sorted(removed) == ["p", "q"]
    assert await store.get("p") is None and await store.get("q") is None
    assert await store.count() == 0
    assert await store.purge({}) == []


async def test_a_newer_write_replaces_the_whole_record(store: MemoryStore) -> None:
    first = MemoryRecord(
        id="r", data={"content": "x", "tag": "old"}, version=Version(7, 0, "node-1"),
        created_at=1.0, updated_at=2.0, access_count=4, last_access=3.0, expires_at=99.0,
        extra={"origin": "peer", "hops": [1, "é"]},
    )  # fmt: skip
    second = rec("r", Version(7, 0, "node-10"), "y")
    assert await store.put_if_newer(first) is True
    assert await store.get("r") == first  # every field round-trips, extra included
    assert await store.put_if_newer(second) is True
    got = await store.get("r")
    assert got == second  # no field of the first write lingers (expiry, access, extra)
