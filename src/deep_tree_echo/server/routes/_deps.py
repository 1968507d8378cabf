"""Shared request dependencies: the gateway from ``app.state``, refusing while not ready."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.server.errors import NotReadyError


def ready_gateway(request: Request) -> AARGateway:
    """The app's gateway once initialised; 503 ``not_ready`` before (or during shutdown)."""
    gateway: AARGateway = request.app.state.gateway
    if not gateway.initialized:
        raise NotReadyError("the gateway is not initialised yet")
    return gateway


Gateway = Annotated[AARGateway, Depends(ready_gateway)]
