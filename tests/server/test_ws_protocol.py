"""The ``/v1/ws`` protocol frame by frame against a live server: every refusal's code, message
and session, pings, the ``response`` frame, and the paths where the gateway, the outbox or a
handler is not there to answer (mutation testing found them all untested)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from _server_helpers import live_server, make_settings
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.errors import OutboxError


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
        while True:
            frame = dict(json.loads(await ws.recv()))
            if frame["type"] not in ("agent_message", "memory_update", "ping"):
                return frame


async def ask(ws: ClientConnection, message: Any) -> dict[str, Any]:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return await recv(ws)


def error(code: str, message: str, session_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "error": {"code": code, "message": message}}
    if session_id is not None:
        frame["session_id"] = session_id
    return frame


@asynccontextmanager
async def ws_session(**settings: Any) -> AsyncIterator[tuple[FastAPI, ClientConnection]]:
    app = create_app(make_settings(**settings))
    async with live_server(app) as host:
        ws = await connect(f"ws://{host}/v1/ws")
        try:
            yield app, ws
        finally:
            await ws.close()


async def test_frames_that_are_not_requests_are_refused_by_name() -> None:
    async with ws_session() as (_, ws):
        assert await ask(ws, "{not json") == error("bad_message", "message is not valid JSON")
        assert await ask(ws, "[1, 2]") == error("bad_message", "message must be a JSON object")
        assert await ask(ws, {"type": "dance", "session_id": "s1"}) == error(
            "unknown_type", "unknown message type 'dance'", "s1")
        bad = await ask(ws, {"type": "subscribe", "session_id": "x" * 200})
        assert bad["error"]["code"] == "bad_message" and "session_id" not in bad
        assert bad["error"]["message"].startswith("'session_id' must be a non-empty string")
        missing = await ask(ws, {"type": "unsubscribe"})
        assert missing["error"]["code"] == "bad_message" and "session_id" not in missing


async def test_ping_gets_its_ts_back_and_a_pong_gets_no_answer() -> None:
    async with ws_session() as (_, ws):
        await ws.send(json.dumps({"type": "pong"}))
        assert await ask(ws, {"type": "ping", "ts": 42}) == {"type": "pong", "ts": 42}


@pytest.mark.parametrize("since", [True, -1, "3", 1.5])
async def test_since_must_be_an_event_id(since: object) -> None:
    async with ws_session() as (_, ws):
        assert await ask(ws, {"type": "subscribe", "session_id": "s", "since": since}) == error(
            "bad_message", "'since' must be an event id >= 0")


async def test_the_response_frame_names_its_request_and_session() -> None:
    async with ws_session() as (_, ws):
        answer = await ask(ws, {"type": "user_message", "session_id": "s1", "id": "r-7",
                                "message": "hello there"})
        assert (answer["type"], answer["request_id"], answer["session_id"]) == (
            "response", "r-7", "s1")
        assert answer["status"] == "success"
        fresh = await ask(ws, {"type": "user_message", "message": "hello again"})
        assert fresh["request_id"] is None
        assert fresh["session_id"].startswith("ws-") and len(fresh["session_id"]) == 15
        refused = await ask(ws, {"type": "user_message", "session_id": "s2", "message": None})
        assert (refused["type"], refused["status"], refused["session_id"]) == (
            "response", "error", "s2")
        assert refused["processing_time"] == 0.0  # refused before any processing


async def test_a_user_message_passes_its_memory_scope_and_input_type_to_the_gateway() -> None:
    async with ws_session() as (app, ws):
        seen: list[Any] = []
        respond = app.state.gateway.respond

        async def spy(inp: Any) -> dict[str, Any]:
            seen.append(inp)
            result: dict[str, Any] = await respond(inp)
            return result

        app.state.gateway.respond = spy
        await ask(ws, {"type": "user_message", "session_id": "s1", "message": "hi",
                       "memory_scope": "tenant", "input_type": "question"})
        await ask(ws, {"type": "user_message", "session_id": "s1", "message": "hi"})
    scoped, plain = seen
    assert (scoped.type, scoped.memory_scope, scoped.session_id) == ("question", "tenant", "s1")
    assert scoped.context["external_source"] == "websocket"
    assert (plain.type, plain.memory_scope) == ("text", "session")


async def test_too_many_sessions_are_refused_for_subscribe_resume_and_messages() -> None:
    too_many = ("cannot follow session {!r}: a connection may subscribe to at most 1 sessions;"
                " unsubscribe from one first")
    async with ws_session(ws_max_subscriptions=1) as (_, ws):
        assert await ask(ws, {"type": "subscribe", "session_id": "a"}) == {
            "type": "subscribed", "session_id": "a"}
        for request in ({"type": "subscribe", "session_id": "b"},
                        {"type": "subscribe", "session_id": "b", "since": 0},
                        {"type": "user_message", "session_id": "b", "message": "hi"}):
            assert await ask(ws, request) == error(
                "too_many_subscriptions", too_many.format("b"), "b")


async def test_without_a_ready_gateway_or_outbox_the_socket_says_not_ready() -> None:
    async with ws_session() as (app, ws):
        app.state.gateway.initialized = False
        try:
            assert await ask(ws, {"type": "user_message", "session_id": "s1", "message": "x"}) == (
                error("not_ready", "the gateway is not initialised yet", "s1"))
        finally:
            app.state.gateway.initialized = True
        relay, app.state.event_relay = app.state.event_relay, None
        try:
            assert await ask(ws, {"type": "subscribe", "session_id": "s1", "since": 0}) == error(
                "not_ready", "the event outbox is not running")
        finally:
            app.state.event_relay = relay


async def test_an_outbox_failure_on_resume_is_reported() -> None:
    async with ws_session() as (app, ws):
        async def failing(*args: Any) -> bool:
            raise OutboxError("the outbox could not be read")

        app.state.event_relay.resume = failing
        assert await ask(ws, {"type": "subscribe", "session_id": "s1", "since": 0}) == error(
            OutboxError.code, "the outbox could not be read")


async def test_a_failing_handler_answers_internal_error_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with ws_session() as (app, ws):
        async def broken(inp: Any) -> dict[str, Any]:
            raise RuntimeError("engine broke")

        app.state.gateway.respond = broken
        with caplog.at_level(logging.ERROR, logger="deep_tree_echo.server.ws"):
            assert await ask(ws, {"type": "user_message", "session_id": "s1", "message": "x"}) == (
                error("internal_error", "internal server error", "s1"))
    [record] = [r for r in caplog.records if r.name == "deep_tree_echo.server.ws"]
    assert re.fullmatch(r"websocket client #\d+: handling a message failed", record.getMessage())
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
