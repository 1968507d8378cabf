"""The gateway pattern: one entry point through which an external system talks to Echo.

:class:`IntegrationGateway` owns (or shares) an :class:`AARGateway`; subclasses implement
``initialize`` and ``process_external_request``. :class:`APIIntegrationGateway` is the REST
flavour: it maps the external request/response shapes to and from the Echo format and serves
them as ``POST /v1/process`` on a FastAPI router, in JSON, Protocol Buffers or MessagePack.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from deep_tree_echo._http import error_body, retry_after_header
from deep_tree_echo.aar_core.sessions import (
    MAX_SESSION_ID,
    SESSION_ID_PATTERN,
    validate_session_id,
)
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.errors import EchoError, InvalidInputError
from deep_tree_echo.integration import _negotiation
from deep_tree_echo.integration.errors import InvalidRequestError
from deep_tree_echo.tenants import DEFAULT_TENANT, MEMORY_SCOPES, TENANT_SCOPE_KEY

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


def validate_external_request(request: Any) -> dict[str, Any]:
    """Check the external request shape; raise :class:`InvalidRequestError` naming the field.

    ``data`` (required) is a non-empty string or an object/list; ``message_type`` and
    ``source`` are strings; ``session_id`` a non-empty string; ``timestamp`` a string or number;
    ``context`` an object whose ``memory_scope`` is ``"session"`` or ``"tenant"``.
    """
    if not isinstance(request, Mapping):
        raise InvalidRequestError(f"request must be an object, not {type(request).__name__}")
    for key in ("message_type", "source"):
        value = request.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidRequestError(f"'{key}' must be a non-empty string", field=key)
    data = request.get("data")
    if data is None:
        raise InvalidRequestError("'data' is required", field="data")
    if isinstance(data, str):
        if not data.strip():
            raise InvalidRequestError("'data' must not be empty", field="data")
    elif not isinstance(data, Mapping | list):
        raise InvalidRequestError(
            f"'data' must be a string or an object, not {type(data).__name__}", field="data"
        )
    session_id = request.get("session_id")
    if session_id is not None:
        try:
            validate_session_id(session_id)
        except InvalidInputError as exc:
            raise InvalidRequestError(exc.message, field="session_id") from None
    context = request.get("context")
    if context is not None:
        if not isinstance(context, Mapping):
            raise InvalidRequestError("'context' must be an object", field="context")
        scope = context.get("memory_scope")
        if scope is not None and scope not in MEMORY_SCOPES:
            raise InvalidRequestError(
                f"'context.memory_scope' must be one of {', '.join(MEMORY_SCOPES)}",
                field="context.memory_scope",
            )
    timestamp = request.get("timestamp")
    if timestamp is not None and (
        isinstance(timestamp, bool) or not isinstance(timestamp, str | int | float)
    ):
        raise InvalidRequestError("'timestamp' must be a string or a number", field="timestamp")
    return dict(request)


class APIIntegrationGateway(IntegrationGateway):
    """Gateway for REST API integrations: ``POST /v1/process`` on :attr:`router`."""

    #: Path of the processing endpoint on :attr:`router`.
    process_path = "/v1/process"

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
        self._router.add_api_route(
            self.process_path,
            self._process_endpoint,
            methods=["POST"],
            name="integration_process",
            summary="Process an external request through the Echo core",
            response_class=Response,
            openapi_extra=_OPENAPI_PROCESS,
        )

    async def process_external_request(
        self, request: dict[str, Any], *, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        # Check the external shape first so a bad request is a clear error, not a KeyError
        request = validate_external_request(request)
        # Transform external request to Echo format
        echo_request = self.transform_to_echo_format(request)

        # Process through Echo system, for the caller's tenant (from its key, not the body)
        result = await self.aar_gateway.process_cognitive_input(echo_request, tenant=tenant)

        # Transform Echo response to external format
        return self.transform_from_echo_format(result)

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

    async def _process_endpoint(self, request: Request) -> Response:
        """Negotiate formats, decode, process, encode; errors as ``{"error": {...}}``."""
        content_type = accept = None
        for key, value in request.scope["headers"]:  # one pass, no Headers object
            if key == b"content-type":
                if content_type is None:
                    content_type = value.decode("latin-1")
            elif key == b"accept" and accept is None:
                accept = value.decode("latin-1")
        try:
            if request.scope.get("query_string"):
                raise InvalidRequestError("/v1/process takes no query parameters")
            in_format = _negotiation.request_format(content_type)
            out_format = _negotiation.response_format(accept, in_format)
            external = _negotiation.decode_request(in_format, await request.body())
            tenant = request.scope.get(TENANT_SCOPE_KEY, DEFAULT_TENANT)
            result = await self.process_external_request(external, tenant=tenant)
        except EchoError as exc:
            return _error_response(exc)
        return Response(
            _negotiation.encode_response(out_format, result),
            status_code=result_status(result),
            media_type=_negotiation.MEDIA_TYPES[out_format],
        )


def result_status(result: Mapping[str, Any]) -> int:
    """The HTTP status of an external response: 200 on success, else ``error.http_status``.

    The core puts the status the failing :class:`EchoError` declares into its error
    (400 invalid input, 503 store/engine unavailable, 422 an agent declined...); 500 when
    the error says nothing.
    """
    if result.get("success"):
        return 200
    error = result.get("error")
    status = error.get("http_status") if isinstance(error, Mapping) else None
    return status if isinstance(status, int) and 400 <= status <= 599 else 500


def _error_response(exc: EchoError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message),
        status_code=exc.http_status,
        headers=retry_after_header(exc),
    )


_NON_BLANK = {"type": ["string", "null"], "pattern": r"\S"}
_SCHEMA_REQUEST = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "message_type": {**_NON_BLANK, "default": "text"},
        "data": {"oneOf": [{"type": "string", "pattern": r"\S", "maxLength": 100_000},
                           {"type": "object"}, {"type": "array"}]},
        "source": {**_NON_BLANK, "default": "api"},
        "timestamp": {"type": ["string", "number", "null"]},
        "session_id": {"type": ["string", "null"], "maxLength": MAX_SESSION_ID,
                       "pattern": SESSION_ID_PATTERN},
        "context": {
            "type": ["object", "null"],
            "properties": {"memory_scope": {"enum": [*MEMORY_SCOPES, None], "default": "session",
                                            "description": "session: this session's memories "
                                            "and the tenant's shared ones; tenant: all of the "
                                            "tenant's"}},
        },
    },
    "example": {"message_type": "text", "data": "what is the vault code?",
                "session_id": "demo", "context": {"memory_scope": "session"}},
}
_OPENAPI_PROCESS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _SCHEMA_REQUEST},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {
        "200": {
            "description": "The external response: success, data, metadata.",
            "content": {
                "application/json": {},
                "application/x-protobuf": {},
                "application/msgpack": {},
            },
        },
        "400": {
            "description": "Undecodable body, or the core rejected the input "
            "(external response with success false and error.code invalid_*, "
            "missing_content, empty_content, content_too_large, invalid_memory, query_error)"
        },
        "403": {"description": "write_not_allowed (external response shape)"},
        "406": {"description": "No acceptable response format"},
        "415": {"description": "Unsupported Content-Type"},
        "422": {"description": "Invalid request, or an agent declined it (error.code)"},
        "500": {"description": "internal_error, agent_error or an undeclared failure"},
        "503": {
            "description": "engine_unavailable, store_error, not_initialized or "
            "database_unavailable (external response shape)"
        },
    },
}
