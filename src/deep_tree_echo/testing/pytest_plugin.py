"""pytest plugin for testing deep-tree-echo integrations (entry point ``pytest11``).

Fixtures: ``echo_framework``, ``echo_config``, ``echo_gateway``, ``echo_app``,
``echo_client``, ``echo_server`` (and ``echo_server_args`` to extend its command line).

Async tests and ``async def`` fixtures work with no configuration: when pytest-asyncio is
active and the project did not choose an ``asyncio_mode`` (ini, ``-o`` or CLI), the mode is
switched to ``auto``; without pytest-asyncio the plugin runs them itself. Opt out with
``--echo-no-auto-asyncio`` or ini ``echo_auto_asyncio = false``.

Heavy imports (the gateway, the server, respx) happen inside fixtures, so merely having
the package installed costs other projects' test runs nothing.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    import httpx

    from deep_tree_echo.aar_core.gateway import AARGateway
    from deep_tree_echo.testing.framework import IntegrationTestFramework
    from deep_tree_echo.testing.live_server import EchoServer

_F = TypeVar("_F", bound=Callable[..., Any])
_fixture: Any
try:  # async fixtures declared for pytest-asyncio also work in its strict mode
    from pytest_asyncio import fixture as _fixture
except ImportError:  # pragma: no cover - pytest-asyncio is optional
    _fixture = pytest.fixture


def _async_fixture(func: _F) -> _F:
    return cast("_F", _fixture(func))

_FALLBACK_NAME = "deep_tree_echo-asyncio"
_test_failed = pytest.StashKey[bool]()


# configuration --------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deep-tree-echo")
    group.addoption(
        "--echo-no-auto-asyncio",
        action="store_true",
        default=False,
        help="do not make async tests/fixtures work automatically (keep pytest-asyncio's mode)",
    )
    parser.addini(
        "echo_auto_asyncio",
        type="bool",
        default=True,
        help="deep-tree-echo: run async tests and fixtures without extra configuration",
    )
    parser.addini(
        "echo_strict_mocks",
        type="bool",
        default=False,
        help="deep-tree-echo: echo_framework mocks are strict (verified at teardown)",
    )


def _user_set(config: pytest.Config, name: str) -> bool:
    """Whether the project chose ini value ``name`` (config file or ``-o name=...``)."""
    for override in getattr(config.option, "override_ini", None) or ():
        if str(override).split("=", 1)[0].strip() == name:
            return True
    # pytest >= 9 deprecates the public ``inicfg`` mapping; both hold the file's keys
    inicfg: Any = getattr(config, "_inicfg", None)
    if inicfg is None:
        inicfg = getattr(config, "inicfg", {})
    return name in inicfg


def _auto_asyncio_enabled(config: pytest.Config) -> bool:
    return not config.getoption("echo_no_auto_asyncio") and bool(
        config.getini("echo_auto_asyncio")
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "echo_strict: the echo_framework fixture creates strict mocks"
    )
    if not _auto_asyncio_enabled(config):
        return
    if config.pluginmanager.has_plugin("asyncio"):
        if config.getoption("asyncio_mode", None) is None and not _user_set(config, "asyncio_mode"):
            config.option.asyncio_mode = "auto"
            if not _user_set(config, "asyncio_default_fixture_loop_scope"):
                # the same default pytest-asyncio will adopt; avoids its "unset" warning
                cache = getattr(config, "_inicache", None)
                if isinstance(cache, dict):
                    cache["asyncio_default_fixture_loop_scope"] = "function"
    elif not config.pluginmanager.has_plugin(_FALLBACK_NAME):
        config.addinivalue_line("markers", "asyncio: run the test in an asyncio event loop")
        config.pluginmanager.register(_AsyncioFallback(), _FALLBACK_NAME)


def pytest_report_header(config: pytest.Config) -> str | None:
    if not _auto_asyncio_enabled(config):
        return "deep-tree-echo: automatic asyncio support disabled"
    if config.pluginmanager.has_plugin(_FALLBACK_NAME):
        return "deep-tree-echo: async tests run by deep-tree-echo (pytest-asyncio not active)"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_test_failed] = True
    return report


# minimal asyncio support when pytest-asyncio is absent ----------------------------------
class _AsyncioFallback:
    """Runs coroutine tests and async fixtures on one event loop per test session."""

    def __init__(self) -> None:
        self._runner: asyncio.Runner | None = None

    @property
    def runner(self) -> asyncio.Runner:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner

    def pytest_unconfigure(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        func = pyfuncitem.obj
        if not inspect.iscoroutinefunction(func):
            return None
        names = pyfuncitem._fixtureinfo.argnames
        kwargs = {name: pyfuncitem.funcargs[name] for name in names}
        self.runner.run(func(**kwargs))
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        func = fixturedef.func
        if not (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
            return (yield)
        original = func
        fixturedef.func = self._synchronize(original)  # type: ignore[misc]
        try:
            return (yield)
        finally:
            fixturedef.func = original  # type: ignore[misc]

    def _synchronize(self, func: Callable[..., Any]) -> Callable[..., Any]:
        runner = self.runner
        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                agen = func(*args, **kwargs)
                value = runner.run(agen.__anext__())
                try:
                    yield value
                finally:
                    try:
                        runner.run(agen.__anext__())
                    except StopAsyncIteration:
                        pass
                    else:
                        runner.run(agen.aclose())
                        raise RuntimeError(f"async fixture {func.__name__} yielded twice")

            return generator

        @functools.wraps(func)
        def function(*args: Any, **kwargs: Any) -> Any:
            return runner.run(func(*args, **kwargs))

        return function


# fixtures -------------------------------------------------------------------------------
@pytest.fixture
def echo_framework(request: pytest.FixtureRequest) -> Iterator[IntegrationTestFramework]:
    """A fresh :class:`IntegrationTestFramework`; strict mocks are verified at teardown.

    Strict when the test is marked ``@pytest.mark.echo_strict`` or ini
    ``echo_strict_mocks = true``. Verification is skipped if the test itself failed.
    """
    from deep_tree_echo.testing.framework import IntegrationTestFramework

    strict = bool(request.config.getini("echo_strict_mocks")) or (
        request.node.get_closest_marker("echo_strict") is not None
    )
    framework = IntegrationTestFramework(strict=strict)
    try:
        yield framework
    finally:
        framework.close()
    if not request.node.stash.get(_test_failed, False):
        framework.verify()


@pytest.fixture
def echo_config() -> dict[str, Any]:
    """Settings for ``echo_gateway``/``echo_client``; override it to change them."""
    return {}


@_async_fixture
async def echo_gateway(
    echo_framework: IntegrationTestFramework, echo_config: dict[str, Any]
) -> AsyncIterator[AARGateway]:
    """An initialised :class:`AARGateway` on temporary SQLite storage (or in memory with
    ``{"test_mode": True}`` in ``echo_config``), cleaned up afterwards."""
    async with echo_framework.test_environment(echo_config) as gateway:
        yield gateway


@pytest.fixture
def echo_app(echo_gateway: AARGateway) -> Any:
    """The service's ASGI app, serving ``echo_gateway``; override it to test another app."""
    from deep_tree_echo.server.app import create_app

    return create_app(echo_gateway.settings, gateway=echo_gateway)


@_async_fixture
async def echo_client(echo_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` on ``echo_app`` in-process, with the app's lifespan run."""
    import httpx

    from deep_tree_echo.testing._asgi import LifespanManager

    async with LifespanManager(echo_app) as lifespan:
        transport = httpx.ASGITransport(app=lifespan.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
def echo_server_args() -> list[str]:
    """Extra ``deep-tree-echo serve`` arguments for ``echo_server``; override to add some."""
    return []


@pytest.fixture
def echo_server(
    tmp_path_factory: pytest.TempPathFactory, echo_server_args: list[str]
) -> Iterator[EchoServer]:
    """A real ``deep-tree-echo serve`` process on a free loopback port, stopped afterwards.

    Yields an :class:`EchoServer` (``.url``, ``.port``, ``.data_dir``, ``.process``,
    ``.kill()``, ``.restart()``).
    """
    from deep_tree_echo.testing.live_server import EchoServer

    server = EchoServer(tmp_path_factory.mktemp("echo-server"), args=echo_server_args)
    server.start()
    try:
        yield server
    finally:
        server.stop()
