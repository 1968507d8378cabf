"""AARGateway: the seed's request/response shapes, memory grounding, events, errors."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.aar_core.errors import CoreError
from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.errors import ConfigurationError


def ask(text: str, session: str = "s1", type_: str = "text") -> dict[str, Any]:
    return {"type": type_, "content": text,
            "context": {"external_source": "test", "timestamp": None, "session_id": session}}


@pytest.fixture
async def gateway() -> Any:
    async with AARGateway({"test_mode": True}) as gw:
        yield gw


async def test_success_response_has_the_seed_shape(gateway: AARGateway) -> None:
    before = time.perf_counter()
    result = await gateway.process_cognitive_input(ask("hello there"))
    elapsed = time.perf_counter() - before
    assert set(result) >= {"status", "cognitive_response", "processing_time", "confidence",
                           "timestamp", "session_id"}
    assert result["status"] == "success"
    assert result["session_id"] == "s1"
    # Measured inside the call: positive, and no longer than the call as seen from outside.
    assert isinstance(result["processing_time"], float)
    assert 0 < result["processing_time"] <= elapsed
    assert 0.0 <= result["confidence"] <= 1.0
    assert datetime.fromisoformat(result["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert result["cognitive_response"]["agent"] == "echo"


async def test_vault_code_is_answered_from_memory(gateway: AARGateway) -> None:
    for filler in ("the weather was cold today", "my cat likes fish", "we met at the lab"):
        await gateway.process_cognitive_input(ask(filler))
    await gateway.process_cognitive_input(ask("the vault code is 7741"))
    result = await gateway.process_cognitive_input(ask("what is the vault code?"))
    assert result["status"] == "success"
    assert "7741" in result["cognitive_response"]["text"]
    used = result["cognitive_response"]["memories_used"]
    assert used and all(
        set(m) == {"id", "score", "relevance", "recency", "importance"} for m in used
    )
    assert result["confidence"] > 0.5


async def test_question_without_memories_has_zero_confidence(gateway: AARGateway) -> None:
    result = await gateway.process_cognitive_input(ask("what is the launch date?"))
    assert result["status"] == "success"
    assert result["confidence"] == 0.0


async def test_every_input_is_stored_with_its_relations(gateway: AARGateway) -> None:
    first = await gateway.process_cognitive_input(ask("the vault code is 7741", "arena-9"))
    second = await gateway.process_cognitive_input(ask("what is the vault code?", "arena-9"))
    stored = await gateway.memory.retrieve_memory(second["cognitive_response"]["memory_id"])
    assert stored is not None
    assert stored["session_id"] == "arena-9"
    assert stored["relations"]["agent"] == "echo"
    assert first["cognitive_response"]["memory_id"] in stored["relations"]["used_memories"]


async def test_dict_content_and_metadata_in_place_of_context(gateway: AARGateway) -> None:
    result = await gateway.process_cognitive_input(
        {"type": "json_input", "content": {"message": "remember the blue door"},
         "metadata": {"format": "json", "session_id": "m1"}}
    )
    assert result["status"] == "success"
    assert result["session_id"] == "m1"
    assert result["cognitive_response"]["type"] == "json_input"


async def test_missing_session_gets_a_new_id(gateway: AARGateway) -> None:
    result = await gateway.process_cognitive_input({"type": "text", "content": "hi"})
    assert result["status"] == "success"
    assert isinstance(result["session_id"], str) and result["session_id"]
    assert result["session_id"] in gateway.sessions


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ("not a dict", "invalid_request"),
        ({"type": "text"}, "missing_content"),
        ({"type": "text", "content": None}, "missing_content"),
        ({"type": "text", "content": "   "}, "empty_content"),
        ({"type": "text", "content": 42}, "invalid_content"),
        ({"type": 7, "content": "x"}, "invalid_type"),
        ({"type": "text", "content": "x", "context": "nope"}, "invalid_context"),
        ({"type": "text", "content": "x", "context": {"session_id": 12}}, "invalid_session_id"),
        ({"type": "text", "content": "x" * 100_001}, "content_too_large"),
    ],
)
async def test_malformed_input_is_an_error_response_and_writes_nothing(
    gateway: AARGateway, request_: Any, code: str
) -> None:
    before = await gateway.memory.get_all_memories()
    result = await gateway.process_cognitive_input(request_)
    assert result["status"] == "error"
    assert result["error"]["code"] == code
    assert result["error"]["message"]
    assert result["confidence"] == 0.0
    assert await gateway.memory.get_all_memories() == before


async def test_events_are_emitted_for_input_message_and_memory(gateway: AARGateway) -> None:
    seen: dict[str, list[dict[str, Any]]] = {}

    async def record(event_type: str, data: dict[str, Any]) -> None:
        seen.setdefault(event_type, []).append(data)

    for name in ("user.input", "agent.message", "memory.update"):
        gateway.event_bus.register(name, lambda d, n=name: record(n, d))
    await gateway.process_cognitive_input(ask("the sky is green", "ev"))
    assert seen["user.input"][0]["session_id"] == "ev"
    assert seen["agent.message"][0]["session_id"] == "ev"
    assert seen["agent.message"][0]["agent_id"] == "echo"
    assert seen["memory.update"][0]["session_id"] == "ev"


async def test_outside_user_input_event_is_processed(gateway: AARGateway) -> None:
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    gateway.event_bus.register("agent.message", replies.put)
    await gateway.event_bus.emit("user.input", {"content": "hello from a socket", "user_id": "u7"})
    reply = await asyncio.wait_for(replies.get(), 10)
    assert reply["session_id"] == "user-u7"


class _Upper(Agent):
    name = "upper"
    handles = frozenset({"shout"})

    async def handle(self, ctx: AgentContext) -> AgentResult:
        return AgentResult(ctx.text.upper(), 0.9, {"extra": 1})


class _Broken(Agent):
    name = "broken"
    handles = frozenset({"explode"})

    async def handle(self, ctx: AgentContext) -> AgentResult:
        raise RuntimeError("boom")


async def test_agents_are_routed_by_type_and_failures_are_contained(gateway: AARGateway) -> None:
    gateway.register_agent(_Upper())
    gateway.register_agent(_Broken())
    shouted = await gateway.process_cognitive_input(ask("hey", type_="shout"))
    assert shouted["cognitive_response"]["text"] == "HEY"
    assert shouted["cognitive_response"]["extra"] == 1
    assert shouted["cognitive_response"]["agent"] == "upper"
    unknown = await gateway.process_cognitive_input(ask("hey", type_="no-such-type"))
    assert unknown["cognitive_response"]["agent"] == "echo"
    broken = await gateway.process_cognitive_input(ask("hey", type_="explode"))
    assert broken["status"] == "error"
    assert broken["error"]["code"] == "internal_error"
    with pytest.raises(CoreError):
        gateway.register_agent(_Upper())


async def test_initialize_and_cleanup_are_idempotent(tmp_path: Path) -> None:
    gw = AARGateway({"data_dir": str(tmp_path)})
    assert gw.settings.store_kind == "sqlite"
    await gw.initialize()
    await gw.initialize()
    await gw.process_cognitive_input(ask("persist me"))
    await gw.cleanup()
    await gw.cleanup()
    assert (tmp_path / "memories.db").exists()
    async with AARGateway(EchoSettings(data_dir=tmp_path)) as again:
        memories = await again.memory.get_all_memories()
        assert again.node_id == gw.node_id  # a node keeps its identity across restarts
    assert any(m["content"] == "persist me" for m in memories.values())


async def test_redis_store_is_shared_between_gateways(redis_url: str) -> None:
    async with AARGateway({"memory_store": "redis", "redis_url": redis_url}) as first:
        assert first.settings.store_kind == "redis"
        assert first.memory.store.kind == "redis"
        await first.process_cognitive_input(ask("the weather was cold today"))
        await first.process_cognitive_input(ask("the vault code is 7741"))
        result = await first.process_cognitive_input(ask("what is the vault code?"))
        assert result["status"] == "success"
        assert "7741" in result["cognitive_response"]["text"]
        async with AARGateway({"memory_store": "redis", "redis_url": redis_url}) as second:
            assert second.node_id != first.node_id
            memories = await second.memory.get_all_memories()
            assert any(m["content"] == "the vault code is 7741" for m in memories.values())
            question = ask("what is the vault code?", "s2")  # another session: ask the tenant
            question["context"]["memory_scope"] = "tenant"
            answer = await second.process_cognitive_input(question)
            assert answer["status"] == "success"
            assert "7741" in answer["cognitive_response"]["text"]


def test_redis_store_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DTE_REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError, match="redis_url"):
        AARGateway({"memory_store": "redis"})
    monkeypatch.setenv("DTE_MEMORY_STORE", "redis")
    monkeypatch.setenv("DTE_REDIS_URL", "redis://127.0.0.1:1/0")
    settings = EchoSettings()
    assert (settings.store_kind, settings.redis_url) == ("redis", "redis://127.0.0.1:1/0")


async def test_postgres_store_is_shared_between_gateways(postgres_db: str) -> None:
    config = {"memory_store": "postgres", "database_url": postgres_db, "database_pool_size": 2}
    async with AARGateway(config) as first, AARGateway(config) as second:
        assert first.memory.store.kind == "postgres"
        await first.process_cognitive_input(ask("the vault code is 7741"))
        question = ask("what is the vault code?", "s2")  # another session: ask the tenant
        question["context"]["memory_scope"] = "tenant"
        answer = await second.process_cognitive_input(question)
        assert "7741" in answer["cognitive_response"]["text"]
        await second.memory.store_memory("fact", {"content": "the lab opens at nine"})
        assert [hit.id for hit in await first.memory.search("lab opens")] == ["fact"]


def test_postgres_store_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DTE_DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="database_url"):
        AARGateway({"memory_store": "postgres"})
    monkeypatch.setenv("DTE_MEMORY_STORE", "postgres")
    monkeypatch.setenv("DTE_DATABASE_URL", "postgresql://u:p@127.0.0.1:1/db")
    monkeypatch.setenv("DTE_DATABASE_POOL_SIZE", "3")
    settings = EchoSettings()
    assert (settings.store_kind, settings.database_pool_size) == ("postgres", 3)
    store = AARGateway(settings).memory.store
    assert store.kind == "postgres" and store.url == "postgresql+asyncpg://u:p@127.0.0.1:1/db"  # type: ignore[attr-defined]


async def test_sessions_keep_bounded_history(gateway: AARGateway) -> None:
    small = AARGateway({"test_mode": True, "session_history": 3})
    async with small:
        for i in range(5):
            await small.process_cognitive_input(ask(f"note {i}", "h"))
        session = small.sessions.get("h")
        assert session is not None
        assert [t.text for t in session.history] == ["note 2", "note 3", "note 4"]


def test_bad_config_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        AARGateway({"port": "not-a-port"})
    with pytest.raises(ConfigurationError):
        AARGateway(["not", "a", "mapping"])  # type: ignore[arg-type]


async def test_a_cleaned_up_gateway_answers_with_an_error() -> None:
    gw = AARGateway({"test_mode": True})
    await gw.initialize()
    await gw.cleanup()
    result = await gw.process_cognitive_input(ask("anyone?"))
    assert result["status"] == "error"
    assert result["error"]["code"] == "not_initialized"
    with pytest.raises(CoreError):
        await gw.initialize()


async def test_a_rejected_session_id_is_not_echoed(gateway: AARGateway) -> None:
    result = await gateway.process_cognitive_input(
        {"type": "text", "content": "x", "context": {"session_id": "s" * 500}}
    )
    assert result["error"]["code"] == "invalid_session_id"
    assert result["session_id"] is None


async def test_event_inputs_beyond_the_limit_are_dropped_not_queued(gateway: AARGateway) -> None:
    from deep_tree_echo.aar_core import gateway as gateway_module

    release = asyncio.Event()
    started = asyncio.Queue[str]()

    class _Slow(Agent):
        name = "slow"
        handles = frozenset({"slow"})

        async def handle(self, ctx: AgentContext) -> AgentResult:
            await started.put(ctx.text)
            await release.wait()
            return AgentResult("done")

    gateway.register_agent(_Slow())
    limit = gateway_module.MAX_EVENT_INPUTS
    for i in range(limit + 5):
        await gateway.event_bus.emit("user.input", {"type": "slow", "content": f"m{i}"})
    for _ in range(limit):
        await asyncio.wait_for(started.get(), 10)
    assert len(gateway._tasks) == limit
    release.set()
    await gateway.wait_idle()
    assert started.empty()
