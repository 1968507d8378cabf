"""The stored form of a memory: the caller's data plus bookkeeping and a version stamp.

The version is a hybrid logical clock stamp ``(wall_ms, logical, node_id)``. Versions are
totally ordered, so any replica can apply last-writer-wins by comparing them, and a delete
is a tombstone record with a newer version (never a physical removal), which is what
replication, hinted handoff and read repair will need later.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from deep_tree_echo.aar_core.errors import InvalidMemoryError

#: ``Version.to_str`` text as accepted from other nodes: wall ms (at most 16 digits), logical
#: counter (at most 5 digits, as the HLC issues them), then a node id without control characters.
_VERSION_TEXT = re.compile(r"([0-9]{1,16})-([0-9]{1,5})-([^\x00-\x1f\x7f]{1,256})")


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """A hybrid-logical-clock stamp; ordering is (wall_ms, logical, node_id)."""

    wall_ms: int
    logical: int
    node_id: str

    def to_str(self) -> str:
        """Compact, sortable text form, e.g. ``"0001732700000000-00000-node-a"``."""
        return f"{self.wall_ms:016d}-{self.logical:05d}-{self.node_id}"

    @classmethod
    def parse(cls, text: str) -> Version:
        wall, logical, node = text.split("-", 2)
        return cls(int(wall), int(logical), node)

    def to_dict(self) -> dict[str, Any]:
        return {"wall_ms": self.wall_ms, "logical": self.logical, "node_id": self.node_id}


@dataclass(slots=True)
class MemoryRecord:
    """One memory as the store keeps it.

    ``data`` is the caller's dict, kept as given (content, importance, any extra keys).
    Times are UNIX seconds (float, UTC). ``deleted`` marks a tombstone.
    """

    id: str
    data: dict[str, Any]
    version: Version
    created_at: float
    updated_at: float
    access_count: int = 0
    last_access: float | None = None
    expires_at: float | None = None
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def is_live(self, now: float) -> bool:
        """True when the record is neither a tombstone nor expired at ``now``."""
        return not self.deleted and (self.expires_at is None or self.expires_at > now)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form used by the HTTP API, export and replication."""
        return {
            "id": self.id,
            "data": self.data,
            "version": self.version.to_str(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "access_count": self.access_count,
            "last_access": self.last_access,
            "expires_at": self.expires_at,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryRecord:
        return cls(
            id=str(d["id"]),
            data=dict(d.get("data") or {}),
            version=Version.parse(str(d["version"])),
            created_at=float(d["created_at"]),
            updated_at=float(d["updated_at"]),
            access_count=int(d.get("access_count", 0)),
            last_access=d.get("last_access"),
            expires_at=d.get("expires_at"),
            deleted=bool(d.get("deleted", False)),
        )


def _bad(name: str, what: str) -> InvalidMemoryError:
    return InvalidMemoryError(f"record field {name!r} {what}", field=name)


def _number(body: dict[str, Any], name: str, *, optional: bool) -> float | None:
    value = body.get(name)
    if value is None:
        if optional:
            return None
        raise _bad(name, "is required (a number of UNIX seconds)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(name, f"must be a finite number, got {value!r}")
    return float(value)


def parse_version(text: object, name: str = "version") -> Version:
    """A version from its ``Version.to_str`` text; :class:`InvalidMemoryError` naming the field."""
    if not isinstance(text, str):
        raise _bad(name, "must be a version string such as '0001732700000000-00000-node-a'")
    match = _VERSION_TEXT.fullmatch(text)
    if match is None:
        raise _bad(name, f"is not a version string 'WALLMS-LOGICAL-NODE': {text[:80]!r}")
    return Version(int(match[1]), int(match[2]), match[3])


def parse_record(body: object) -> MemoryRecord:
    """A record received from another node (``MemoryRecord.to_dict()`` JSON), checked strictly.

    Unlike :meth:`MemoryRecord.from_dict` (trusted input) every field is type-checked, so a
    malformed replica write is refused with an :class:`InvalidMemoryError` whose ``field``
    detail names the offending field, instead of storing a half-valid record.
    """
    if not isinstance(body, dict):
        raise InvalidMemoryError(f"a record must be a JSON object, not {type(body).__name__}")
    memory_id = body.get("id")
    if not isinstance(memory_id, str) or not memory_id:
        raise _bad("id", "must be a non-empty string")
    data = body.get("data")
    if not isinstance(data, dict):
        raise _bad("data", "must be a JSON object")
    version = parse_version(body.get("version"))
    created_at = _number(body, "created_at", optional=False)
    updated_at = _number(body, "updated_at", optional=False)
    assert created_at is not None and updated_at is not None
    access_count = body.get("access_count", 0)
    if isinstance(access_count, bool) or not isinstance(access_count, int) or access_count < 0:
        raise _bad("access_count", f"must be an integer >= 0, got {access_count!r}")
    deleted = body.get("deleted", False)
    if not isinstance(deleted, bool):
        raise _bad("deleted", f"must be true or false, got {deleted!r}")
    return MemoryRecord(
        id=memory_id,
        data=data,
        version=version,
        created_at=created_at,
        updated_at=updated_at,
        access_count=access_count,
        last_access=_number(body, "last_access", optional=True),
        expires_at=_number(body, "expires_at", optional=True),
        deleted=deleted,
    )
