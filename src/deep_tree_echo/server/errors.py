"""Exceptions raised by the HTTP/WebSocket server; each maps to one HTTP status."""

from __future__ import annotations

from typing import Any

from deep_tree_echo.errors import EchoError


class ServerError(EchoError):
    """Base of errors raised by :mod:`deep_tree_echo.server`; ``status_code`` is the HTTP status."""

    code = "server_error"
    status_code: int = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, code=code, **details)
        if status_code is not None:
            self.status_code = status_code


class NotReadyError(ServerError):
    """The gateway is not initialised yet (or is shutting down)."""

    code = "not_ready"
    status_code = 503


class BadRequestError(ServerError):
    """The request body could not be parsed (e.g. malformed JSON)."""

    code = "bad_request"
    status_code = 400


class UnsupportedMediaTypeError(ServerError):
    """The request body has a content type this route does not accept."""

    code = "unsupported_media_type"
    status_code = 415


class PayloadTooLargeError(ServerError):
    """The request body is larger than ``settings.max_body_bytes``."""

    code = "payload_too_large"
    status_code = 413


class DataDirLockedError(ServerError):
    """Another process owns the data directory (a running server, or a CLI command)."""

    code = "data_dir_locked"
    status_code = 409
