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


def stamp(seconds_ahead: float) -> Version:
    return Version(round((NOW + seconds_ahead) * 1000), 0, "peer")


def test_the_refusal_names_the_drift_and_the_bound_exactly() -> None:
    clock = HybridLogicalClock("me", lambda: NOW, max_drift=2.5)
    remote = stamp(3.25)
    with pytest.raises(ClockDriftError) as info:
        clock.update(remote)
    assert info.value.code == "clock_drift"
    assert info.value.message == (
        f"version {remote.to_str()} is 3.250 s ahead of this node's clock; "
        "the maximum clock drift is 2.5 s"
    )
    assert info.value.details == {"drift_seconds": 3.25, "max_clock_drift": 2.5}
    assert clock.max_drift == 2.5


def test_the_bound_is_in_milliseconds_to_the_millisecond() -> None:
    clock = HybridLogicalClock("me", lambda: NOW, max_drift=0.5)
    clock.check_drift(stamp(0.5))  # exactly at the bound: accepted
    with pytest.raises(ClockDriftError):
        clock.check_drift(stamp(0.501))
    clock.check_drift(stamp(-3600))  # behind is never drift
    zero = HybridLogicalClock("me", lambda: NOW, max_drift=0)
    zero.check_drift(stamp(0))
    with pytest.raises(ClockDriftError):
        zero.check_drift(stamp(0.001))


def test_check_drift_measures_against_the_given_time_or_the_wall_clock() -> None:
    clock = HybridLogicalClock("me", lambda: NOW, max_drift=1)
    remote = stamp(5)
    with pytest.raises(ClockDriftError):
        clock.check_drift(remote)  # against the wall clock: 5 s ahead
    clock.check_drift(remote, int((NOW + 4.5) * 1000))  # against a later time: 0.5 s ahead


@pytest.mark.parametrize("bad", [-0.001, -1, float("nan")])
def test_a_negative_or_nan_bound_is_refused(bad: float) -> None:
    with pytest.raises(ValueError) as info:
        HybridLogicalClock("me", lambda: NOW, max_drift=bad)
    assert str(info.value) == f"max_drift must be >= 0 seconds or None, got {bad!r}"


def test_a_bound_of_a_minute_is_sixty_thousand_milliseconds() -> None:
    clock = HybridLogicalClock("me", lambda: NOW, max_drift=60)
    clock.check_drift(stamp(60))
    with pytest.raises(ClockDriftError):
        clock.check_drift(stamp(60.001))


def test_update_checks_the_drift_against_the_reading_it_merges_with() -> None:
    readings = iter([NOW, NOW + 100, NOW + 100])  # the wall clock jumps after one reading
    clock = HybridLogicalClock("me", lambda: next(readings), max_drift=60)
    with pytest.raises(ClockDriftError):
        clock.update(stamp(90))  # 90 s ahead of the reading update took
