"""The app's route table, flattened: every HTTP and WebSocket route with its path and methods.

FastAPI keeps included routers as nested entries, so ``app.router.routes`` alone does not list
the API routes; :func:`route_table` walks them with FastAPI's own iterator. Used to answer 405
with every allowed method, to label refused requests with their route in metrics, and by the
authorisation-matrix test (a route without a row fails it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, WebSocketRoute, compile_path


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One route: its path template, methods (empty for a WebSocket) and the route object."""

    path: str
    methods: frozenset[str]
    websocket: bool
    route: Any
    regex: re.Pattern[str]

    def matches_path(self, path: str) -> bool:
        return self.regex.match(path) is not None


def route_table(routes: Sequence[BaseRoute]) -> list[RouteEntry]:
    """Every route with a path, in routing order (included routers flattened)."""
    table: list[RouteEntry] = []
    for context in iter_route_contexts(routes):
        path = context.path
        if not isinstance(path, str):
            continue
        websocket = isinstance(context.original_route, WebSocketRoute)
        methods = frozenset(context.methods or ())
        table.append(RouteEntry(path, methods, websocket, context, compile_path(path)[0]))
    return table


def app_route_table(app: Any) -> list[RouteEntry]:
    """:func:`route_table` of a Starlette/FastAPI app, built once and kept on ``app.state``."""
    table: list[RouteEntry] | None = getattr(app.state, "route_table", None)
    if table is None:
        table = app.state.route_table = route_table(app.router.routes)
    return table


def routes_for_path(table: Sequence[RouteEntry], path: str, *, websocket: bool = False
                    ) -> list[RouteEntry]:
    """The entries whose template matches ``path`` (HTTP routes, or WebSocket ones)."""
    return [e for e in table if e.websocket == websocket and e.matches_path(path)]
