"""Every error class declares the HTTP status the service answers with."""

from __future__ import annotations

import pytest

from deep_tree_echo._http import retry_after_header
from deep_tree_echo.aar_core.errors import (
    EngineError,
    InvalidMemoryError,
    NotInitializedError,
    StoreError,
)
from deep_tree_echo.errors import EchoError, InvalidInputError
from deep_tree_echo.integration.errors import UnsupportedMediaTypeError, WriteNotAllowedError
from deep_tree_echo.resilience.errors import APIServerError, CircuitOpenError, RateLimitExceeded
from deep_tree_echo.server.errors import PayloadTooLargeError
from deep_tree_echo.server.handlers import status_for


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInputError("bad"), 400),
        (InvalidMemoryError("bad id"), 400),
        (NotInitializedError("later"), 503),
        (StoreError("disk"), 503),
        (EngineError("llm down"), 503),
        (CircuitOpenError("llm", 3.0), 503),
        (RateLimitExceeded(retry_after=2.0, key="k"), 429),
        (APIServerError(500, "oops"), 502),
        (UnsupportedMediaTypeError("text/csv"), 415),
        (WriteNotAllowedError("read-only"), 403),
        (PayloadTooLargeError("big"), 413),
        (EchoError("anything"), 500),
        (EchoError("teapot", http_status=418), 418),
    ],
)
def test_status_for_uses_the_declared_status(error: EchoError, status: int) -> None:
    assert status_for(error) == status
    assert error.to_dict()["code"] == error.code


def test_retry_after_header_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(RateLimitExceeded(retry_after=0.2, key="k")) == {"Retry-After": "1"}
    assert retry_after_header(CircuitOpenError("llm", 2.5)) == {"Retry-After": "3"}
    assert retry_after_header(EchoError("no hint")) == {}


def _subclasses(cls: type[EchoError]) -> set[type[EchoError]]:
    found: set[type[EchoError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_the_error_tree_in_the_docstring_names_every_error_class() -> None:
    import importlib
    import pkgutil

    import deep_tree_echo
    import deep_tree_echo.errors

    for module in pkgutil.walk_packages(deep_tree_echo.__path__, "deep_tree_echo."):
        if module.name.endswith(".errors"):
            importlib.import_module(module.name)
    doc = deep_tree_echo.errors.__doc__ or ""
    ours = {c for c in _subclasses(EchoError) if c.__module__.startswith("deep_tree_echo.")}
    assert len(ours) > 40
    missing = sorted(c.__name__ for c in ours if c.__name__ not in doc)
    assert missing == [], f"add these to the tree in deep_tree_echo/errors.py: {missing}"
