"""HLC ``max_drift``: a peer's stamp too far ahead is refused and never moves the clock."""

from __future__ import annotations

import pytest

from deep_tree_echo.aar_core.errors import ClockDriftError
from deep_tree_echo.aar_core.memory import MemoryManager, MemoryRecord, Version
from deep_tree_echo.aar_core.memory.hlc import HybridLogicalClock

NOW = 1_700_000_000.0


def test_update_refuses_a_stamp_beyond_the_drift_and_keeps_the_clock() -> None:
    clock = HybridLogicalClock("me", lambda: NOW, max_drift=60)
    first = clock.now()
    with pytest.raises(ClockDriftError) as info:
        clock.update(Version(int((NOW + 61) * 1000), 0, "peer"))
    assert info.value.http_status == 400
    assert info.value.details["drift_seconds"] == pytest.approx(61)
    assert "61.000 s ahead" in info.value.message and "60 s" in info.value.message
    assert clock.peek() == first
    # at the bound it is accepted, and the clock follows it
    edge = Version(int((NOW + 60) * 1000), 4, "peer")
    assert clock.update(edge) > edge


def test_no_bound_keeps_the_old_behaviour() -> None:
    clock = HybridLogicalClock("me", lambda: NOW)
    far = Version(9_999_999_999_999_999, 0, "peer")
    assert clock.update(far) > far


async def test_apply_remote_refuses_and_stores_nothing() -> None:
    manager = MemoryManager(clock=HybridLogicalClock("me", lambda: NOW, max_drift=60),
                            wall_clock=lambda: NOW)
    async with manager:
        before = manager.clock.peek()
        poison = MemoryRecord(id="future", data={"content": "x"},
                              version=Version(9_999_999_999_999_999, 0, "node-z"),
                              created_at=NOW, updated_at=NOW)
        with pytest.raises(ClockDriftError):
            await manager.apply_remote(poison)
        assert manager.clock.peek() == before
        assert await manager.get_record("future", include_deleted=True) is None
        record = await manager.store_memory("local", {"content": "y"})
        assert record.version.wall_ms == int(NOW * 1000)
