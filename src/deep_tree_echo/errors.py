"""The root of every exception deep-tree-echo raises on purpose.

Each subpackage keeps its own exceptions in one ``errors`` module; all of them derive
from :class:`EchoError`, so ``except EchoError`` catches anything the library means to raise.
"""

from __future__ import annotations

from typing import Any


class EchoError(Exception):
    """Base class of all deep-tree-echo errors; carries a stable machine-readable ``code``."""

    code: str = "echo_error"
    #: The HTTP status the service answers with when this error reaches it.
    http_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The ``{"code", "message"}`` body used in HTTP errors and error responses."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ConfigurationError(EchoError):
    """A setting or configuration value is missing or invalid."""

    code = "configuration_error"


class InvalidInputError(EchoError, ValueError):
    """Input from a caller is malformed; nothing was stored or changed."""

    code = "invalid_input"
    http_status = 400
