"""Records and versions as text: exact round trips, and strict parsing of replica input.

Found by mutation testing: the error paths were exercised but their messages and ``field``
details were not checked, nor ``from_dict``'s defaults or ``is_live`` at its boundary.
"""

from __future__ import annotations

from typing import Any

import pytest

from deep_tree_echo.aar_core.errors import InvalidMemoryError
from deep_tree_echo.aar_core.memory import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.record import parse_record, parse_version

V = Version(1_732_700_000_000, 42, "node-a")


def body(**changes: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": "m1", "data": {"content": "x"}, "version": V.to_str(),
        "created_at": 1.5, "updated_at": 2.5,
    }  # fmt: skip
    d.update(changes)
    return {k: v for k, v in d.items() if v is not _MISSING}


_MISSING = object()


def test_version_text_form_is_fixed_width_and_round_trips() -> None:
    assert V.to_str() == "0001732700000000-00042-node-a"
    assert Version.parse(V.to_str()) == V
    assert Version.parse("0000000000000001-00000-a-b-c") == Version(1, 0, "a-b-c")
    assert V.to_dict() == {"wall_ms": 1_732_700_000_000, "logical": 42, "node_id": "node-a"}
    assert parse_version(V.to_str()) == V


def test_record_to_dict_and_from_dict_round_trip_with_defaults() -> None:
    full = MemoryRecord(
        id="m1", data={"content": "x"}, version=V, created_at=1.5, updated_at=2.5,
        access_count=3, last_access=2.0, expires_at=9.0, deleted=True,
    )  # fmt: skip
    assert full.to_dict() == {
        "id": "m1", "data": {"content": "x"}, "version": V.to_str(), "created_at": 1.5,
        "updated_at": 2.5, "access_count": 3, "last_access": 2.0, "expires_at": 9.0,
        "deleted": True,
    }  # fmt: skip
    assert MemoryRecord.from_dict(full.to_dict()) == full
    minimal = MemoryRecord.from_dict(
        {"id": 7, "version": V.to_str(), "created_at": "1", "updated_at": 2}
    )
    assert minimal == MemoryRecord(
        id="7", data={}, version=V, created_at=1.0, updated_at=2.0, access_count=0,
        last_access=None, expires_at=None, deleted=False,
    )  # fmt: skip
    assert MemoryRecord.from_dict({**full.to_dict(), "data": None}).data == {}


def test_is_live_until_the_expiry_instant_and_never_for_tombstones() -> None:
    r = MemoryRecord(id="m", data={}, version=V, created_at=0, updated_at=0, expires_at=10.0)
    assert r.is_live(9.999)
    assert not r.is_live(10.0)
    r.expires_at = None
    assert r.is_live(1e12)
    r.deleted = True
    assert not r.is_live(0)


def test_a_well_formed_body_parses_with_every_field() -> None:
    got = parse_record(body(access_count=3, last_access=2, expires_at=None, deleted=True))
    assert got == MemoryRecord(
        id="m1", data={"content": "x"}, version=V, created_at=1.5, updated_at=2.5,
        access_count=3, last_access=2.0, expires_at=None, deleted=True,
    )  # fmt: skip
    assert isinstance(got.last_access, float)
    assert parse_record(body()).access_count == 0
    assert parse_record(body()).deleted is False


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"id": ""}, "id", "record field 'id' must be a non-empty string"),
        ({"id": 5}, "id", "record field 'id' must be a non-empty string"),
        ({"id": _MISSING}, "id", "record field 'id' must be a non-empty string"),
        ({"data": []}, "data", "record field 'data' must be a JSON object"),
        ({"data": _MISSING}, "data", "record field 'data' must be a JSON object"),
        (
            {"version": 5},
            "version",
            "record field 'version' must be a version string such as "
            "'0001732700000000-00000-node-a'",
        ),
        (
            {"version": "v" * 100},
            "version",
            "record field 'version' is not a version string 'WALLMS-LOGICAL-NODE': "
            + repr("v" * 80),
        ),
        (
            {"version": "1-123456-a"},
            "version",
            "record field 'version' is not a version string 'WALLMS-LOGICAL-NODE': '1-123456-a'",
        ),
        (
            {"created_at": _MISSING},
            "created_at",
            "record field 'created_at' is required (a number of UNIX seconds)",
        ),
        (
            {"updated_at": None},
            "updated_at",
            "record field 'updated_at' is required (a number of UNIX seconds)",
        ),
        (
            {"created_at": True},
            "created_at",
            "record field 'created_at' must be a finite number, got True",
        ),
        (
            {"updated_at": float("inf")},
            "updated_at",
            "record field 'updated_at' must be a finite number, got inf",
        ),
        (
            {"expires_at": "soon"},
            "expires_at",
            "record field 'expires_at' must be a finite number, got 'soon'",
        ),
        (
            {"access_count": -1},
            "access_count",
            "record field 'access_count' must be an integer >= 0, got -1",
        ),
        (
            {"access_count": True},
            "access_count",
            "record field 'access_count' must be an integer >= 0, got True",
        ),
        (
            {"access_count": 1.0},
            "access_count",
            "record field 'access_count' must be an integer >= 0, got 1.0",
        ),
        ({"deleted": 1}, "deleted", "record field 'deleted' must be true or false, got 1"),
    ],
)
def test_malformed_fields_are_refused_by_name(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidMemoryError) as info:
        parse_record(body(**changes))
    assert info.value.message == message
    assert info.value.details == {"field": field}


def test_a_body_that_is_not_an_object_is_refused_naming_its_type() -> None:
    with pytest.raises(InvalidMemoryError) as info:
        parse_record(["m1"])
    assert info.value.message == "a record must be a JSON object, not list"
    assert info.value.details == {}


def test_parse_version_names_the_field_it_was_given() -> None:
    with pytest.raises(InvalidMemoryError) as info:
        parse_version("nope", "since")
    assert info.value.details == {"field": "since"}
    assert info.value.message.startswith("record field 'since' is not a version string")
