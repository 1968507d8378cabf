"""WebSocket fan-out: the seed's ``websocket_manager``, with per-client bounded send queues.

Every client gets a bounded queue drained by its own writer task, so :meth:`broadcast` never
awaits a socket: it only enqueues. A client whose queue is full is too slow to keep up; it is
dropped (closed with 1013, "try again later") instead of stalling everyone else.

Every client belongs to one tenant (its API key's); subscriptions are kept by
``(tenant, session_id)``, so two tenants using the same session id never see each other's
events, and a broadcast without a session reaches only the clients of its tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from deep_tree_echo._json import COMPACT_ENCODER
from deep_tree_echo.tenants import DEFAULT_TENANT

logger = logging.getLogger("deep_tree_echo.server.ws")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013

_ids = itertools.count(1)


class WebSocketClient:
    """One connected socket: its subscriptions, its send queue and its writer task."""

    __slots__ = (
        "closed", "cursors", "finished", "id", "queue", "sessions", "tenant", "websocket",
        "writer",
    )

    def __init__(
        self, websocket: WebSocket, queue_size: int, tenant: str = DEFAULT_TENANT
    ) -> None:
        self.id = next(_ids)
        self.websocket = websocket
        self.tenant = tenant
        self.sessions: set[str] = set()
        self.cursors: dict[str, int] = {}  # session -> last outbox event id queued
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)  # encoded JSON text
        self.writer: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()  # set as soon as the client is being disconnected
        self.finished = asyncio.Event()  # set once the close frame went out (or gave up)

    def __repr__(self) -> str:
        return f"<WebSocketClient #{self.id} tenant={self.tenant} sessions={sorted(self.sessions)}>"


class ConnectionManager:
    """Tracks connected clients and delivers messages to them without blocking the caller.

    ``broadcast(msg, tenant=t)`` goes to every client of tenant ``t``; with ``session_id=s``
    only to the clients of ``t`` subscribed to ``s`` (``tenant`` defaults to ``default``).
    ``ping_interval`` makes each idle writer send ``{"type": "ping"}`` (an application-level
    keep-alive, on top of the server's WebSocket ping frames). A client follows
    at most ``max_subscriptions`` sessions, so one socket cannot grow the session index unbounded.
    """

    def __init__(
        self,
        queue_size: int = 256,
        *,
        ping_interval: float | None = None,
        close_timeout: float = 10.0,
        max_subscriptions: int = 100,
    ) -> None:
        if queue_size <= 0:
            raise ValueError("queue_size must be positive")
        if max_subscriptions <= 0:
            raise ValueError("max_subscriptions must be positive")
        self.max_subscriptions = max_subscriptions
        self.queue_size = queue_size
        self.ping_interval = ping_interval
        self.close_timeout = close_timeout
        self._clients: dict[int, WebSocketClient] = {}
        self._by_session: dict[tuple[str, str], set[int]] = {}  # (tenant, session) -> clients
        self.stats: dict[str, int] = {
            "connected_total": 0,
            "disconnected_total": 0,
            "dropped_slow": 0,
            "messages_enqueued": 0,
            "messages_sent": 0,
            "send_errors": 0,
            "broadcasts": 0,
        }

    # -- connections ---------------------------------------------------------------------------

    @property
    def active_connections(self) -> int:
        return len(self._clients)

    @property
    def subscribed_sessions(self) -> int:
        """Number of session ids with at least one subscriber (the size of the index)."""
        return len(self._by_session)

    def clients(
        self, session_id: str | None = None, *, tenant: str | None = DEFAULT_TENANT
    ) -> list[WebSocketClient]:
        """Connected clients of ``tenant`` (every tenant with None), all of them or those
        subscribed to ``session_id``."""
        if session_id is None:
            return [c for c in self._clients.values() if tenant is None or c.tenant == tenant]
        members: set[int] = set()
        if tenant is None:
            for (_, sid), ids in self._by_session.items():
                if sid == session_id:
                    members |= ids
        else:
            members = self._by_session.get((tenant, session_id), set())
        return [self._clients[i] for i in members if i in self._clients]

    async def connect(
        self,
        websocket: WebSocket,
        *,
        session_ids: Iterable[str] = (),
        accept: bool = True,
        tenant: str = DEFAULT_TENANT,
    ) -> WebSocketClient:
        """Accept ``websocket`` (unless already accepted), register it as a client of
        ``tenant`` and start its writer.

        Of ``session_ids``, only the first ``max_subscriptions`` distinct ones are subscribed.
        """
        if accept and websocket.client_state == WebSocketState.CONNECTING:
            await websocket.accept()
        client = WebSocketClient(websocket, self.queue_size, tenant)
        self._clients[client.id] = client
        for session_id in session_ids:
            self.subscribe(client, session_id)
        client.writer = asyncio.get_running_loop().create_task(
            self._write(client), name=f"ws-writer-{client.id}"
        )
        self.stats["connected_total"] += 1
        return client

    async def disconnect(
        self, client: WebSocketClient, code: int = CLOSE_NORMAL, reason: str = ""
    ) -> None:
        """Unregister ``client``, stop its writer and close the socket (idempotent).

        The close frame queues behind data already buffered for the client, so for a slow
        client it goes out once the client has read that far; we wait ``close_timeout``.
        """
        if client.closed.is_set():
            await client.finished.wait()
            return
        client.closed.set()
        self._forget(client)
        self.stats["disconnected_total"] += 1
        writer = client.writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        ws = client.websocket
        if (
            ws.application_state == WebSocketState.CONNECTED
            and ws.client_state == WebSocketState.CONNECTED
        ):
            try:
                await asyncio.wait_for(ws.close(code, reason), self.close_timeout)
            except Exception as exc:
                logger.debug("closing websocket client #%d failed: %r", client.id, exc)
        client.finished.set()

    async def close_all(self, code: int = CLOSE_GOING_AWAY) -> None:
        """Disconnect every client (server shutdown)."""
        await asyncio.gather(
            *(self.disconnect(c, code, "server shutdown") for c in list(self._clients.values()))
        )

    def _forget(self, client: WebSocketClient) -> None:
        self._clients.pop(client.id, None)
        for session_id in client.sessions:
            self._unindex(client, session_id)

    def _unindex(self, client: WebSocketClient, session_id: str) -> None:
        key = (client.tenant, session_id)
        members = self._by_session.get(key)
        if members is not None:
            members.discard(client.id)
            if not members:
                del self._by_session[key]

    # -- subscriptions -------------------------------------------------------------------------

    def subscribe(self, client: WebSocketClient, session_id: str) -> bool:
        """Deliver ``session_id``'s messages to ``client``.

        False (and nothing changes) when the client already follows ``max_subscriptions``
        other sessions or is disconnecting; re-subscribing to a followed session is True.
        """
        if client.closed.is_set():
            return False
        if session_id not in client.sessions:
            if len(client.sessions) >= self.max_subscriptions:
                return False
            client.sessions.add(session_id)
        self._by_session.setdefault((client.tenant, session_id), set()).add(client.id)
        return True

    def unsubscribe(self, client: WebSocketClient, session_id: str) -> None:
        client.sessions.discard(session_id)
        client.cursors.pop(session_id, None)
        self._unindex(client, session_id)

    # -- delivery ------------------------------------------------------------------------------

    async def broadcast(
        self,
        message: dict[str, Any],
        *,
        session_id: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> int:
        """Queue ``message`` for every client of ``tenant`` (or its subscribers of
        ``session_id``).

        Never waits for a socket; the message is encoded once for all clients. Returns how many
        clients it was queued for; clients whose queue is full are dropped with close code 1013.
        """
        self.stats["broadcasts"] += 1
        clients = self.clients(session_id, tenant=tenant)
        if not clients:
            return 0
        text = COMPACT_ENCODER.encode(message)
        return sum(self._enqueue(client, text) for client in clients)

    async def send(self, client: WebSocketClient, message: dict[str, Any]) -> bool:
        """Queue ``message`` for one client (same rules as :meth:`broadcast`)."""
        return self.send_nowait(client, message)

    def send_nowait(self, client: WebSocketClient, message: dict[str, Any]) -> bool:
        if client.closed.is_set():
            return False
        return self._enqueue(client, COMPACT_ENCODER.encode(message))

    def enqueue_text(self, client: WebSocketClient, text: str) -> bool:
        """Queue already-encoded JSON ``text`` for one client (same rules as :meth:`send`)."""
        return self._enqueue(client, text)

    def _enqueue(self, client: WebSocketClient, text: str) -> bool:
        if client.closed.is_set():
            return False
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop_slow(client)
            return False
        self.stats["messages_enqueued"] += 1
        return True

    def _drop_slow(self, client: WebSocketClient) -> None:
        self.stats["dropped_slow"] += 1
        logger.warning("dropping slow websocket client #%d (send queue full)", client.id)
        task = asyncio.get_running_loop().create_task(
            self.disconnect(client, CLOSE_TRY_AGAIN_LATER, "send queue full"),
            name=f"ws-drop-{client.id}",
        )
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _write(self, client: WebSocketClient) -> None:
        """Drain ``client.queue`` to the socket; on idle, send an application ping."""
        ws = client.websocket
        try:
            while True:
                if self.ping_interval is None:
                    text = await client.queue.get()
                else:
                    try:  # (asyncio.timeout: 3.11's wait_for can swallow a cancel)
                        async with asyncio.timeout(self.ping_interval):
                            text = await client.queue.get()
                    except TimeoutError:
                        text = COMPACT_ENCODER.encode({"type": "ping", "ts": time.time()})
                await ws.send_text(text)
                self.stats["messages_sent"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # socket gone
            self.stats["send_errors"] += 1
            logger.debug("websocket client #%d send failed: %s", client.id, exc)
            await self.disconnect(client, CLOSE_GOING_AWAY, "send failed")


_background: set[asyncio.Task[None]] = set()
