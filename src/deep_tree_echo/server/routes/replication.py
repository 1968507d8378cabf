"""``/v1/replica/records``: the internal, version-preserving replication API between nodes.

Peers exchange whole :class:`MemoryRecord`\\ s (``to_dict()`` JSON) with their version, so every
replica of a memory holds the same version and applies writes last-writer-wins
(``MemoryManager.apply_remote``). Reads include tombstones, which is what read repair compares.
The routes live under ``/v1``: API-key auth, the rate limit and the body cap apply to them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from deep_tree_echo.aar_core.memory.manager import MAX_ID_LENGTH
from deep_tree_echo.aar_core.memory.record import parse_record
from deep_tree_echo.aar_core.memory.tenancy import TenantMemory
from deep_tree_echo.integration.errors import DecodeError
from deep_tree_echo.server import _negotiation
from deep_tree_echo.server.routes._deps import Memory, only_query
from deep_tree_echo.server.routes.memories import MEMORY_ID_PATTERN, MemoryId

#: ``Version.to_str`` text as ``parse_version`` accepts it.
VERSION_PATTERN = r"^[0-9]{1,16}-[0-9]{1,5}-[^\x00-\x1f\x7f]{1,256}(?![\s\S])"

router = APIRouter(prefix="/v1/replica", tags=["replication"],
                   dependencies=[Depends(only_query())])

_JSON_ONLY: tuple[_negotiation.Format, ...] = ("json",)
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed record (the error names the field) or id mismatch"},
    503: {"description": "gateway not ready or store unavailable"},
}
_RECORD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data", "version", "created_at", "updated_at"],
                    "properties": {
                        "id": {"type": "string", "minLength": 1, "readOnly": True,
                               "maxLength": MAX_ID_LENGTH, "pattern": MEMORY_ID_PATTERN,
                               "description": "the path's id (optional; must match it)"},
                        "data": {"type": "object"},
                        "version": {"type": "string", "pattern": VERSION_PATTERN,
                                    "example": "0001732700000000-00000-node-a"},
                        "created_at": {"type": "number"},
                        "updated_at": {"type": "number"},
                        "access_count": {"type": "integer", "minimum": 0},
                        "last_access": {"type": ["number", "null"]},
                        "expires_at": {"type": ["number", "null"]},
                        "deleted": {"type": "boolean"},
                    },
                }
            }
        },
    }
}


@router.put(
    "/records/{memory_id}",
    summary="Apply a record replicated from another node (last writer wins on its version)",
    responses={415: {"description": "not JSON"}, **_ERRORS},
    openapi_extra=_RECORD_SCHEMA,
)
async def put_record(memory_id: MemoryId, request: Request, memory: Memory) -> dict[str, Any]:
    """``{"applied": bool, "version": <the version this node holds afterwards>}``."""
    return await apply_record_body(memory_id, request, memory)


async def apply_record_body(
    memory_id: str, request: Request, memory: TenantMemory
) -> dict[str, Any]:
    """Parse the request's record (``to_dict()`` JSON), apply it last-writer-wins to
    ``memory`` and say whether it was applied and which version is held afterwards."""
    _negotiation.request_format(request.headers.get("content-type"), allowed=_JSON_ONLY)
    body = _negotiation.decode_json(await request.body(), what="request body is not valid JSON")
    if isinstance(body, dict):
        body.setdefault("id", memory_id)  # the path names the record
        count = body.get("access_count")
        if isinstance(count, float) and count.is_integer():  # JSON: 3.0 is the integer 3
            body["access_count"] = int(count)
    record = parse_record(body)
    if record.id != memory_id:
        raise DecodeError(
            f"record id {record.id!r} does not match the path id {memory_id!r}", field="id"
        )
    applied = await memory.apply_remote(record)
    stored = await memory.get_record(memory_id, include_deleted=True)
    version = stored.version if stored is not None else record.version
    return {"applied": applied, "version": version.to_str()}


@router.get(
    "/records/{memory_id}",
    summary="The record this node holds, tombstones and expired records included",
    responses={404: {"description": "this node never saw the id"}, **_ERRORS},
)
async def get_record(memory_id: MemoryId, memory: Memory) -> dict[str, Any]:
    record = await memory.get_record(memory_id, include_deleted=True)
    if record is None:
        raise HTTPException(404, f"no record of {memory_id!r} on this node")
    return record.to_dict()
