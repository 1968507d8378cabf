"""Errors raised by the testing helpers; all are :class:`EchoError` subclasses.

Verification failures are also :class:`AssertionError`, so pytest reports them as
failed assertions rather than crashes.
"""

from __future__ import annotations

from deep_tree_echo.errors import EchoError


class ServerStartError(EchoError):
    """A server process exited or did not print its ready line in time."""

    code = "server_start_failed"


class IntegrationTestError(EchoError):
    """Base class of the errors raised by :mod:`deep_tree_echo.testing`."""

    code = "testing_error"


class MockVerificationError(IntegrationTestError, AssertionError):
    """A strict mock was not used as declared: a response was never used or a call
    was not declared."""

    code = "mock_verification_failed"


class UnexpectedCallError(IntegrationTestError, AssertionError):
    """A strict service mock received a call to a method it does not declare."""

    code = "unexpected_call"


class MockExhaustedError(IntegrationTestError, AssertionError):
    """A mocked HTTP route answered with a sequence of responses and ran out of them."""

    code = "mock_exhausted"


class LifespanError(IntegrationTestError):
    """An ASGI application failed its lifespan startup or shutdown."""

    code = "lifespan_failed"


__all__ = [
    "IntegrationTestError",
    "LifespanError",
    "MockExhaustedError",
    "MockVerificationError",
    "ServerStartError",
    "UnexpectedCallError",
]
