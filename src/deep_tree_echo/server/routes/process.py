"""``POST /v1/process``: the seed's external request in, the external response out.

One pass per request: negotiate formats → decode → :func:`external_input` (a
:class:`CognitiveInput`) → ``gateway.answer`` → :func:`external_success` → encode. A core
failure is answered in the external shape (``success`` false) with the status
:func:`~deep_tree_echo.server.handlers.status_for` gives it; undecodable or invalid requests
are plain JSON errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.routing import APIRoute, iter_route_contexts
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

from deep_tree_echo.aar_core.cognitive import (
    MEMORY_SCOPES,
    CognitiveInput,
    CognitiveResult,
    build_input,
)
from deep_tree_echo.aar_core.errors import InvalidSessionIdError
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.aar_core.sessions import MAX_SESSION_ID, SESSION_ID_PATTERN
from deep_tree_echo.errors import EchoError
from deep_tree_echo.integration.errors import InvalidRequestError
from deep_tree_echo.server import _negotiation
from deep_tree_echo.server.handlers import error_response, status_for
from deep_tree_echo.tenants import TENANT_SCOPE_KEY

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.gateway import AARGateway

__all__ = [
    "PROCESS_PATH",
    "add_process_route",
    "answer_external",
    "bypass_exit_stack",
    "external_failure",
    "external_input",
    "external_success",
    "install_fast_path",
    "router",
    "validate_external_request",
]

PROCESS_PATH = "/v1/process"

GatewayOf = Callable[[Request], "AARGateway"]


def validate_external_request(request: Any) -> dict[str, Any]:
    """Check the external request shape; raise :class:`InvalidRequestError` naming the field.

    ``data`` (required) is a non-empty string or an object/list; ``message_type`` and
    ``source`` are strings; ``timestamp`` a string or number; ``context`` an object whose
    ``memory_scope`` is ``"session"`` or ``"tenant"``. (``session_id`` is checked where the
    input is built, by :func:`external_input`.)
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


def external_input(request: Any, *, tenant: str = DEFAULT_TENANT) -> CognitiveInput:
    """The :class:`CognitiveInput` of an external request (the seed's field mapping), for the
    caller's ``tenant`` (from its credentials, never from the body).

    Shape problems raise :class:`InvalidRequestError`; content the core refuses (empty, too
    large) raises the builder's :class:`InvalidInputError`.
    """
    request = validate_external_request(request)
    context: dict[str, Any] = {
        "external_source": request.get("source", "api"),
        "timestamp": request.get("timestamp"),
        "session_id": request.get("session_id"),
    }
    scope = (request.get("context") or {}).get("memory_scope")
    if scope is not None:
        context["memory_scope"] = scope
    try:
        return build_input(
            request["data"],
            type=request.get("message_type", "text"),
            context=context,
            tenant=tenant,
        )
    except InvalidSessionIdError as exc:  # a field of the external request
        raise InvalidRequestError(exc.message, field="session_id") from None


def external_success(result: CognitiveResult) -> dict[str, Any]:
    """The external response of an answered input: ``success``, ``data``, ``metadata``."""
    return {
        "success": True,
        "data": result.cognitive_response(),
        "metadata": {"processing_time": result.processing_time, "confidence": result.confidence},
    }


def external_failure(exc: EchoError, processing_time: float) -> dict[str, Any]:
    """The external response of a core failure (``success`` false, the ``error``)."""
    return {
        "success": False,
        "data": {},
        "metadata": {"processing_time": processing_time, "confidence": 0.0},
        "error": {"code": exc.code, "message": exc.message, "http_status": exc.http_status},
    }


async def answer_external(
    gateway: AARGateway, request: Any, *, tenant: str = DEFAULT_TENANT
) -> tuple[dict[str, Any], int]:
    """Answer one external request: ``(external response, HTTP status)``.

    :class:`InvalidRequestError` for a malformed request; core failures are in the response.
    """
    start = time.perf_counter()
    try:
        result = await gateway.answer(external_input(request, tenant=tenant))
    except InvalidRequestError:
        raise
    except EchoError as exc:
        return external_failure(exc, time.perf_counter() - start), status_for(exc)
    return external_success(result), 200


def process_endpoint(gateway_of: GatewayOf) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """The endpoint answering with the gateway ``gateway_of(request)`` returns."""

    async def process(request: Request) -> Response:
        """Negotiate formats, decode, answer, encode; errors as ``{"error": {...}}``."""
        content_type = accept = None
        for key, value in request.scope["headers"]:  # one pass, no Headers object
            if key == b"content-type":
                if content_type is None:
                    content_type = value.decode("latin-1")
            elif key == b"accept" and accept is None:
                accept = value.decode("latin-1")
        try:
            if request.scope.get("query_string"):
                raise InvalidRequestError(f"{PROCESS_PATH} takes no query parameters")
            in_format = _negotiation.request_format(content_type)
            out_format = _negotiation.response_format(accept, in_format)
            external = _negotiation.decode_request(in_format, await request.body())
            tenant = request.scope.get(TENANT_SCOPE_KEY, DEFAULT_TENANT)
            response, status = await answer_external(gateway_of(request), external,
                                                     tenant=tenant)
        except EchoError as exc:
            return error_response(exc, f"POST {PROCESS_PATH}")
        return Response(
            _negotiation.encode_response(out_format, response),
            status_code=status,
            media_type=_negotiation.MEDIA_TYPES[out_format],
        )

    return process


