"""Fresh memory ids: valid ids, UUIDv7 layout, later ids sort later, no repeats."""

from __future__ import annotations

import uuid

import pytest

from deep_tree_echo.aar_core import ids
from deep_tree_echo.aar_core.ids import MEMORY_ID, new_memory_id


def test_a_new_memory_id_is_a_valid_uuid7_in_hex() -> None:
    made = new_memory_id()
    assert MEMORY_ID.matches(made) and made.startswith("mem-") and len(made) == 36
    parsed = uuid.UUID(made[4:])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_carry_their_millisecond_and_sort_by_it(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_798_000_000_000_000_000]  # ns
    monkeypatch.setattr(ids.time, "time_ns", lambda: now[0])
    first = [new_memory_id() for _ in range(50)]
    now[0] += 1_000_000  # one millisecond later
    later = [new_memory_id() for _ in range(50)]
    assert max(first) < min(later)
    assert {int(i[4:16], 16) for i in first} == {1_798_000_000_000}
    assert {int(i[4:16], 16) for i in later} == {1_798_000_000_001}
    assert len(set(first)) == 50  # the random part differs within one millisecond


def test_random_bits_fill_every_random_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids.os, "urandom", lambda n: b"\xff" * n)
    monkeypatch.setattr(ids.time, "time_ns", lambda: 0)
    assert new_memory_id() == "mem-" + "0" * 12 + "7fff" + "bfff" + "f" * 12
    monkeypatch.setattr(ids.os, "urandom", lambda n: b"\x00" * n)
    assert new_memory_id() == "mem-" + "0" * 12 + "7000" + "8000" + "0" * 12
