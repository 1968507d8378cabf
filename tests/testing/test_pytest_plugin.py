"""The pytest plugin, run in pytester projects that have no asyncio configuration at all."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow  # each test runs pytest in a subprocess

# The seed's style: a plain @pytest.fixture on an async def and @pytest.mark.asyncio, plus an
# unmarked async test and an async generator fixture whose teardown must run.
SEED_STYLE = textwrap.dedent(
    """
    import pytest

    EVENTS = []

    class Framework:
        ready = True

    @pytest.fixture
    async def framework():
        return Framework()

    @pytest.fixture
    async def resource():
        EVENTS.append("setup")
        yield "resource"
        EVENTS.append("teardown")

    @pytest.mark.asyncio
    async def test_marked(framework, resource):
        assert isinstance(framework, Framework)
        assert resource == "resource"

    async def test_unmarked(framework):
        assert framework.ready is True

    def test_teardown_ran():
        assert EVENTS == ["setup", "teardown"]
    """
)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a subprocess, as a user's project would run it (the entry point loads us)."""
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args
    )


def test_entry_point_loads_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fixtures_exist(request):
            for name in ("echo_framework", "echo_gateway", "echo_client", "echo_server"):
                assert request._fixturemanager.getfixturedefs(name, request.node), name
        """
    )
    result = run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_async_tests_and_fixtures_work_without_configuration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SEED_STYLE)
    result = run(pytester, "-W", "error::pytest.PytestDeprecationWarning")
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*requested async @pytest.fixture*")
    result.stdout.no_fnmatch_line("*asyncio_default_fixture_loop_scope*is unset*")


def test_cli_opt_out_keeps_pytest_asyncio_strict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SEED_STYLE)
    result = run(pytester, "--echo-no-auto-asyncio")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) < 3, result.stdout.str()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()


def test_ini_opt_out(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\necho_auto_asyncio = false\n")
    pytester.makepyfile(SEED_STYLE)
    outcomes = run(pytester).parseoutcomes()
    assert outcomes.get("failed", 0) >= 1


@pytest.mark.parametrize("where", ["ini", "cli", "override"])
def test_an_explicit_asyncio_mode_is_respected(pytester: pytest.Pytester, where: str) -> None:
    pytester.makepyfile(
        """
        import pytest

        async def test_unmarked():
            pass

        @pytest.mark.asyncio
        async def test_marked():
            pass
        """
    )
    args: list[str] = []
    if where == "ini":
        pytester.makeini("[pytest]\nasyncio_mode = strict\n")
    elif where == "cli":
        args = ["--asyncio-mode=strict"]
    else:
        args = ["-o", "asyncio_mode=strict"]
    result = run(pytester, *args)
    result.stdout.fnmatch_lines(["*asyncio: mode=*STRICT*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1, result.stdout.str()  # only the marked one runs


def test_auto_mode_shows_in_the_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = run(pytester)
    result.stdout.fnmatch_lines(["*asyncio: mode=*AUTO*"])


def test_without_pytest_asyncio_the_plugin_runs_async_tests_itself(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(SEED_STYLE)
    result = run(pytester, "-p", "no:asyncio")
    result.stdout.fnmatch_lines(["*async tests run by deep-tree-echo*"])
    result.assert_outcomes(passed=3)


def test_fallback_shares_one_loop_between_fixture_and_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def loop_and_future():
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            yield loop, fut
            assert fut.result() == "done"

        async def test_same_loop(loop_and_future):
            loop, fut = loop_and_future
            assert asyncio.get_running_loop() is loop
            fut.set_result("done")
        """
    )
    run(pytester, "-p", "no:asyncio").assert_outcomes(passed=1)


def test_fallback_reports_failures_in_async_fixture_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def broken():
            yield 1
            raise RuntimeError("teardown exploded")

        async def test_uses_it(broken):
            assert broken == 1
        """
    )
    result = run(pytester, "-p", "no:asyncio")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*teardown exploded*"])


def test_fallback_can_be_disabled_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("async def test_unmarked():\n    pass\n")
    result = run(pytester, "-p", "no:asyncio", "--echo-no-auto-asyncio")
    assert result.parseoutcomes().get("passed", 0) == 0


STRICT_MOCKS = textwrap.dedent(
    """
    import pytest

    @pytest.mark.echo_strict
    async def test_declared_but_unused(echo_framework):
        svc = echo_framework.mock_external_service(
            "billing", {"charge": {"ok": True}, "refund": {"ok": True}}
        )
        assert await svc.charge(10) == {"ok": True}

    @pytest.mark.echo_strict
    async def test_everything_used(echo_framework):
        svc = echo_framework.mock_external_service("billing", {"charge": {"ok": True}})
        assert await svc.charge(10) == {"ok": True}

    async def test_not_strict_by_default(echo_framework):
        echo_framework.mock_external_service("billing", {"charge": {"ok": True}})

    @pytest.mark.echo_strict
    async def test_failing_test_is_not_verified_again(echo_framework):
        echo_framework.mock_external_service("billing", {"charge": {"ok": True}})
        assert False, "the test's own failure"
    """
)


def test_echo_framework_verifies_strict_mocks_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(STRICT_MOCKS)
    result = run(pytester)
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_declared_but_unused*",
            "*billing.refund was declared but never called*",
        ]
    )
    result.stdout.no_fnmatch_line("*ERROR at teardown of test_failing_test_is_not_verified*")


def test_ini_makes_all_echo_framework_mocks_strict(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\necho_strict_mocks = true\n")
    pytester.makepyfile(
        """
        async def test_unused(echo_framework):
            echo_framework.mock_external_service("billing", {"charge": {"ok": True}})
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*billing.charge was declared but never called*"])


def test_echo_client_runs_an_overridden_apps_lifespan(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from contextlib import asynccontextmanager

        import pytest
        from fastapi import FastAPI, Request

        LOG = []

        @asynccontextmanager
        async def lifespan(app):
            LOG.append("startup")
            yield {"greeting": "hello"}
            LOG.append("shutdown")

        app = FastAPI(lifespan=lifespan)

        @app.get("/greet")
        async def greet(request: Request):
            return {"greeting": request.state.greeting}

        @pytest.fixture
        def echo_app():
            return app

        async def test_lifespan_state_reaches_requests(echo_client):
            assert LOG == ["startup"]
            response = await echo_client.get("/greet")
            assert response.json() == {"greeting": "hello"}

        def test_shutdown_ran():
            assert LOG == ["startup", "shutdown"]
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_the_seed_example_runs_verbatim_in_an_unconfigured_project(
    pytester: pytest.Pytester,
) -> None:
    seed = Path(__file__).with_name("test_seed_example.py").read_text(encoding="utf-8")
    pytester.makepyfile(test_seed=seed)
    run(pytester).assert_outcomes(passed=1)
