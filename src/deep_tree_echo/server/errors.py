"""Exceptions raised by the HTTP/WebSocket server; each maps to one HTTP status."""

from __future__ import annotations

from deep_tree_echo.errors import EchoError


class ServerError(EchoError):
    """Base of errors raised by :mod:`deep_tree_echo.server`; ``http_status`` is the HTTP status."""

    code = "server_error"
    http_status = 500


class NotReadyError(ServerError):
    """The gateway is not initialised yet (or is shutting down)."""

    code = "not_ready"
    http_status = 503


class PayloadTooLargeError(ServerError):
    """The request body is larger than ``settings.max_body_bytes``."""

    code = "payload_too_large"
    http_status = 413


class DataDirLockedError(ServerError):
    """Another process owns the data directory (a running server, or a CLI command)."""

    code = "data_dir_locked"
    http_status = 409


class EventsExpiredError(ServerError):
    """A client asked to resume from an event the outbox no longer keeps (past retention)."""

    code = "events_expired"
    http_status = 410


class OutboxError(ServerError):
    """The event outbox could not be opened, written or read."""

    code = "outbox_error"
    http_status = 503
