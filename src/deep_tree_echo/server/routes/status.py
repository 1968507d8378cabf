"""``GET /v1/status``: breakers, limiters, integrations, alerts, store and NATS in one JSON."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from deep_tree_echo.observability import monitor as default_monitor
from deep_tree_echo.server._status import StatusResponse, gather_status
from deep_tree_echo.server.routes._deps import only_query, request_tenant

router = APIRouter(prefix="/v1", tags=["status"])


@router.get(
    "/status",
    summary="Health of the integrations: breakers, limiters, monitor, alerts, store, NATS",
    response_model=StatusResponse,
    dependencies=[Depends(only_query())],
)
async def status(request: Request) -> StatusResponse:
    """What the console's Health view polls; read-only and cheap (no store round trip
    beyond counting the caller's tenant's memories)."""
    return await gather_status(request.app.state, default_monitor, request_tenant(request))
