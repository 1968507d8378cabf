"""Exceptions raised by the integration patterns (gateways, adapters, plugins, databases).

Each carries an HTTP ``http_status`` so the API router can answer with
``{"error": {"code", "message"}}`` and the right status without a lookup table.
"""

from __future__ import annotations

from deep_tree_echo.aar_core.errors import CoreError
from deep_tree_echo.errors import EchoError, InvalidInputError


class IntegrationError(EchoError):
    """Base class of errors raised by :mod:`deep_tree_echo.integration`."""

    code = "integration_error"
    http_status = 500


class InvalidRequestError(IntegrationError, InvalidInputError):
    """An external request is well-formed on the wire but not a valid request (HTTP 422)."""

    code = "invalid_request"
    http_status = 422


class DecodeError(IntegrationError, InvalidInputError):
    """A request body could not be decoded in its declared content type (HTTP 400)."""

    code = "bad_request"
    http_status = 400


class UnsupportedMediaTypeError(IntegrationError):
    """The request's Content-Type is not one the endpoint understands (HTTP 415)."""

    code = "unsupported_media_type"
    http_status = 415


class NotAcceptableError(IntegrationError):
    """No response format satisfies the request's Accept header (HTTP 406)."""

    code = "not_acceptable"
    http_status = 406


class AdapterError(IntegrationError, InvalidInputError):
    """An adapter could not convert data to or from the Echo format."""

    code = "adapter_error"
    http_status = 422


class UnknownFormatError(IntegrationError, ValueError):
    """No adapter is registered for the requested format (a ``ValueError``, as in the seed)."""

    code = "unknown_format"
    http_status = 400


class DatabaseError(IntegrationError, CoreError):
    """Base of database-integration errors; raised by the database agent and by the plugin.

    It is also a :class:`CoreError`, so when the database agent raises it the gateway turns it
    into a clean ``{"status": "error", "error": {"code", "message"}}`` response.
    """

    code = "database_error"
    http_status = 500


class QueryError(DatabaseError, InvalidInputError):
    """The database rejected the query (syntax error, unknown table, bad parameters...)."""

    code = "query_error"
    http_status = 400


class WriteNotAllowedError(DatabaseError):
    """A write was attempted on a database configured read-only (``allow_writes`` false)."""

    code = "write_not_allowed"
    http_status = 403


class DatabaseUnavailableError(DatabaseError):
    """The database is not configured, not reachable, or the query timed out."""

    code = "database_unavailable"
    http_status = 503


class TransportError(IntegrationError):
    """A message transport between nodes (NATS) is unreachable, refused us or failed (HTTP 503)."""

    code = "transport_error"
    http_status = 503


class TransportAuthError(TransportError):
    """The transport rejected our credentials (wrong or missing token, user or password)."""

    code = "transport_auth_failed"
    http_status = 503


__all__ = [
    "AdapterError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DecodeError",
    "IntegrationError",
    "InvalidRequestError",
    "NotAcceptableError",
    "QueryError",
    "TransportAuthError",
    "TransportError",
    "UnknownFormatError",
    "UnsupportedMediaTypeError",
    "WriteNotAllowedError",
]
