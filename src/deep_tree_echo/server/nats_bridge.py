"""Events across nodes: carry chosen :class:`EventBus` events between Echo nodes over NATS.

Each node runs one :class:`NatsEventBridge` on its bus. Local events whose type is in
``forward`` are published on ``{prefix}.{event_type}`` as JSON
``{"origin": node_id, "event_type", "data"}``; messages from *other* nodes are re-emitted on the
local bus with the same type and data plus ``"_origin_node": origin``. Re-emitted events are
never published again and our own messages are ignored, so events cannot loop or echo.

Only the types in ``forward`` are accepted from the wire, in both directions: a peer cannot make
this node emit, say, ``user.input``. Bad messages (not JSON, wrong shape, too large) are logged
and counted in :attr:`NatsEventBridge.stats`, never raised into the bus. nats-py reconnects on
connection loss; it is imported only when the bridge starts (``pip install deep-tree-echo[nats]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.integration.errors import TransportAuthError, TransportError

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

__all__ = [
    "DEFAULT_FORWARD",
    "MAX_MESSAGE_BYTES",
    "ORIGIN_KEY",
    "ConnectionState",
    "NatsEventBridge",
]

logger = logging.getLogger("deep_tree_echo.integration.nats")

DEFAULT_FORWARD: Final = (
    "agent.message",
    "memory.update",
    "integration.alert",
    "circuit.state_changed",
)
"""Event types a bridge forwards and accepts unless told otherwise."""

ORIGIN_KEY: Final = "_origin_node"
"""Key added to the data of events that arrived from another node (holds its node id)."""

MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""Messages larger than this (1 MiB) are dropped, in both directions."""

ConnectionState = Literal["disconnected", "reconnected", "closed"]
"""What ``on_connection_change`` is told about."""

_FORBIDDEN_SUBJECT_CHARS = frozenset(" \t\r\n*>")
_GLOB_CHARS = frozenset("*?[")


