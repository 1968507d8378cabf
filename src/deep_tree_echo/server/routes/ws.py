"""``WS /v1/ws``: user messages in; ``agent_message``/``memory_update``/``response`` out.

Client → server: ``{"type": "user_message", "session_id", "message"}``,
``{"type": "subscribe", "session_id"}`` (add ``"since": <event_id>`` to first receive the
session's events after that id, each once; ``events_expired`` error when they are past the
retention window), ``{"type": "unsubscribe", "session_id"}``,
``{"type": "ping"}``. Server → client: ``response`` (the direct answer to a user message),
``agent_message`` and ``memory_update`` events of the subscribed sessions, ``pong``, ``ping``
(keep-alive), ``subscribed``, ``unsubscribed`` and ``error``. Sending a user message
subscribes to its session. A socket follows at most ``ws_max_subscriptions`` sessions; past that,
``subscribe`` and user messages for new sessions get a ``too_many_subscriptions`` error until
the client unsubscribes from some. A socket acts for the tenant of its key (an admin may name
one with ``?tenant=``): it talks in and follows that tenant's sessions only. Error frames carry
the request's ``session_id`` when it had a valid one; a binary frame closes the connection with
1003 and a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from deep_tree_echo._http import error_body
from deep_tree_echo._json import loads_text
from deep_tree_echo.aar_core.cognitive import build_input, failure_dict
from deep_tree_echo.aar_core.sessions import validate_session_id
from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.server.errors import EventsExpiredError, OutboxError
from deep_tree_echo.server.outbox.relay import EventRelay
from deep_tree_echo.server.websocket import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    ConnectionManager,
    WebSocketClient,
)
from deep_tree_echo.tenants import DEFAULT_TENANT, TENANT_SCOPE_KEY

router = APIRouter()
#: Close code for a frame type the endpoint does not take (RFC 6455 section 7.4.1).
CLOSE_UNSUPPORTED_DATA = 1003
BINARY_REASON = "binary frames are not supported; send JSON text frames"
logger = logging.getLogger("deep_tree_echo.server.ws")


def _error(code: str, message: str, session_id: str | None = None) -> dict[str, Any]:
    """An error frame; it keeps the request's ``session_id`` when the request had a valid one."""
    frame = {"type": "error", **error_body(code, message)}
    if session_id is not None:
        frame["session_id"] = session_id
    return frame


def _request_session(message: dict[str, Any]) -> str | None:
    """The request's session id when it is a valid one (for error frames), else None."""
    try:
        return _session_id(message, required=False)
    except ValueError:
        return None


def _too_many(manager: ConnectionManager, session_id: str) -> dict[str, Any]:
    return _error(
        "too_many_subscriptions",
        f"cannot follow session {session_id!r}: a connection may subscribe to at most "
        f"{manager.max_subscriptions} sessions; unsubscribe from one first",
        session_id,
    )


def _session_id(message: dict[str, Any], *, required: bool) -> str | None:
    value = message.get("session_id")
    if value is None and not required:
        return None
    return validate_session_id(value)


async def _handle(
    manager: ConnectionManager, client: WebSocketClient, websocket: WebSocket, raw: str
) -> None:
    try:
        message = loads_text(raw)
    except ValueError:
        await manager.send(client, _error("bad_message", "message is not valid JSON"))
        return
    if not isinstance(message, dict):
        await manager.send(client, _error("bad_message", "message must be a JSON object"))
        return
    kind = message.get("type")
    session = _request_session(message)
    try:
        if kind == "ping":
            await manager.send(client, {"type": "pong", "ts": message.get("ts")})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            session_id = _session_id(message, required=True)
            assert session_id is not None
            if message.get("since") is not None:
                await _resume(manager, client, websocket, session_id, message["since"])
            elif manager.subscribe(client, session_id):
                await manager.send(client, {"type": "subscribed", "session_id": session_id})
            else:
                await manager.send(client, _too_many(manager, session_id))
        elif kind == "unsubscribe":
            session_id = _session_id(message, required=True)
            assert session_id is not None
            manager.unsubscribe(client, session_id)
            await manager.send(client, {"type": "unsubscribed", "session_id": session_id})
        elif kind == "user_message":
            await _user_message(manager, client, websocket, message)
        else:
            await manager.send(
                client, _error("unknown_type", f"unknown message type {kind!r}", session)
            )
    except ValueError as exc:  # InvalidInputError from validate_session_id too
        await manager.send(client, _error("bad_message", str(exc), session))
    except Exception:
        logger.exception("websocket client #%d: handling a message failed", client.id)
        await manager.send(client, _error("internal_error", "internal server error", session))


