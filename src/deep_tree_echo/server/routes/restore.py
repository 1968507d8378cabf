"""``PUT /v1/restore/memories/{id}``: put back one exported record, keeping its version.

The backup half of ``GET /v1/export/memories``: each exported line (``MemoryRecord.to_dict()``)
is applied last-writer-wins to the caller's tenant, so restoring never overwrites a newer edit
and created/updated times, access counts and expiry stay as they were. Unlike the replica
routes (peers only, with the cluster key), this takes a client's own key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from deep_tree_echo.server.routes._deps import Memory, only_query
from deep_tree_echo.server.routes.memories import MemoryId
from deep_tree_echo.server.routes.replication import _ERRORS, _RECORD_SCHEMA, apply_record_body

router = APIRouter(prefix="/v1/restore", tags=["memories"],
                   dependencies=[Depends(only_query())])


@router.put(
    "/memories/{memory_id}",
    summary="Restore an exported memory record (last writer wins on its version)",
    responses={415: {"description": "not JSON"}, **_ERRORS},
    openapi_extra=_RECORD_SCHEMA,
)
async def restore_record(memory_id: MemoryId, request: Request, memory: Memory) -> dict[str, Any]:
    """``{"applied": bool, "version": <the version held afterwards>}``."""
    return await apply_record_body(memory_id, request, memory)
