"""IntegrationTestFramework: service mocks (lenient and strict) and the test environment."""

from __future__ import annotations

import contextlib
from pathlib import Path
from unittest.mock import AsyncMock, call

import pytest

from deep_tree_echo.config import EchoSettings
from deep_tree_echo.errors import EchoError
from deep_tree_echo.testing import (
    IntegrationTestFramework,
    MockVerificationError,
    ServiceMock,
    UnexpectedCallError,
)

RESPONSES = {
    "get_data": {"status": "success", "data": "test_data"},
    "post_data": {"status": "created", "id": "123"},
}


# service mocks ----------------------------------------------------------------------------
async def test_mock_methods_return_declared_responses_and_record_calls() -> None:
    framework = IntegrationTestFramework()
    svc = framework.mock_external_service("external_api", RESPONSES)

    assert framework.mock_services["external_api"] is svc
    assert isinstance(svc, AsyncMock)
    assert await svc.get_data("q", limit=2) == RESPONSES["get_data"]
    assert await svc.post_data({"x": 1}) == RESPONSES["post_data"]

    svc.get_data.assert_awaited_once_with("q", limit=2)
    assert svc.calls_to("post_data") == [call({"x": 1})]
    assert svc.method_calls == [call.get_data("q", limit=2), call.post_data({"x": 1})]


async def test_lenient_mock_accepts_undeclared_methods_and_verifies_clean() -> None:
    framework = IntegrationTestFramework()
    svc = framework.mock_external_service("external_api", RESPONSES)
    await svc.something_else()
    svc.something_else.assert_awaited_once()
    framework.verify()  # nothing strict: unused and undeclared are fine
    assert framework.verification_errors() == []


async def test_exception_responses_are_raised() -> None:
    svc = ServiceMock("flaky", {"fetch": TimeoutError("upstream slow"), "boom": ValueError})
    with pytest.raises(TimeoutError, match="upstream slow"):
        await svc.fetch()
    with pytest.raises(ValueError):
        await svc.boom()
    assert svc.fetch.await_count == 1


async def test_strict_mock_rejects_undeclared_calls_immediately() -> None:
    svc = ServiceMock("billing", {"charge": {"ok": True}}, strict=True)
    with pytest.raises(UnexpectedCallError, match=r"billing\.refund\(\) is not declared"):
        await svc.refund(5)
    assert svc.unexpected_calls == ["refund"]


async def test_strict_verify_reports_unused_and_swallowed_undeclared_calls() -> None:
    framework = IntegrationTestFramework(strict=True)
    svc = framework.mock_external_service("billing", {"charge": {"ok": True}, "void": {}})
    await svc.charge(1)
    with contextlib.suppress(UnexpectedCallError):
        await svc.refund(1)  # code under test swallowing the error must not hide it

    with pytest.raises(MockVerificationError) as info:
        framework.verify()
    message = str(info.value)
    assert "billing.void was declared but never called" in message
    assert "billing.refund was called but not declared" in message
    assert "billing.charge" not in message
    assert isinstance(info.value, AssertionError) and isinstance(info.value, EchoError)


async def test_per_mock_strict_overrides_the_framework_default() -> None:
    framework = IntegrationTestFramework()
    framework.mock_external_service("lenient", {"a": 1})
    framework.mock_external_service("strict", {"b": 2}, strict=True)
    assert framework.verification_errors() == ["strict.b was declared but never called"]

    strict_framework = IntegrationTestFramework(strict=True)
    strict_framework.mock_external_service("opted_out", {"a": 1}, strict=False)
    strict_framework.verify()


async def test_strict_mock_passes_when_used_exactly_as_declared() -> None:
    svc = ServiceMock("billing", {"charge": {"ok": True}}, strict=True)
    assert await svc.charge(3) == {"ok": True}
    svc.verify()


async def test_declare_after_access_makes_the_method_legal() -> None:
    svc = ServiceMock("billing", {}, strict=True)
    method = svc.late  # accessed (e.g. by hasattr) before being declared
    svc.declare("late", {"ok": True})
    assert await method() == {"ok": True}
    svc.verify()


def test_mock_api_names_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="cannot mock"):
        ServiceMock("svc", {"assert_called": 1})
    with pytest.raises(ValueError, match="cannot mock"):
        ServiceMock("svc", {"_private": 1})


# test environment -------------------------------------------------------------------------
async def test_environment_uses_temporary_sqlite_and_removes_it() -> None:
    framework = IntegrationTestFramework()
    async with framework.test_environment({}) as gateway:
        assert gateway.initialized
        assert gateway.settings.store_kind == "sqlite"
        data_dir = gateway.settings.data_dir
        assert data_dir is not None
        await gateway.memory.store_memory("m", {"v": 1})
        assert (data_dir / "memories.db").exists()
    assert gateway.initialized is False
    assert not data_dir.exists()


async def test_environment_in_test_mode_is_in_memory() -> None:
    async with IntegrationTestFramework().test_environment({"test_mode": True}) as gateway:
        assert gateway.settings.store_kind == "memory"
        assert gateway.settings.data_dir is None
        result = await gateway.process_cognitive_input({"type": "text", "content": "hi"})
        assert result["status"] == "success"
    assert gateway.initialized is False


async def test_environment_cleans_up_when_the_body_raises() -> None:
    seen: dict[str, Path | None] = {}
    with pytest.raises(RuntimeError, match="body failed"):
        async with IntegrationTestFramework().test_environment(None) as gateway:
            seen["dir"] = gateway.settings.data_dir
            raise RuntimeError("body failed")
    assert gateway.initialized is False
    assert seen["dir"] is not None and not seen["dir"].exists()


async def test_environment_keeps_a_caller_supplied_data_dir(tmp_path: Path) -> None:
    settings = EchoSettings(data_dir=tmp_path / "mine")
    async with IntegrationTestFramework().test_environment(settings) as gateway:
        assert gateway.settings.data_dir == tmp_path / "mine"
        await gateway.memory.store_memory("m", {"v": 1})
    assert (tmp_path / "mine" / "memories.db").exists()
    async with IntegrationTestFramework().test_environment(settings) as again:
        assert await again.memory.retrieve_memory("m") == {"v": 1}


async def test_test_data_is_free_for_tests() -> None:
    framework = IntegrationTestFramework()
    framework.test_data["user"] = {"id": 7}
    assert framework.test_data == {"user": {"id": 7}}