class RawRequestRoute(APIRoute):
    """An ``APIRoute`` whose endpoint takes the raw ``Request`` and returns a ``Response``.

    It is documented in OpenAPI and sets ``scope["route"]`` (the Prometheus label) like any
    ``APIRoute``, but skips FastAPI's per-request dependency solving (~20% of the throughput of
    an endpoint that negotiates and decodes its own body).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


class FastPathRoute(BaseRoute):
    """``POST /v1/process`` matched first, by one string comparison, and served directly.

    FastAPI matches a path by walking every included router in order (the docs and health
    routes come first) and then runs the route through per-request exit stacks and an
    exception wrapper that an endpoint without dependencies does not need: about a tenth of
    the service's cost per request. This route sits at the head of the app's table and hands
    the documented :class:`RawRequestRoute` (``scope["route"]``: metrics label it as usual)
    the request; exceptions propagate to the app's ``ExceptionMiddleware``, which applies the
    same handlers the route would have. Other methods fall through to the regular table
    (405 with ``Allow``). Not a documented route: OpenAPI and the route table ignore it.
    """

    def __init__(self, route: APIRoute) -> None:
        self.route = route
        self.path_format = route.path_format  # what FastAPI's telemetry reports as the route
        self.endpoint = route.endpoint

    def serves(self, scope: Scope) -> bool:
        """Whether this route answers ``scope`` (an HTTP ``POST`` of its path)."""
        return (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and (scope["path"] if not scope.get("root_path") else get_route_path(scope))
            == self.path_format
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.serves(scope):
            return Match.FULL, {"endpoint": self.endpoint, "path_params": {}, "route": self.route}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # the documented route answers url_path_for

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


class _ExitStackBypass:
    """FastAPI's ``AsyncExitStackMiddleware``, skipped for the :class:`FastPathRoute`.

    That middleware opens an ``AsyncExitStack`` per request (``scope["fastapi_middleware_astack"]``)
    that only FastAPI's own route handlers use, to close the files of a parsed form; the fast
    path reads no form and never looks at it. Every other request goes through it as before.
    """

    def __init__(self, exit_stack: ASGIApp, inner: ASGIApp, fast: FastPathRoute) -> None:
        self.exit_stack = exit_stack
        self.app = inner  # what the exit stack wraps: the router
        self.serves = fast.serves

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.serves(scope):
            await self.app(scope, receive, send)
        else:
            await self.exit_stack(scope, receive, send)


def bypass_exit_stack(stack: ASGIApp, app: FastAPI) -> ASGIApp:
    """``stack`` (the app's built middleware stack) with FastAPI's per-request exit stack
    skipped for the app's :class:`FastPathRoute` (unchanged without one, or when the stack
    has no ``AsyncExitStackMiddleware`` link to replace)."""
    fast = next((r for r in app.router.routes if isinstance(r, FastPathRoute)), None)
    if fast is None:
        return stack
    node: Any = stack
    while (inner := getattr(node, "app", None)) is not None:  # each middleware's next app
        if isinstance(inner, AsyncExitStackMiddleware):
            node.app = _ExitStackBypass(inner, inner.app, fast)
            break
        node = inner
    return stack


def install_fast_path(app: FastAPI) -> None:
    """Put a :class:`FastPathRoute` for the app's documented ``POST /v1/process`` at the head
    of its route table (nothing when the app has no such route)."""
    for context in iter_route_contexts(app.router.routes):
        original = context.original_route
        if isinstance(original, RawRequestRoute) and original.path == PROCESS_PATH:
            app.router.routes.insert(0, FastPathRoute(original))
            return


def add_process_route(router: APIRouter, gateway_of: GatewayOf) -> None:
    """Register ``POST /v1/process`` on ``router``: served and documented by one route."""
    router.add_api_route(
        PROCESS_PATH,
        process_endpoint(gateway_of),
        methods=["POST"],
        name="integration_process",
        summary="Process an external request through the Echo core",
        response_class=Response,
        openapi_extra=_OPENAPI_PROCESS,
        route_class_override=RawRequestRoute,
    )


def _app_gateway(request: Request) -> AARGateway:
    gateway: AARGateway = request.app.state.gateway
    return gateway


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
#: Replies (errors included) come in the negotiated format: JSON, protobuf or MessagePack.
_NEGOTIATED: dict[str, Any] = {
    "application/json": {},
    "application/x-protobuf": {},
    "application/msgpack": {},
}
_OPENAPI_PROCESS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _SCHEMA_REQUEST},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            # MessagePack carries the same data model as JSON: the same schema holds
            "application/msgpack": {"schema": _SCHEMA_REQUEST},
        },
    },
    "responses": {
        "200": {
            "description": "The external response: success, data, metadata.",
            "content": _NEGOTIATED,
        },
        "400": {
            "description": "Undecodable body, or the core rejected the input "
            "(external response with success false and error.code invalid_*, "
            "missing_content, empty_content, content_too_large, invalid_memory, query_error)",
            "content": _NEGOTIATED,
        },
        "403": {"description": "write_not_allowed (external response shape)",
                "content": _NEGOTIATED},
        "406": {"description": "No acceptable response format"},
        "415": {"description": "Unsupported Content-Type"},
        "422": {"description": "Invalid request, or an agent declined it (error.code)",
                "content": _NEGOTIATED},
        "500": {"description": "internal_error, agent_error or an undeclared failure",
                "content": _NEGOTIATED},
        "503": {
            "description": "engine_unavailable, store_error, not_initialized or "
            "database_unavailable (external response shape)",
            "content": _NEGOTIATED,
        },
    },
}


#: The service's ``POST /v1/process``, answering with ``app.state.gateway``.
router = APIRouter()
add_process_route(router, _app_gateway)
