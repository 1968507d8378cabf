"""``/v1/memories``: put, get, delete and ranked search of the caller's tenant's memories."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from deep_tree_echo.aar_core.ids import MEMORY_ID
from deep_tree_echo.aar_core.memory.manager import MAX_ID_LENGTH, parse_filter_value
from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.integration.errors import DecodeError
from deep_tree_echo.server import _negotiation
from deep_tree_echo.server.routes._deps import Memory, only_query

router = APIRouter(prefix="/v1", tags=["memories"])

_RESERVED_QUERY = frozenset({"query", "limit", "token", "include_questions"})
#: The schema's name of the exploded filters object: never itself a field filter (400), so
#: ``?filters=x`` means the same to the server as to a schema-driven client (not an object).
_FILTERS = "filters"
_JSON_ONLY: tuple[_negotiation.Format, ...] = ("json",)
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed id, body or query parameter"},
    404: {"description": "no such memory"},
    503: {"description": "gateway not ready or store unavailable"},
}
#: What ``validate_memory_id`` accepts (:data:`~deep_tree_echo.aar_core.ids.MEMORY_ID`):
#: documented here, enforced by the manager with a 400 ``invalid_memory``.
MEMORY_ID_PATTERN = MEMORY_ID.pattern
MemoryId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, description="memory id",
         json_schema_extra={"pattern": MEMORY_ID_PATTERN}),
]

#: The search's free-form filters, stated so that a schema-driven client knows any other
#: query parameter is a filter (form style, exploded: ``?lang=en&importance=0.7``).
_FILTERS_PARAMETER: dict[str, Any] = {
    "name": "filters",
    "in": "query",
    "required": False,
    "style": "form",
    "explode": True,
    "description": "field=value filters on top-level data fields (every other query parameter)",
    "schema": {
        "type": "object",
        "propertyNames": {"not": {"enum": sorted({*_RESERVED_QUERY, _FILTERS})}},
        "additionalProperties": {"type": "string"},
    },
}

_DATA_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": True,
                    "example": {"content": "the sky is blue", "importance": 0.7},
                }
            }
        },
    }
}


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object: 415 for other media types, 400 when malformed."""
    _negotiation.request_format(request.headers.get("content-type"), allowed=_JSON_ONLY)
    data = _negotiation.decode_json(await request.body(), what="request body is not valid JSON")
    if not isinstance(data, dict):
        raise DecodeError(f"memory data must be a JSON object, not {type(data).__name__}")
    return data


@router.put(
    "/memories/{memory_id}",
    summary="Create or replace a memory (durable when acknowledged)",
    status_code=200,
    responses={201: {"description": "created"}, 415: {"description": "not JSON"}, **_ERRORS},
    openapi_extra=_DATA_SCHEMA,
    dependencies=[Depends(only_query("ttl"))],
)
async def put_memory(
    memory_id: MemoryId,
    request: Request,
    memory: Memory,
    ttl: Annotated[float | None, Query(gt=0, description="seconds until it expires")] = None,
) -> JSONResponse:
    data = await _json_object(request)
    record, created = await memory.upsert(memory_id, data, ttl=ttl)
    return JSONResponse(record.to_dict(), status_code=201 if created else 200)


@router.get("/memories/{memory_id}", summary="Read one memory with its metadata", responses=_ERRORS,
            dependencies=[Depends(only_query())])
async def get_memory(memory_id: MemoryId, memory: Memory) -> dict[str, Any]:
    record = await memory.get_record(memory_id)
    if record is None:
        raise HTTPException(404, f"memory {memory_id!r} not found")
    return record.to_dict()


@router.delete(
    "/memories/{memory_id}", summary="Delete a memory", status_code=204, responses=_ERRORS,
    dependencies=[Depends(only_query())],
)
async def delete_memory(memory_id: MemoryId, memory: Memory) -> Response:
    if not await memory.delete_memory(memory_id):
        raise HTTPException(404, f"memory {memory_id!r} not found")
    return Response(status_code=204)


@router.get(
    "/memories",
    summary="Ranked search; other query parameters filter on top-level data fields",
    description=(
        "Every query parameter other than `query`, `limit` and `token` keeps memories whose "
        "top-level data field equals it. Values that are JSON numbers, `true`/`false` or "
        "`null` match that value (`importance=0.7` matches the number 0.7); anything else "
        "matches the string. Questions told to the echo agent (`is_question: true`) are left "
        "out unless `include_questions=true` (or an `is_question` filter) asks for them. "
        "Fields named `query`, `limit`, `token`, `include_questions` or `filters` cannot be "
        "filtered on (`filters` is refused with 400)."
    ),
    responses=_ERRORS,
    openapi_extra={"parameters": [_FILTERS_PARAMETER]},
)
async def search_memories(
    request: Request,
    memory: Memory,
    query: Annotated[str, Query(max_length=10_000)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    include_questions: Annotated[
        bool, Query(description="also return questions asked to the echo agent")
    ] = False,
) -> dict[str, Any]:
    if _FILTERS in request.query_params:
        raise InvalidInputError(
            "'filters' is not a field filter: name each field (?lang=en&importance=0.7)",
            code="invalid_parameter",
        )
    filters = {
        k: parse_filter_value(v)
        for k, v in request.query_params.items()
        if k not in _RESERVED_QUERY
    }
    exclude = None if include_questions or "is_question" in filters else {"is_question": True}
    results = await memory.search_where(query, limit, filters, exclude)
    return {
        "query": query,
        "filters": filters,
        "count": len(results),
        "results": [r.to_dict() for r in results],
    }


@router.get(
    "/export/memories",
    summary="Every live memory as JSON lines of MemoryRecord.to_dict()",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
    dependencies=[Depends(only_query())],
)
async def export_memories(memory: Memory) -> StreamingResponse:
    records = memory.records()

    async def lines() -> AsyncIterator[bytes]:
        async for record in records:
            yield (json.dumps(record.to_dict(), ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")
