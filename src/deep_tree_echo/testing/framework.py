"""The integration test framework: service mocks, HTTP mocks and a throwaway Echo system.

``IntegrationTestFramework`` keeps the seed's shape (``mock_services``, ``test_data``,
``mock_external_service``, ``test_environment``) and adds strict verification of mocks and
HTTP-level mocks of external APIs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import AsyncMock, call

from deep_tree_echo.config import EchoSettings
from deep_tree_echo.testing.errors import MockVerificationError, UnexpectedCallError

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.gateway import AARGateway
    from deep_tree_echo.testing.http_mocks import HTTPMock, ResponseSpec


def _is_exception(value: Any) -> bool:
    return isinstance(value, BaseException) or (
        isinstance(value, type) and issubclass(value, BaseException)
    )


class ServiceMock(AsyncMock):
    """An :class:`~unittest.mock.AsyncMock` standing in for one external service.

    Each declared method is an awaitable returning its response (an exception instance or
    class is raised instead). Calls are recorded as on any mock (``method_calls``,
    ``svc.get_data.assert_awaited_once_with(...)``). In strict mode calling an undeclared
    method raises :class:`UnexpectedCallError`, and :meth:`verify` fails for declared
    methods that were never called and for undeclared calls (even if the code swallowed
    the error).
    """

    def __init__(
        self,
        service_name: str = "service",
        responses: Mapping[str, Any] | None = None,
        *,
        strict: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=service_name, **kwargs)
        self.__dict__["_echo_service"] = service_name
        self.__dict__["_echo_strict"] = strict
        self.__dict__["_echo_declared"] = {}
        self.__dict__["_echo_unexpected"] = []
        for method, response in (responses or {}).items():
            self.declare(method, response)

    @property
    def service_name(self) -> str:
        return str(self.__dict__["_echo_service"])

    @property
    def strict(self) -> bool:
        return bool(self.__dict__["_echo_strict"])

    @property
    def declared(self) -> dict[str, Any]:
        """Declared method name -> response (a copy)."""
        return dict(self.__dict__["_echo_declared"])

    @property
    def unexpected_calls(self) -> list[str]:
        """Undeclared methods called in strict mode, in call order."""
        return list(self.__dict__["_echo_unexpected"])

    def declare(self, method: str, response: Any) -> AsyncMock:
        """Declare (or redeclare) ``method`` returning ``response``; returns its mock."""
        if not method.isidentifier() or method.startswith("_") or hasattr(AsyncMock, method):
            raise ValueError(f"{self.service_name}: cannot mock a method named {method!r}")
        self.__dict__["_echo_declared"][method] = response
        child: AsyncMock = getattr(self, method)
        if _is_exception(response):
            child.side_effect = response
        else:
            child.side_effect = None
            child.return_value = response
        return child

    def __getattr__(self, name: str) -> Any:
        child = super().__getattr__(name)
        state = self.__dict__
        if (
            not name.startswith("_")
            and state.get("_echo_strict")
            and name not in state.get("_echo_declared", {})
            and child.side_effect is None
        ):
            child.side_effect = self._undeclared(name)
        return child

    def _undeclared(self, name: str) -> Any:
        def reject(*args: Any, **kwargs: Any) -> Any:
            if name in self.__dict__["_echo_declared"]:  # declared after first access
                return self.__dict__["_echo_declared"][name]
            self.__dict__["_echo_unexpected"].append(name)
            raise UnexpectedCallError(
                f"{self.service_name}.{name}() is not declared on this strict mock; "
                f"declared: {sorted(self.__dict__['_echo_declared'])}",
                service=self.service_name,
                method=name,
            )

        return reject

    def calls_to(self, method: str) -> list[Any]:
        """The recorded calls of ``method`` (``unittest.mock.call`` objects), oldest first."""
        return [call(*c.args, **c.kwargs) for c in getattr(self, method).call_args_list]

    def unused(self) -> list[str]:
        """Declared methods that were never called."""
        return [m for m in self.__dict__["_echo_declared"] if getattr(self, m).call_count == 0]

    def verification_errors(self) -> list[str]:
        """What :meth:`verify` would complain about (always empty when not strict)."""
        if not self.strict:
            return []
        errors = [f"{self.service_name}.{m} was declared but never called" for m in self.unused()]
        errors += [f"{self.service_name}.{m} was called but not declared"
                   for m in dict.fromkeys(self.unexpected_calls)]
        return errors

    def verify(self) -> None:
        """In strict mode, fail unless every declared method was used and nothing else was."""
        errors = self.verification_errors()
        if errors:
            raise MockVerificationError("; ".join(errors), service=self.service_name)


class IntegrationTestFramework:
    """Mocks for what an integration talks to, and a throwaway Echo system to run it on.

    ``strict=True`` makes every mock it creates strict: :meth:`verify` (called by the
    ``echo_framework`` fixture at teardown) fails when a declared response was never used
    or an undeclared method was called.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.mock_services: dict[str, ServiceMock] = {}
        self.test_data: dict[str, Any] = {}
        self.http_mocks: list[HTTPMock] = []

    # mocks -------------------------------------------------------------------------------
    def mock_external_service(
        self, service_name: str, responses: Mapping[str, Any], *, strict: bool | None = None
    ) -> ServiceMock:
        """An async mock of ``service_name`` whose methods return ``responses[method]``."""
        mock = ServiceMock(
            service_name, responses, strict=self.strict if strict is None else strict
        )
        self.mock_services[service_name] = mock
        return mock

    def mock_http_api(
        self,
        base_url: str,
        routes: Mapping[str, ResponseSpec] | None = None,
        *,
        strict: bool | None = None,
        assert_all_mocked: bool = True,
    ) -> HTTPMock:
        """A respx router mocking the API at ``base_url``; enter it to intercept httpx.

        ``routes`` maps ``"METHOD /path"`` to a response spec (see
        :mod:`deep_tree_echo.testing.http_mocks`). Strict: every route must be called.
        """
        from deep_tree_echo.testing.http_mocks import HTTPMock

        mock = HTTPMock(
            base_url,
            routes,
            assert_all_called=self.strict if strict is None else strict,
            assert_all_mocked=assert_all_mocked,
        )
        self.http_mocks.append(mock)
        return mock

    def verification_errors(self) -> list[str]:
        """Every complaint :meth:`verify` would raise, across all strict mocks."""
        errors: list[str] = []
        for service in self.mock_services.values():
            errors += service.verification_errors()
        for http in self.http_mocks:
            if http.strict:
                errors += http.verification_errors()
        return errors

    def verify(self) -> None:
        """Fail with one :class:`MockVerificationError` listing every strict-mock problem."""
        errors = self.verification_errors()
        if errors:
            raise MockVerificationError(
                "mock verification failed:\n  " + "\n  ".join(errors), problems=errors
            )

    def close(self) -> None:
        """Stop HTTP mocks still intercepting (e.g. started without ``with``)."""
        for http in self.http_mocks:
            if http.active:
                http.stop(quiet=True)

    # environment -------------------------------------------------------------------------
    @asynccontextmanager
    async def test_environment(
        self, config: Mapping[str, Any] | EchoSettings | None = None
    ) -> AsyncIterator[AARGateway]:
        """An initialised :class:`AARGateway` on temporary storage, cleaned up afterwards.

        ``test_mode`` (or ``memory_store="memory"``) keeps memories in memory; otherwise
        they go to SQLite in a temporary directory, unless ``data_dir`` is given. The
        gateway is cleaned up and the temporary directory removed even if the body raises.
        """
        from deep_tree_echo.aar_core.gateway import AARGateway

        settings = EchoSettings.coerce(config)
        tmp: Path | None = None
        try:
            if settings.data_dir is None and (
                not settings.test_mode or settings.store_kind == "sqlite"
            ):
                tmp = Path(tempfile.mkdtemp(prefix="echo-test-"))
                settings = settings.model_copy(update={"data_dir": tmp})
            gateway = AARGateway(settings)
            try:
                await gateway.initialize()
                yield gateway
            finally:
                await gateway.cleanup()
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["IntegrationTestFramework", "ServiceMock"]