async def _resume(
    manager: ConnectionManager,
    client: WebSocketClient,
    websocket: WebSocket,
    session_id: str,
    since: object,
) -> None:
    """``subscribe`` with ``since``: replay the session's events after that id, then live."""
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        await manager.send(client, _error("bad_message", "'since' must be an event id >= 0"))
        return
    relay: EventRelay | None = getattr(websocket.app.state, "event_relay", None)
    if relay is None:
        await manager.send(client, _error("not_ready", "the event outbox is not running"))
        return
    try:
        resumed = await relay.resume(client, session_id, since)
    except EventsExpiredError as exc:
        await manager.send(client, {**_error(exc.code, exc.message), "session_id": session_id})
        return
    except OutboxError as exc:
        await manager.send(client, _error(exc.code, exc.message))
        return
    if not resumed:
        await manager.send(client, _too_many(manager, session_id))


async def _user_message(
    manager: ConnectionManager,
    client: WebSocketClient,
    websocket: WebSocket,
    message: dict[str, Any],
) -> None:
    session_id = _session_id(message, required=False) or f"ws-{uuid.uuid4().hex[:12]}"
    if not manager.subscribe(client, session_id):  # so the agent_message reaches the sender
        await manager.send(client, _too_many(manager, session_id))
        return
    gateway = websocket.app.state.gateway
    if not gateway.initialized:
        await manager.send(
            client, _error("not_ready", "the gateway is not initialised yet", session_id)
        )
        return
    context: dict[str, Any] = {"session_id": session_id, "external_source": "websocket"}
    if message.get("memory_scope") is not None:
        context["memory_scope"] = message["memory_scope"]
    try:
        inp = build_input(
            message.get("message"),
            type=message.get("input_type") or "text",
            context=context,
            tenant=client.tenant,
        )
    except InvalidInputError as exc:
        result = failure_dict(exc, 0.0, None)  # the seed's error response, as for any input
    else:
        result = await gateway.respond(inp)
    frame = {"type": "response", "request_id": message.get("id"), **result}
    if frame.get("session_id") is None:  # an input the gateway refused still names its session
        frame["session_id"] = session_id
    await manager.send(client, frame)


@router.websocket("/v1/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    manager: ConnectionManager = websocket.app.state.ws_manager
    initial: list[str] = []
    invalid: InvalidInputError | None = None
    for value in websocket.query_params.getlist("session_id"):
        if value:
            try:
                initial.append(validate_session_id(value))
            except InvalidInputError as error:
                invalid = error
    tenant: str = websocket.scope.get(TENANT_SCOPE_KEY, DEFAULT_TENANT)
    client = await manager.connect(websocket, session_ids=initial, tenant=tenant)
    if invalid is not None:  # not followed; one reply however many were bad
        await manager.send(client, _error("bad_message", f"?session_id ignored: {invalid.message}"))
    for session_id in dict.fromkeys(initial):
        if session_id not in client.sessions:
            await manager.send(client, _too_many(manager, session_id))
            break

    async def read() -> tuple[int, str]:
        """Handle text frames until the client goes; a binary frame ends the connection
        with 1003 (unsupported data) and a reason."""
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(frame.get("code", CLOSE_NORMAL))
            text = frame.get("text")
            if text is None:
                return CLOSE_UNSUPPORTED_DATA, BINARY_REASON
            await _handle(manager, client, websocket, text)

    reader = asyncio.get_running_loop().create_task(read(), name=f"ws-reader-{client.id}")
    dropped = asyncio.get_running_loop().create_task(client.closed.wait())
    try:
        await asyncio.wait({reader, dropped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, dropped):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
            await reader
        with contextlib.suppress(asyncio.CancelledError):
            await dropped
        close_code, reason = CLOSE_NORMAL, ""
        if reader.done() and not reader.cancelled():
            exc = reader.exception()
            if exc is None:
                close_code, reason = reader.result()
            elif not isinstance(exc, WebSocketDisconnect):
                close_code = CLOSE_GOING_AWAY
        await manager.disconnect(client, close_code, reason)
