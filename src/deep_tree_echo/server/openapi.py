"""The OpenAPI document says what the server enforces: auth, tenants, ids, bodies and errors.

FastAPI derives most of the schema from the routes; this module completes it once, when the
document is first asked for: the bearer security schemes (so ``/docs`` can send a key), the
``X-Echo-Tenant`` header, the error body and every error status an operation can answer, and
the shapes of the JSON responses. A route added without its errors still gets the ones the
middleware produces (401/403/429/413/500/503), so the fuzz test keeps the two in step.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from deep_tree_echo.server.principals import KeyRing
from deep_tree_echo.tenants import MAX_TENANT_LENGTH, TENANT_PATTERN

ERROR_REF = {"$ref": "#/components/schemas/Error"}
RECORD_REF = {"$ref": "#/components/schemas/MemoryRecord"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    },
    "MemoryRecord": {
        "type": "object",
        "required": ["id", "data", "version", "created_at", "updated_at", "access_count",
                     "last_access", "expires_at", "deleted"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "data": {"type": "object"},
            "version": {"type": "string", "example": "0001732700000000-00000-node-a"},
            "created_at": {"type": "number"},
            "updated_at": {"type": "number"},
            "access_count": {"type": "integer", "minimum": 0},
            "last_access": {"type": ["number", "null"]},
            "expires_at": {"type": ["number", "null"]},
            "deleted": {"type": "boolean"},
        },
    },
    "SearchResults": {
        "type": "object",
        "required": ["query", "filters", "count", "results"],
        "properties": {
            "query": {"type": "string"},
            "filters": {"type": "object"},
            "count": {"type": "integer", "minimum": 0},
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "data", "score", "breakdown"],
                    "properties": {
                        "id": {"type": "string"},
                        "data": {"type": "object"},
                        "score": {"type": "number"},
                        "breakdown": {"type": "object"},
                    },
                },
            },
        },
    },
}

_DESCRIPTIONS = {
    "400": "Malformed input or an invalid X-Echo-Tenant (error.code names the problem)",
    "401": "Missing or invalid credential (WWW-Authenticate: Bearer)",
    "403": "The credential may not do this: another tenant, or the wrong kind of key",
    "404": "Not found (another tenant's ids do not exist for this caller)",
    "405": "Method not allowed (Allow lists the methods of the path)",
    "413": "Request body larger than max_body_bytes",
    "415": "Unsupported Content-Type",
    "422": "A parameter failed validation (error.details.fields name them)",
    "429": "Rate limited (Retry-After)",
    "500": "Internal error",
    "503": "Gateway not ready, or the store or engine is unavailable",
}

_RESPONSE_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/memories/{memory_id}", "get"): RECORD_REF,
    ("/v1/memories/{memory_id}", "put"): RECORD_REF,
    ("/v1/memories", "get"): {"$ref": "#/components/schemas/SearchResults"},
    ("/v1/replica/records/{memory_id}", "get"): RECORD_REF,
    ("/v1/replica/records/{memory_id}", "put"): {
        "type": "object",
        "required": ["applied", "version"],
        "properties": {"applied": {"type": "boolean"}, "version": {"type": "string"}},
    },
}

PUBLIC = ("/healthz", "/readyz")


def _error_statuses(path: str, method: str, op: dict[str, Any], *, auth: bool,
                    cluster: bool, limited: bool, metrics_public: bool) -> set[str]:
    """The error statuses ``op`` can answer, from the middleware and the route itself."""
    statuses = {"500"}
    public = path in PUBLIC or (path == "/metrics" and metrics_public)
    replica = path.startswith("/v1/replica/")
    if not public and (auth or (replica and cluster)):
        statuses |= {"401", "403"}
    if auth and not public and not replica:
        statuses.add("400")  # X-Echo-Tenant
    if path.startswith("/v1/"):
        statuses.add("503")
        if limited:
            statuses.add("429")
    if op.get("parameters"):
        statuses.add("422")
    if "requestBody" in op:
        statuses |= {"400", "413", "422"}
    return statuses


def _complete(schema: dict[str, Any], *, auth: bool, cluster: bool, limited: bool,
              metrics_public: bool) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer",
                   "description": "A client key (user or admin of a tenant)"},
        "clusterKey": {"type": "http", "scheme": "bearer",
                       "description": "DTE_CLUSTER_KEY: peers on /v1/replica only"},
    }
    tenant_header = {
        "name": "X-Echo-Tenant",
        "in": "header",
        "required": False,
        "description": "Act on this tenant (admin keys; a user key may name only its own)",
        "schema": {"type": "string", "pattern": TENANT_PATTERN, "maxLength": MAX_TENANT_LENGTH},
    }
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or method not in {"get", "put", "post", "delete",
                                                         "patch", "head", "options"}:
                continue
            public = path in PUBLIC or (path == "/metrics" and metrics_public)
            replica = path.startswith("/v1/replica/")
            if replica and cluster:
                op["security"] = [{"clusterKey": []}]
            elif auth and not public:
                op["security"] = [{"apiKey": []}]
                if path.startswith("/v1/"):
                    op.setdefault("parameters", []).append(dict(tenant_header))
            else:
                op["security"] = []
            responses = op.setdefault("responses", {})
            shape = _RESPONSE_SCHEMAS.get((path, method))
            if shape is not None:
                for status, response in responses.items():
                    if status.startswith("2") and status != "204":
                        response["content"] = {"application/json": {"schema": shape}}
            for status in sorted(_error_statuses(path, method, op, auth=auth, cluster=cluster,
                                                 limited=limited,
                                                 metrics_public=metrics_public)):
                responses.setdefault(status, {"description": _DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status[0] in "45":
                    response.setdefault("description", _DESCRIPTIONS.get(status, "error"))
                    content = response.setdefault("content", {})
                    content.setdefault("application/json", {}).setdefault("schema", ERROR_REF)
    return schema


def install_openapi(app: FastAPI, keyring: KeyRing, *, limited: bool,
                    metrics_public: bool) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary,
                description=app.description, routes=app.routes,
            )
            app.openapi_schema = _complete(
                schema, auth=keyring.clients_configured, cluster=keyring.cluster_configured,
                limited=limited, metrics_public=metrics_public,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
