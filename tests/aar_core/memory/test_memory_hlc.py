"""HybridLogicalClock: monotonic stamps under wall-clock steps, merge with remote stamps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deep_tree_echo.aar_core.memory import HybridLogicalClock, Version
from deep_tree_echo.aar_core.memory.hlc import MAX_LOGICAL

wall_steps = st.lists(st.floats(min_value=-5.0, max_value=5.0, allow_nan=False), max_size=60)


class SteppingClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def test_now_uses_wall_milliseconds_and_node_id() -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("node-a", clock)
    v = hlc.now()
    assert v == Version(1_700_000_000_000, 0, "node-a")
    clock.t += 0.002
    assert hlc.now() == Version(1_700_000_000_002, 0, "node-a")


def test_stalled_wall_clock_advances_logical_counter() -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("a", clock)
    stamps = [hlc.now() for _ in range(5)]
    assert [s.logical for s in stamps] == [0, 1, 2, 3, 4]
    assert len({s.wall_ms for s in stamps}) == 1


def test_backwards_wall_step_keeps_order() -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("a", clock)
    before = hlc.now()
    clock.t -= 3600  # NTP steps the clock back an hour
    after = hlc.now()
    assert after > before
    assert after.wall_ms == before.wall_ms


@given(wall_steps, st.lists(st.tuples(st.integers(0, 3_000), st.integers(0, 50)), max_size=20))
def test_stamps_strictly_increase_whatever_the_wall_clock_does(
    steps: list[float], remotes: list[tuple[int, int]]
) -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("a", clock)
    last = hlc.now()
    pending = list(remotes)
    for step in steps:
        clock.t += step
        if pending:
            offset_ms, logical = pending.pop()
            remote = Version(int(clock.t * 1000) + offset_ms - 1_500, logical, "b")
            stamp = hlc.update(remote)
            assert stamp > remote
        else:
            stamp = hlc.now()
        assert stamp > last
        # The text form sorts exactly like the tuple (what SQLite compares).
        assert stamp.to_str() > last.to_str()
        assert Version.parse(stamp.to_str()) == stamp
        last = stamp


def test_update_jumps_ahead_of_a_remote_from_the_future() -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("a", clock)
    remote = Version(int(clock.t * 1000) + 60_000, 7, "b")
    merged = hlc.update(remote)
    assert merged == Version(remote.wall_ms, 8, "a")
    assert hlc.now() > remote


def test_update_with_older_remote_only_ticks() -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("a", clock)
    first = hlc.now()
    merged = hlc.update(Version(first.wall_ms - 10_000, 3, "b"))
    assert merged == Version(first.wall_ms, 1, "a")


def test_logical_overflow_carries_into_milliseconds_so_text_still_sorts() -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("a", clock)
    hlc.update(Version(int(clock.t * 1000), MAX_LOGICAL, "b"))
    nxt = hlc.now()
    assert nxt.logical <= MAX_LOGICAL
    assert nxt.to_str() > Version(int(clock.t * 1000), MAX_LOGICAL, "b").to_str()


def test_node_id_with_dashes_round_trips() -> None:
    v = HybridLogicalClock("eu-west-1-node-7", SteppingClock()).now()
    assert Version.parse(v.to_str()) == v


def test_a_new_clock_has_issued_nothing_and_needs_a_node_id() -> None:
    assert HybridLogicalClock("a", SteppingClock()).peek() == Version(0, 0, "a")
    with pytest.raises(ValueError, match=r"^node_id must be a non-empty string$"):
        HybridLogicalClock("", SteppingClock())


def test_update_with_a_remote_on_the_same_millisecond_takes_the_larger_counter() -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("a", clock)
    wall = hlc.now().wall_ms
    assert hlc.update(Version(wall, 5, "b")) == Version(wall, 6, "a")
    # Ours (6) is now larger than the remote's (2): the merge continues from ours.
    assert hlc.update(Version(wall, 2, "b")) == Version(wall, 7, "a")
    assert hlc.peek() == Version(wall, 7, "a")


def test_update_when_the_wall_clock_is_ahead_of_both_restarts_the_counter() -> None:
    clock = SteppingClock()
    hlc = HybridLogicalClock("a", clock)
    first = hlc.update(Version(int(clock.t * 1000), 40, "b"))
    assert first.logical == 41
    clock.t += 1.0
    assert hlc.update(Version(first.wall_ms, 90, "b")) == Version(first.wall_ms + 1000, 0, "a")


def test_counter_carries_only_past_max_logical_and_by_exactly_one_millisecond() -> None:
    clock = SteppingClock()
    wall = int(clock.t * 1000)
    hlc = HybridLogicalClock("a", clock)
    # MAX_LOGICAL itself still fits the five-digit text form: no carry.
    assert hlc.update(Version(wall, MAX_LOGICAL - 1, "b")) == Version(wall, MAX_LOGICAL, "a")
    assert hlc.now() == Version(wall + 1, 0, "a")