def _check_subject_part(value: str, what: str) -> str:
    """``value`` if it is a valid literal NATS subject part (dot-separated, no wildcards)."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{what} must be a non-empty string")
    if not _FORBIDDEN_SUBJECT_CHARS.isdisjoint(value) or "" in value.split("."):
        raise InvalidInputError(
            f"{what} {value!r} is not a literal NATS subject (no spaces, '*', '>' or empty tokens)"
        )
    return value


def _is_auth_error(error: BaseException) -> bool:
    from nats.errors import AuthorizationError

    return isinstance(error, AuthorizationError) or "authorization violation" in str(error).lower()


class NatsEventBridge:
    """Publishes chosen local bus events to NATS and re-emits other nodes' events locally.

    ``servers`` is a URL, a comma-separated list of URLs or a list. ``forward`` holds exact event
    types (the bus hands handlers only the data, so a wildcard could not name what it matched).
    Authenticate with ``token=`` or ``user=``/``password=``. Use as ``async with bridge:`` or
    call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        event_bus: EventBus,
        servers: str | list[str],
        *,
        node_id: str,
        subject_prefix: str = "dte.events",
        forward: Sequence[str] = DEFAULT_FORWARD,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        connect_timeout: float = 10.0,
        reconnect_time_wait: float = 2.0,
        on_connection_change: Callable[[ConnectionState], None] | None = None,
    ) -> None:
        if isinstance(servers, str):
            servers = [part.strip() for part in servers.split(",") if part.strip()]
        if not servers:
            raise InvalidInputError("servers must name at least one NATS URL")
        if not isinstance(node_id, str) or not node_id:
            raise InvalidInputError("node_id must be a non-empty string")
        if isinstance(forward, str):
            raise TypeError("forward must be a sequence of event types, not a str")
        for event_type in forward:
            _check_subject_part(event_type, "forwarded event type")
            if not _GLOB_CHARS.isdisjoint(event_type):
                raise InvalidInputError(f"forwarded event type {event_type!r} must be exact")
        if max_message_bytes <= 0 or connect_timeout <= 0 or reconnect_time_wait < 0:
            raise InvalidInputError(
                "max_message_bytes and connect_timeout must be positive, "
                "reconnect_time_wait not negative"
            )
        self.event_bus = event_bus
        self.servers = list(servers)
        self.node_id = node_id
        self.subject_prefix = _check_subject_part(subject_prefix, "subject_prefix")
        self.forward = tuple(dict.fromkeys(forward))
        self.max_message_bytes = max_message_bytes
        self.connect_timeout = connect_timeout
        self.reconnect_time_wait = reconnect_time_wait
        self._token = token
        self._user = user
        self._password = password
        self._on_connection_change = on_connection_change
        self._accepted = frozenset(self.forward)
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._nc: NatsClient | None = None
        self._sub: Subscription | None = None
        self._published = 0
        self._received = 0
        self._dropped = 0
        self._ignored = 0
        self._reconnects = 0
        self._stopping = False
        self._drop_reasons: dict[str, int] = {}

    # -- state --------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """``published`` and ``received`` events, ``dropped`` bad or unsendable messages,
        ``ignored`` messages that carried our own node id, and ``reconnects``."""
        return {
            "published": self._published,
            "received": self._received,
            "dropped": self._dropped,
            "ignored": self._ignored,
            "reconnects": self._reconnects,
        }

    @property
    def drop_reasons(self) -> dict[str, int]:
        """How many messages were dropped, by reason (``not_json``, ``too_large``...)."""
        return dict(self._drop_reasons)

    @property
    def started(self) -> bool:
        return self._nc is not None

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def subject(self, event_type: str) -> str:
        """The NATS subject events of ``event_type`` travel on."""
        return f"{self.subject_prefix}.{event_type}"

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, subscribe to ``{prefix}.>`` and start forwarding local events.

        Raises :class:`TransportAuthError` when the server rejects our credentials and
        :class:`TransportError` when no server answers within ``connect_timeout``.
        """
        if self._nc is not None:
            return
        try:
            import nats
        except ImportError as exc:  # pragma: no cover - nats-py is in the dev environment
            raise TransportError(
                "the NATS bridge needs nats-py: pip install 'deep-tree-echo[nats]'",
                code="nats_not_installed",
            ) from exc
        nc = await self._connect(nats)
        try:
            self._sub = await nc.subscribe(f"{self.subject_prefix}.>", cb=self._on_message)
            # Make sure the SUB is live on the server before we report started. nats-py queues
            # a flush's PING *ahead* of pending commands, so the first PONG can come back before
            # the server has read our SUB; a second round trip is ordered after it on the wire.
            for _ in range(2):
                await nc.flush(timeout=max(1, int(self.connect_timeout)))
        except Exception as exc:
            await nc.close()
            raise TransportError(f"cannot subscribe on NATS: {exc!r}") from exc
        self._nc = nc
        for event_type in self.forward:
            handler = self._make_forwarder(event_type)
            self._handlers[event_type] = handler
            self.event_bus.register(event_type, handler)
        logger.info("NATS bridge %s connected to %s (forwarding %s)", self.node_id,
                    nc.connected_url.netloc if nc.connected_url else self.servers,
                    ", ".join(self.forward))

    async def _connect(self, nats: Any) -> NatsClient:
        loop = asyncio.get_running_loop()
        rejected: asyncio.Future[BaseException] = loop.create_future()
        last_error: list[BaseException] = []

        async def on_error(error: Exception) -> None:
            last_error[:] = [error]
            if _is_auth_error(error):
                if not rejected.done():
                    rejected.set_result(error)
                return
            logger.warning("NATS bridge %s: %r", self.node_id, error)

        async def on_disconnected() -> None:
            if not self._stopping:
                logger.warning("NATS bridge %s disconnected; reconnecting", self.node_id)
            self._notify("disconnected")

        async def on_reconnected() -> None:
            self._reconnects += 1
            logger.info("NATS bridge %s reconnected", self.node_id)
            self._notify("reconnected")

        async def on_closed() -> None:
            self._notify("closed")

        nc: NatsClient = nats.NATS()
        connecting = loop.create_task(
            nc.connect(
                self.servers,
                name=f"dte-{self.node_id}",
                token=self._token,
                user=self._user,
                password=self._password,
                no_echo=True,  # our own publishes never come back to us
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=self.reconnect_time_wait,  # type: ignore[arg-type]
                connect_timeout=max(1, int(self.connect_timeout)),
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                closed_cb=on_closed,
            ),
            name=f"nats-connect-{self.node_id}",
        )
        waiters: set[asyncio.Future[Any]] = {connecting, rejected}
        await asyncio.wait(waiters, timeout=self.connect_timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        connected = (connecting.done() and not connecting.cancelled()
                     and connecting.exception() is None)
        if connected and not rejected.done():
            rejected.cancel()
            return nc
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        with contextlib.suppress(Exception):
            await nc.close()
        if rejected.done() and not rejected.cancelled():
            raise TransportAuthError(
                f"NATS server {', '.join(self.servers)} rejected the credentials of node "
                f"{self.node_id!r}: {rejected.result()}"
            )
        error = connecting.exception() if connecting.done() and not connecting.cancelled() else None
        cause = error or (last_error[0] if last_error else None)
        raise TransportError(
            f"cannot connect to NATS at {', '.join(self.servers)} within "
            f"{self.connect_timeout}s: {cause!r}",
            code="nats_unavailable",
        ) from cause

    async def stop(self) -> None:
        """Stop forwarding, drain the subscription and pending publishes, close. Idempotent."""
        for event_type, handler in self._handlers.items():
            self.event_bus.unregister(event_type, handler)
        self._handlers.clear()
        nc, self._nc = self._nc, None
        self._sub = None
        if nc is None:
            return
        self._stopping = True
        try:
            if nc.is_connected:
                await nc.drain()
        except Exception as exc:
            logger.warning("NATS bridge %s: drain failed (%r); closing", self.node_id, exc)
        finally:
            if not nc.is_closed:
                await nc.close()
            self._stopping = False

    async def flush(self) -> None:
        """Wait (up to ``connect_timeout``) until the server has processed everything sent so far.

        After ``flush()`` our subscription and publishes are live on the server.
        """
        if self._nc is None:
            raise TransportError("the NATS bridge is not started", code="nats_not_started")
        await self._nc.flush(timeout=max(1, int(self.connect_timeout)))

    async def __aenter__(self) -> NatsEventBridge:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _notify(self, state: ConnectionState) -> None:
        if self._on_connection_change is None:
            return
        try:
            self._on_connection_change(state)
        except Exception:
            logger.exception("NATS bridge %s: on_connection_change failed", self.node_id)

    # -- local -> NATS ------------------------------------------------------------------------

    def _make_forwarder(self, event_type: str) -> Callable[[dict[str, Any]], Any]:
        subject = self.subject(event_type)

        async def forward(data: dict[str, Any]) -> None:
            if ORIGIN_KEY in data:  # came from another node: never send it on again
                return
            await self._publish(subject, event_type, data)

        forward.__qualname__ = f"NatsEventBridge.forward[{event_type}]"
        return forward

    async def _publish(self, subject: str, event_type: str, data: dict[str, Any]) -> None:
        nc = self._nc
        if nc is None:
            return
        try:
            payload = json.dumps(
                {"origin": self.node_id, "event_type": event_type, "data": data},
                separators=(",", ":"),
            ).encode()
        except (TypeError, ValueError) as exc:
            self._drop("not_serializable", f"local {event_type!r} event: {exc}")
            return
        if len(payload) > self.max_message_bytes:
            self._drop("too_large", f"local {event_type!r} event of {len(payload)} bytes")
            return
        try:
            await nc.publish(subject, payload)
        except Exception as exc:  # closed, draining, buffer full, over the server's max_payload
            self._drop("publish_failed", f"local {event_type!r} event: {exc!r}")
            return
        self._published += 1

    # -- NATS -> local ------------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        size = len(msg.data)
        if size > self.max_message_bytes:
            self._drop("too_large", f"{size} bytes on {msg.subject}")
            return
        try:
            envelope = json.loads(msg.data)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            self._drop("not_json", f"message on {msg.subject}")
            return
        if not isinstance(envelope, dict):
            self._drop("invalid_envelope", f"{type(envelope).__name__} on {msg.subject}")
            return
        origin = envelope.get("origin")
        event_type = envelope.get("event_type")
        data = envelope.get("data")
        if not (isinstance(origin, str) and origin and isinstance(event_type, str)
                and event_type and isinstance(data, dict)):
            self._drop("invalid_envelope", f"missing or mistyped fields on {msg.subject}")
            return
        if msg.subject != self.subject(event_type):
            self._drop("subject_mismatch", f"{event_type!r} on {msg.subject}")
            return
        if origin == self.node_id:
            self._ignored += 1
            return
        if event_type not in self._accepted:
            self._drop("not_accepted", f"{event_type!r} from {origin!r}")
            return
        self._received += 1
        try:
            await self.event_bus.emit(event_type, {**data, ORIGIN_KEY: origin})
        except Exception:  # the bus contains handler errors; this is a bus failure
            logger.exception("NATS bridge %s: emitting %r from %r failed", self.node_id,
                             event_type, origin)

    def _drop(self, reason: str, detail: str) -> None:
        self._dropped += 1
        self._drop_reasons[reason] = self._drop_reasons.get(reason, 0) + 1
        logger.warning("NATS bridge %s dropped a message (%s): %s", self.node_id, reason, detail)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "started" if self.started else "stopped"
        return f"<NatsEventBridge {self.node_id!r} {state} prefix={self.subject_prefix!r}>"
