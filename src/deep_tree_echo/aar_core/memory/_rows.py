"""SQL row -> :class:`MemoryRecord`, shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version


def row_to_record(row: Sequence[Any]) -> MemoryRecord:
    """A record from the columns ``id, version, data, created_at, updated_at, access_count,
    last_access, expires_at, deleted, extra`` (``data``/``extra`` JSON text, version text)."""
    (rid, version, data, created, updated, count, last, expires, deleted, extra) = row
    return MemoryRecord(
        id=rid,
        data=json.loads(data),
        version=Version.parse(version),
        created_at=created,
        updated_at=updated,
        access_count=count,
        last_access=last,
        expires_at=expires,
        deleted=bool(deleted),
        extra=json.loads(extra) if extra else {},
    )
