"""``GET /v1/events``: the gateway's live event stream as server-sent events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from deep_tree_echo.server._event_feed import FEED_TYPES, EventFeed
from deep_tree_echo.server.routes._deps import only_query, request_tenant

router = APIRouter(prefix="/v1", tags=["events"])


def _feed(request: Request) -> EventFeed:
    state = request.app.state
    feed: EventFeed | None = getattr(state, "event_feed", None)
    if feed is None:
        feed = state.event_feed = EventFeed(state.gateway.event_bus)
    return feed


@router.get(
    "/events",
    summary="Live bus events as text/event-stream (one JSON object per `data:` line)",
    description=(
        "Each event is `{\"type\", \"timestamp\", \"data\"}`; types followed: "
        + ", ".join(f"`{t}`" for t in FEED_TYPES)
        + ". `feed.dropped` reports events this slow client missed. Comment lines keep "
        "idle connections alive. Send the API key as a Bearer header (fetch, not EventSource). "
        "A client sees its own tenant's events and the service's (alerts, breakers)."
    ),
    dependencies=[Depends(only_query("types"))],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    types: Annotated[
        str, Query(max_length=1000, description="comma-separated event types; empty = all")
    ] = "",
) -> StreamingResponse:
    wanted = [t.strip() for t in types.split(",") if t.strip()]
    return StreamingResponse(
        _feed(request).stream(wanted, tenant=request_tenant(request)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
