"""Shared request dependencies: the gateway from ``app.state`` (refusing while not ready) and
the memory of the caller's tenant (set on the scope by the auth middleware)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.aar_core.memory.tenancy import TenantMemory
from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.server.errors import NotReadyError
from deep_tree_echo.tenants import DEFAULT_TENANT, TENANT_SCOPE_KEY


def ready_gateway(request: Request) -> AARGateway:
    """The app's gateway once initialised; 503 ``not_ready`` before (or during shutdown)."""
    gateway: AARGateway = request.app.state.gateway
    if not gateway.initialized:
        raise NotReadyError("the gateway is not initialised yet")
    return gateway


Gateway = Annotated[AARGateway, Depends(ready_gateway)]


def request_tenant(request: Request) -> str:
    """The tenant the request acts on: its key's (or the one an admin named); ``default``
    with auth off."""
    tenant: str = request.scope.get(TENANT_SCOPE_KEY, DEFAULT_TENANT)
    return tenant


def tenant_memory(request: Request, gateway: Gateway) -> TenantMemory:
    """The caller's tenant's memory: other tenants' memories do not exist through it."""
    return gateway.memory_for(request_tenant(request))


Memory = Annotated[TenantMemory, Depends(tenant_memory)]


def only_query(*names: str) -> Callable[[Request], None]:
    """A dependency refusing query parameters other than ``names`` (400 ``unknown_parameter``):
    the schema lists every parameter a route takes, and the server holds callers to it."""
    allowed = frozenset(names)

    def check(request: Request) -> None:
        unknown = sorted({k for k in request.query_params if k not in allowed})
        if unknown:
            raise InvalidInputError(
                f"unknown query parameter {unknown[0][:80]!r}", code="unknown_parameter"
            )

    return check
