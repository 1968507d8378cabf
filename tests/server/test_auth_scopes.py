"""The auth middleware's decision on ASGI scopes: credentials, named tenants, replica paths.

Found by mutation testing: a token containing a space, a WebSocket's ``?token=``/``?tenant=``,
a ``tenant`` query on plain HTTP (ignored), and a client key on a replica path when no cluster
key exists were not pinned. The middleware is the real one, driven with plain scope dicts.
"""

from __future__ import annotations

from typing import Any

from deep_tree_echo.server.middleware import (
    AUTH_KEY,
    PRINCIPAL_KEY,
    TENANT_KEY,
    APIKeyAuthMiddleware,
    RateLimitMiddleware,
)
from deep_tree_echo.server.principals import KeyRing, key_id


async def _never(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not called
    raise AssertionError("the decision does not call the app")


def scope(path: str = "/v1/memories", *, kind: str = "http", query: bytes | None = None,
          **headers: str) -> dict[str, Any]:
    s: dict[str, Any] = {
        "type": kind, "path": path,
        "headers": [(k.replace("_", "-").encode(), v.encode("latin-1"))
                    for k, v in headers.items()],
    }  # fmt: skip
    if query is not None:
        s["query_string"] = query
    return s


def middleware(*api_keys: str, cluster_key: str | None = None) -> APIKeyAuthMiddleware:
    ring = KeyRing.from_settings(list(api_keys), cluster_key=cluster_key)
    return APIKeyAuthMiddleware(_never, keyring=ring)


def presented(s: dict[str, Any]) -> str | None:
    """The key a request presents, as the middleware reads it."""
    return APIKeyAuthMiddleware._credentials(s)[0]


def named_tenant(s: dict[str, Any]) -> str | None:
    """The tenant a request names, as the middleware reads it."""
    return APIKeyAuthMiddleware._credentials(s)[1]


def test_the_token_is_everything_after_the_first_space() -> None:
    assert presented(scope(authorization="Bearer a b")) == "a b"
    assert presented(scope(authorization="bearer  k1 ")) == "k1"
    assert presented(scope(authorization="Basic k1")) is None
    assert presented(scope(authorization="Bearer ")) is None
    assert presented(scope(authorization="Bearerk1")) is None
    assert presented(scope()) is None


def test_websockets_may_carry_the_key_and_tenant_in_the_query() -> None:
    ws = scope("/v1/ws", kind="websocket", query=b"tenant=acme&token=k%201")
    assert presented(ws) == "k 1"
    assert named_tenant(ws) == "acme"
    empty = scope("/v1/ws", kind="websocket", query=b"token=&tenant=")
    assert presented(empty) is None
    assert named_tenant(empty) is None
    bare = scope("/v1/ws", kind="websocket")  # no query string at all
    assert presented(bare) is None
    assert named_tenant(bare) is None
    header = scope("/v1/ws", kind="websocket", query=b"tenant=acme", x_echo_tenant="ops")
    assert named_tenant(header) == "ops"  # the header wins


def test_plain_http_ignores_key_and_tenant_in_the_query() -> None:
    http = scope(query=b"token=k1&tenant=acme")
    assert presented(http) is None
    assert named_tenant(http) is None


def test_a_client_key_on_a_replica_path_without_a_cluster_key_is_an_ordinary_request() -> None:
    auth = middleware("acme:k1")
    s = scope("/v1/replica/records/x", authorization="Bearer k1")
    assert auth._decide(s) is None  # no replica routes exist: the router answers 404 later
    assert (s[TENANT_KEY], s[PRINCIPAL_KEY], s[AUTH_KEY].role) == ("acme", key_id("k1"), "user")


def test_replica_paths_take_only_the_cluster_key_once_one_is_configured() -> None:
    auth = middleware("acme:k1", cluster_key="peer")
    replica = "/v1/replica/records/x"
    assert auth._decide(scope(replica, authorization="Bearer k1")) == (
        403, "forbidden", "replica routes accept only the cluster key")
    assert auth._decide(scope(replica)) == (401, "unauthorized", "missing or invalid cluster key")
    s = scope(replica, authorization="Bearer peer", x_echo_tenant="globex")
    assert auth._decide(s) is None
    assert (s[TENANT_KEY], s[AUTH_KEY].role) == ("globex", "cluster")
    assert auth._decide(scope("/v1/memories", authorization="Bearer peer")) == (
        403, "forbidden", "the cluster key is for replica routes only")
    assert auth._decide(scope("/v1/replicas", authorization="Bearer k1")) is None  # not a prefix


async def test_lifespan_and_paths_outside_the_limit_pass_through_untouched() -> None:
    received: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(await receive())
        await send({"type": f"{scope['type']}.done"})

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    stack = APIKeyAuthMiddleware(RateLimitMiddleware(app, limiter=None),
                                 keyring=KeyRing.from_settings(["k1"]))
    await stack({"type": "lifespan"}, receive, send)
    await RateLimitMiddleware(app, limiter=None)(scope("/metrics"), receive, send)
    assert received == [{"type": "lifespan.startup"}] * 2
    assert sent == [{"type": "lifespan.done"}, {"type": "http.done"}]


def test_exact_decisions_for_tenants_and_missing_headers() -> None:
    auth = middleware("acme:k1", cluster_key="peer")
    peer = scope("/v1/replica/records/x", authorization="Bearer peer")
    assert auth._decide(peer) is None
    assert (peer[TENANT_KEY], peer[PRINCIPAL_KEY]) == ("default", key_id("peer"))
    bad = scope("/v1/replica/records/x", authorization="Bearer peer", x_echo_tenant="no/pe")
    status, code, _ = auth._decide(bad) or (0, "", "")
    assert (status, code) == (400, "invalid_tenant")
    assert auth._decide(scope(authorization="Bearer k1", x_echo_tenant="globex")) == (
        403, "forbidden", "this key may act on its own tenant only")
    no_headers = {"type": "http", "path": "/v1/memories"}
    assert presented(no_headers) is None
    assert auth._decide(no_headers) == (401, "unauthorized", "missing or invalid API key")
    cluster_only = middleware(cluster_key="peer")
    open_scope = scope()
    assert cluster_only._decide(open_scope) is None  # no client keys: one tenant, no auth
    assert open_scope[TENANT_KEY] == "default"
