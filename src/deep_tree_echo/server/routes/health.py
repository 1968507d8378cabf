"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from deep_tree_echo import __version__
from deep_tree_echo._http import error_body

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: 200 whenever the process is up")
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz",
    summary="Readiness: 200 once the gateway is initialised, else 503",
    responses={503: {"description": "gateway not initialised"}},
)
async def readyz(request: Request) -> Response:
    gateway = request.app.state.gateway
    if not gateway.initialized:
        return JSONResponse(
            error_body("not_ready", "the gateway is not initialised yet"), status_code=503
        )
    return JSONResponse(
        {
            "status": "ready",
            "node_id": gateway.node_id,
            "store": gateway.settings.store_kind,
            "engine": gateway.engine.name,
        }
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    render = request.app.state.render_metrics
    body, content_type = render()
    return Response(body, media_type=content_type)
