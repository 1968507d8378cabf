"""The openai engine against a loopback server that speaks the chat-completions protocol."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import respx

from deep_tree_echo.aar_core.engines import OpenAIEngine, engine_from_settings
from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.testing._process import free_port


class _FakeLLM(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body,
                                    "auth": self.headers.get("Authorization")})
        system = body["messages"][0]["content"]
        answer = "The code is 7741." if "7741" in system else "I do not know."
        payload = json.dumps({
            "id": "cmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def llm_url() -> Iterator[str]:
    _FakeLLM.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _ask(text: str) -> dict[str, Any]:
    return {"type": "text", "content": text, "context": {"session_id": "llm"}}


async def test_memories_reach_the_llm_as_context(llm_url: str) -> None:
    config = {"test_mode": True, "engine": "openai", "openai_base_url": llm_url,
              "openai_model": "tiny", "openai_api_key": "sk-test"}
    async with AARGateway(config) as gw:
        await gw.process_cognitive_input(_ask("the vault code is 7741"))
        result = await gw.process_cognitive_input(_ask("what is the vault code?"))
    assert result["status"] == "success"
    assert result["cognitive_response"]["text"] == "The code is 7741."
    assert result["cognitive_response"]["engine"] == "openai"
    last = _FakeLLM.requests[-1]
    assert last["path"] == "/v1/chat/completions"
    assert last["auth"] == "Bearer sk-test"
    assert last["body"]["model"] == "tiny"
    assert last["body"]["messages"][-1] == {"role": "user", "content": "what is the vault code?"}


async def test_a_down_server_is_a_clear_error_and_nothing_is_written() -> None:
    config = {"test_mode": True, "engine": "openai",
              "openai_base_url": f"http://127.0.0.1:{free_port()}/v1",
              "openai_timeout": 2, "openai_max_retries": 0}
    async with AARGateway(config) as gw:
        result = await gw.process_cognitive_input(_ask("is anyone there?"))
        assert result["status"] == "error"
        assert result["error"]["code"] == "engine_unavailable"
        assert "unavailable" in result["error"]["message"]
        assert await gw.memory.get_all_memories() == {}


async def test_breaker_state_changes_reach_the_gateway_bus() -> None:
    config = {"test_mode": True, "engine": "openai",
              "openai_base_url": f"http://127.0.0.1:{free_port()}/v1",
              "openai_timeout": 2, "openai_max_retries": 0, "openai_failure_threshold": 2}
    async with AARGateway(config) as gw:
        changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        gw.event_bus.register("circuit.state_changed", changes.put_nowait)
        for _ in range(2):
            result = await gw.process_cognitive_input(_ask("is anyone there?"))
            assert result["error"]["code"] == "engine_unavailable"
        async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
            change = await changes.get()
        assert (change["name"], change["old"], change["new"]) == ("openai", "closed", "open")
        # the open breaker now refuses without calling the server
        result = await gw.process_cognitive_input(_ask("still there?"))
        assert result["error"]["code"] == "engine_unavailable"
        assert "circuit" in result["error"]["message"].lower()


def test_engine_from_settings_passes_the_bus_and_threshold() -> None:
    bus = EventBus()
    engine = engine_from_settings(
        EchoSettings(engine="openai", openai_failure_threshold=3), event_bus=bus
    )
    assert isinstance(engine, OpenAIEngine)
    assert engine.event_bus is bus and engine.failure_threshold == 3


async def test_a_completion_is_resent_after_a_read_timeout() -> None:
    """Completions have no side effects, so the engine opts in to re-sending POSTs."""
    reply = {"model": "m", "choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    config = {"test_mode": True, "engine": "openai", "openai_base_url": "https://llm.test/v1",
              "openai_max_retries": 1}
    with respx.mock() as mock:
        route = mock.post("https://llm.test/v1/chat/completions").mock(
            side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=reply)]
        )
        async with AARGateway(config) as gw:
            result = await gw.process_cognitive_input(_ask("is anyone there?"))
    assert result["status"] == "success"
    assert result["cognitive_response"]["text"] == "hi"
    assert route.call_count == 2
