"""The root of every exception deep-tree-echo raises on purpose.

Each subpackage keeps its own exceptions in one ``errors`` module; all of them derive
from :class:`EchoError`, so ``except EchoError`` catches anything the library means to raise.
Each class declares a ``code`` and the ``http_status`` the service answers with
(``server/handlers.py`` is the one place that maps them to HTTP). The hierarchy (module, status;
a class with two parents is shown under both)::

    EchoError                               errors                 500
    + ConfigurationError                    errors                 500
    + InvalidInputError                     errors                 400  (also ValueError)
    |   + InvalidSessionIdError             aar_core.errors        400
    |   + InvalidMemoryError                aar_core.errors        400
    |   |   + InvalidTenantError                                   400
    |   |   + ClockDriftError                                      400
    |   + DecodeError                       integration.errors     400
    |   + InvalidRequestError               integration.errors     422
    |   + AdapterError                      integration.errors     422
    |   + QueryError                        integration.errors     400
    + CoreError                             aar_core.errors        500
    |   + NotInitializedError                                      503
    |   + StoreError                                               503
    |   + EngineError                                              503
    |   + EventHandlerTimeout                                      500
    |   + ReplicationError                                         500
    |   + InvalidSessionIdError, InvalidMemoryError                400
    |   + DatabaseError                     integration.errors     500
    |       + QueryError                                           400
    |       + WriteNotAllowedError                                 403
    |       + DatabaseUnavailableError                             503
    + IntegrationError                      integration.errors     500
    |   + DatabaseError (above)
    |   + DecodeError, InvalidRequestError, AdapterError (above)
    |   + UnsupportedMediaTypeError                                415
    |   + NotAcceptableError                                       406
    |   + UnknownFormatError                                       400  (also ValueError)
    |   + TransportError                                           503
    |       + TransportAuthError                                   503
    + ResilienceError                       resilience.errors      500
    |   + CircuitOpenError                                         503  (Retry-After)
    |   + RateLimitExceeded                                        429  (Retry-After)
    |   + APIError                                                 502
    |       + APIConnectionError                                   502
    |       |   + APITimeoutError                                  502
    |       + APIStatusError                                       502
    |           + APIClientError                                   502
    |           + APIServerError                                   502
    + ServerError                           server.errors          500
    |   + NotReadyError                                            503
    |   + PayloadTooLargeError                                     413
    |   + DataDirLockedError                                       409
    |   + EventsExpiredError                                       410
    |   + OutboxError                                              503
    + IntegrationTestError                  testing.errors         500
    |   + LifespanError, MockExhaustedError, MockVerificationError, UnexpectedCallError
    + ServerStartError                      testing.errors         500
    + CLIError                              cli.errors             500
        + NotFound                                                 500

``tests/test_errors.py`` keeps this tree in step with the classes.
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
