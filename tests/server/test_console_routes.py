"""The console's static files (public, strict CSP, no inline code) and ``GET /v1/events``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
from _server_helpers import live_server, make_settings, running_app

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.server._event_feed import FEED_TYPES, EventFeed
from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.routes.console import ASSETS, CONTENT_SECURITY_POLICY
from deep_tree_echo.testing.live_server import EchoServer

KEY = "console-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CONSOLE = files("deep_tree_echo.server") / "console"


async def test_console_is_public_with_a_strict_policy_and_the_api_is_not() -> None:
    async with running_app(create_app(make_settings(api_keys=[KEY]))) as client:
        root = await client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/console"
        page = await client.get("/console")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert csp == CONTENT_SECURITY_POLICY.replace(
            "connect-src 'self'", "connect-src 'self' ws://testserver wss://testserver"
        )
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        script = await client.get("/console/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["content-security-policy"] == csp
        odd = await client.get("/console", headers={"Host": "evil; script-src *"})
        assert odd.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert (await client.get("/console/../app.py")).status_code == 401  # not a console file
        assert (await client.get("/v1/status")).status_code == 401
        assert (await client.get("/v1/events")).status_code == 401
    async with running_app(create_app(make_settings())) as client:
        assert (await client.get("/console/nope.js")).status_code == 404


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_code: list[str] = []
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append(found)
            self._in_script = True
        if tag == "style" or "style" in found or any(k.startswith("on") for k in found):
            self.inline_code.append(f"<{tag} {found}>")
        for name in ("src", "href"):
            value = found.get(name)
            if value and not value.startswith("#"):
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_code.append(data)


def test_page_has_no_inline_code_and_nothing_from_elsewhere() -> None:
    page = _Page()
    page.feed((CONSOLE / "index.html").read_text())
    assert page.scripts == [{"type": "module", "src": "/console/app.js"}]
    assert page.inline_code == []
    assert all(u.startswith("/console/") for u in page.urls), page.urls
    for name in ASSETS:
        text = (CONSOLE / name).read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
        if name.endswith(".js"):  # data is only ever rendered as text
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", text)
            assert "eval(" not in text and "new Function" not in text


def test_every_module_the_page_imports_is_served() -> None:
    imported = set()
    for name in ASSETS:
        if name.endswith(".js"):
            imported |= set(re.findall(r"from '\./([\w-]+\.js)'", (CONSOLE / name).read_text()))
    assert imported and imported <= set(ASSETS)
    assert {"index.html", "app.js", "console.css"} <= set(ASSETS)


async def test_feed_is_on_the_bus_only_while_someone_listens() -> None:
    bus = EventBus()
    feed = EventFeed(bus, queue_size=2)
    assert bus.handlers("memory.update") == []
    stream = feed.stream(["memory.update"])
    assert await anext(stream) == ": connected\n\n"
    assert len(bus.handlers("memory.update")) == 1
    assert len(bus.handlers("circuit.state_changed")) == 1
    await bus.emit("agent.message", {"message": "filtered out"})
    await bus.emit("memory.update", {"memory_id": "m1"})
    frame = await anext(stream)
    event = json.loads(frame.removeprefix("data: "))
    assert event["type"] == "memory.update" and event["data"] == {"memory_id": "m1"}
    for i in range(5):  # a slow listener: two fit, three are dropped and reported
        await bus.emit("memory.update", {"memory_id": f"x{i}"})
    dropped = json.loads((await anext(stream)).removeprefix("data: "))
    assert dropped == {"type": "feed.dropped", "timestamp": dropped["timestamp"],
                       "data": {"count": 3}}
    assert json.loads((await anext(stream)).removeprefix("data: "))["data"]["memory_id"] == "x0"
    await stream.aclose()
    assert all(bus.handlers(t) == [] for t in FEED_TYPES)


async def test_events_stream_over_http_with_the_key_in_a_header() -> None:
    app = create_app(make_settings(api_keys=[KEY]))
    seen: list[dict[str, Any]] = []
    async with (
        app.router.lifespan_context(app),
        live_server(app) as host,
        httpx.AsyncClient(base_url=f"http://{host}", headers=AUTH) as client,
        client.stream("GET", "/v1/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == ": connected"
        put = await client.put("/v1/memories/ev1", json={"content": "hello"})
        assert put.status_code == 201
        async with asyncio.timeout(10):
            async for line in lines:
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if seen[-1]["type"] == "memory.update":
                        break
    assert seen[-1]["data"]["memory_id"] == "ev1"
    assert seen[-1]["data"]["action"] == "created"



async def test_closing_the_feed_ends_its_streams() -> None:
    bus = EventBus()
    feed = EventFeed(bus)
    stream = feed.stream()
    assert await anext(stream) == ": connected\n\n"
    feed.close()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert all(bus.handlers(t) == [] for t in FEED_TYPES)
    assert [frame async for frame in feed.stream()] == []  # no new streams once closed


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_ends_open_event_streams_when_it_stops(tmp_path: Path, workers: int) -> None:
    """uvicorn waits for open responses at shutdown; an event stream must not hold it up, in
    one process or in a worker of several."""
    server = EchoServer(tmp_path / "data", env={"DTE_RATE_LIMIT_REQUESTS": "0"}, workers=workers)
    with (
        server,
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("GET", "/v1/events") as response,
    ):
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        server.process.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line]  # ends when the server closes the stream
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises it
    assert rest == []
    assert "graceful shutdown exceeded" not in server.output()
