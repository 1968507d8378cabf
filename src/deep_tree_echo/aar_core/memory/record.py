"""The stored form of a memory: the caller's data plus bookkeeping and a version stamp.

The version is a hybrid logical clock stamp ``(wall_ms, logical, node_id)``. Versions are
totally ordered, so any replica can apply last-writer-wins by comparing them, and a delete
is a tombstone record with a newer version (never a physical removal), which is what
replication, hinted handoff and read repair will need later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
