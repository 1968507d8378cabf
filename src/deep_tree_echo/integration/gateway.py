"""The gateway pattern (the seed's classes): one entry point for an external system.

:class:`IntegrationGateway` owns (or shares) an :class:`AARGateway`; subclasses implement
``initialize`` and ``process_external_request``. :class:`APIIntegrationGateway` is the REST
flavour, a thin shim over the served code: its router is ``POST /v1/process`` from
:mod:`deep_tree_echo.server.routes.process`, bound to this gateway's Echo core.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from deep_tree_echo.config import EchoSettings
from deep_tree_echo.integration.errors import InvalidRequestError
from deep_tree_echo.server.routes.process import (
    PROCESS_PATH,
    add_process_route,
    answer_external,
    validate_external_request,
)
from deep_tree_echo.tenants import DEFAULT_TENANT

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.gateway import AARGateway

__all__ = ["APIIntegrationGateway", "IntegrationGateway", "validate_external_request"]


class IntegrationGateway(ABC):
    """Base class for all integration gateways.

    ``config`` is a dict (or :class:`EchoSettings`); the Echo core is ``aar_gateway``: the one
    passed as ``aar_gateway=`` (shared, never cleaned up here) or ``AARGateway(config)``,
    created on first use and owned by this gateway.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | EchoSettings | None = None,
        *,
        aar_gateway: AARGateway | None = None,
    ) -> None:
        self._echo_config = config
        if isinstance(config, EchoSettings):
            self.config: dict[str, Any] = config.model_dump()
        else:
            self.config = dict(config or {})
        self._aar_gateway = aar_gateway
        self._owns_aar_gateway = False
        self.active_connections: dict[str, Any] = {}
        self.logger = logging.getLogger(f"deep_tree_echo.integration.{type(self).__name__}")
        self.initialized = False

    @property
    def aar_gateway(self) -> AARGateway:
        """The Echo core this gateway talks to (created from ``config`` on first access)."""
        if self._aar_gateway is None:
            from deep_tree_echo.aar_core.gateway import AARGateway

            self._aar_gateway = AARGateway(self._echo_config)
            self._owns_aar_gateway = True
        return self._aar_gateway

    @aar_gateway.setter
    def aar_gateway(self, gateway: AARGateway) -> None:
        self._aar_gateway = gateway
        self._owns_aar_gateway = False

    @property
    def has_aar_gateway(self) -> bool:
        """Whether a gateway was given or already created (so binding another is refused)."""
        return self._aar_gateway is not None

    @abstractmethod
    async def initialize(self) -> None:
        """Initialize the gateway and its connections."""

    @abstractmethod
    async def process_external_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Process one request from an external system and return the external response."""

    def setup_api_endpoints(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Hook for subclasses that expose endpoints; the default does nothing.

        The seed's subclasses call it from ``initialize()`` without always defining it.
        """

    async def connect_to_echo_system(self) -> bool:
        """Initialize the Echo core; ``False`` (and a logged error) if that fails."""
        try:
            await self.aar_gateway.initialize()
            return True
        except Exception as e:
            self.logger.error(f"Failed to connect to Echo system: {e}")
            return False

    async def shutdown(self) -> None:
        """Drop connections; clean up the Echo core only if this gateway created it."""
        self.active_connections.clear()
        if self._owns_aar_gateway and self._aar_gateway is not None:
            await self._aar_gateway.cleanup()
        self.initialized = False


class APIIntegrationGateway(IntegrationGateway):
    """Gateway for REST API integrations: ``POST /v1/process`` on :attr:`router`."""

    #: Path of the processing endpoint on :attr:`router`.
    process_path = PROCESS_PATH

    def __init__(
        self,
        config: Mapping[str, Any] | EchoSettings | None = None,
        *,
        aar_gateway: AARGateway | None = None,
    ) -> None:
        super().__init__(config, aar_gateway=aar_gateway)
        self._router = APIRouter()
        self._endpoints_mounted = False

    @property
    def router(self) -> APIRouter:
        """The FastAPI router serving this gateway (``app.include_router(gw.router)``)."""
        self.setup_api_endpoints()
        return self._router

    async def initialize(self) -> None:
        await self.connect_to_echo_system()
        self.setup_api_endpoints()
        self.initialized = True

    def setup_api_endpoints(self) -> None:
        """Mount ``POST /v1/process`` on the router (once; later calls do nothing)."""
        if self._endpoints_mounted:
            return
        self._endpoints_mounted = True
        add_process_route(self._router, self._aar_gateway_of)

    def _aar_gateway_of(self, request: Request) -> AARGateway:
        return self.aar_gateway

    async def process_external_request(
        self, request: dict[str, Any], *, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        """The external response for ``request``, for the caller's ``tenant`` (from its key,
        never from the body); :class:`InvalidRequestError` if malformed.

        Core failures come back in the response (``success`` false, ``error``), not raised.
        """
        response, _status = await answer_external(self.aar_gateway, request, tenant=tenant)
        return response

    def transform_to_echo_format(self, request: dict[str, Any]) -> dict[str, Any]:
        """Transform external request format to Echo internal format."""
        if not isinstance(request, Mapping):
            raise InvalidRequestError(f"request must be an object, not {type(request).__name__}")
        echo: dict[str, Any] = {
            "type": request.get("message_type", "text"),
            "content": request.get("data", ""),
            "context": {
                "external_source": request.get("source", "api"),
                "timestamp": request.get("timestamp"),
                "session_id": request.get("session_id"),
            },
        }
        context = request.get("context")
        if isinstance(context, Mapping) and context.get("memory_scope") is not None:
            echo["context"]["memory_scope"] = context["memory_scope"]
        return echo

    def transform_from_echo_format(self, echo_response: dict[str, Any]) -> dict[str, Any]:
        """Transform Echo response to external format (plus ``error`` when it failed)."""
        response: dict[str, Any] = {
            "success": echo_response.get("status") == "success",
            "data": echo_response.get("cognitive_response", {}),
            "metadata": {
                "processing_time": echo_response.get("processing_time"),
                "confidence": echo_response.get("confidence", 0.0),
            },
        }
        if not response["success"] and echo_response.get("error") is not None:
            response["error"] = echo_response["error"]
        return response
