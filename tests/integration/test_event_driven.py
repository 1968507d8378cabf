"""EventDrivenIntegration and WebSocketIntegration against the real EventBus and AARGateway."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.integration.event_driven import EventDrivenIntegration, WebSocketIntegration

Sent = tuple[dict[str, Any], str | None]


class RecordingManager:
    """Stands in for the server's ConnectionManager: same ``broadcast`` signature."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], str | None]] = []
        self.changed = asyncio.Condition()

    async def broadcast(self, message: dict[str, Any], *, session_id: str | None = None) -> int:
        async with self.changed:
            self.messages.append((message, session_id))
            self.changed.notify_all()
        return 1

    async def wait_for(self, message_type: str, count: int = 1) -> list[Sent]:
        def matching() -> list[Sent]:
            return [m for m in self.messages if m[0]["type"] == message_type]

        async with asyncio.timeout(10), self.changed:  # a guard against hanging, not a timing test
            await self.changed.wait_for(lambda: len(matching()) >= count)
        return matching()


def test_default_bus_is_private_and_a_given_bus_is_shared() -> None:
    bus = EventBus()
    assert EventDrivenIntegration(event_bus=bus).event_bus is bus
    assert isinstance(EventDrivenIntegration().event_bus, EventBus)
    assert EventDrivenIntegration().event_bus is not EventDrivenIntegration().event_bus


async def test_external_handlers_run_concurrently() -> None:
    integration = EventDrivenIntegration()
    first_started, second_started = asyncio.Event(), asyncio.Event()

    async def first(data: dict[str, Any]) -> None:
        first_started.set()
        await second_started.wait()  # only finishes if `second` runs at the same time

    async def second(data: dict[str, Any]) -> None:
        second_started.set()
        await first_started.wait()

    integration.register_external_handler("sync", first)
    integration.register_external_handler("sync", second)
    async with asyncio.timeout(10):  # deadlocks (and fails here) if run one after the other
        assert await integration.emit_to_external("sync", {}) == 2


async def test_a_failing_external_handler_is_logged_and_does_not_stop_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    integration = EventDrivenIntegration()
    received: list[dict[str, Any]] = []

    async def broken(data: dict[str, Any]) -> None:
        raise RuntimeError("handler exploded")

    def sync_ok(data: dict[str, Any]) -> None:
        received.append(data)

    async def async_ok(data: dict[str, Any]) -> None:
        received.append({"async": data})

    for handler in (broken, sync_ok, async_ok):
        integration.register_external_handler("evt", handler)
    with caplog.at_level(logging.ERROR):
        assert await integration.emit_to_external("evt", {"n": 1}) == 2
    assert {"n": 1} in received and {"async": {"n": 1}} in received
    assert "handler exploded" in caplog.text
    assert await integration.emit_to_external("nobody-listens", {}) == 0


async def test_echo_handlers_live_on_the_bus_and_close_removes_them() -> None:
    bus = EventBus()
    integration = EventDrivenIntegration(event_bus=bus)
    seen: list[dict[str, Any]] = []
    integration.register_echo_handler("memory.*", seen.append)
    assert await bus.emit("memory.update", {"memory_id": "m"}) == 1
    assert await integration.emit_to_echo("memory.update", {"memory_id": "n"}) == 1
    assert seen == [{"memory_id": "m"}, {"memory_id": "n"}]
    integration.close()
    assert await bus.emit("memory.update", {}) == 0


async def test_websocket_integration_forwards_echo_events_per_session() -> None:
    manager = RecordingManager()
    bus = EventBus()
    WebSocketIntegration(manager, event_bus=bus)
    await bus.emit("agent.message", {"session_id": "s1", "agent_id": "echo", "message": "hi",
                                     "memory_id": "m1"})
    await bus.emit("memory.update", {"memory_id": "m1", "action": "created", "session_id": "s1",
                                     "version": "v1"})
    await bus.emit("memory.update", {"memory_id": "m2", "action": "deleted", "session_id": None,
                                     "version": "v2"})
    assert manager.messages == [
        ({"type": "agent_message", "agent_id": "echo", "message": "hi", "session_id": "s1"}, "s1"),
        ({"type": "memory_update", "memory_id": "m1", "action": "created", "version": "v1",
          "session_id": "s1"}, "s1"),
        ({"type": "memory_update", "memory_id": "m2", "action": "deleted", "version": "v2",
          "session_id": None}, None),
    ]


class SeedManager:
    """A manager written as the seed shows it: ``broadcast(message)`` and nothing else."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def broadcast(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


class SyncSeedManager:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def broadcast(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


@pytest.mark.parametrize("manager_type", [SeedManager, SyncSeedManager])
async def test_a_seed_manager_with_broadcast_only_gets_every_event(
    manager_type: type[SeedManager] | type[SyncSeedManager],
) -> None:
    manager = manager_type()
    bus = EventBus()
    WebSocketIntegration(manager, event_bus=bus)
    assert await bus.emit("agent.message", {"session_id": "s1", "agent_id": "echo",
                                            "message": "hi"}) == 1
    assert await bus.emit("memory.update", {"memory_id": "m1", "action": "created",
                                            "session_id": "s1", "version": "v1"}) == 1
    assert manager.messages == [
        {"type": "agent_message", "agent_id": "echo", "message": "hi", "session_id": "s1"},
        {"type": "memory_update", "memory_id": "m1", "action": "created", "version": "v1",
         "session_id": "s1"},
    ]


async def test_a_seed_manager_gets_the_gateway_events_of_a_real_turn() -> None:
    manager = SeedManager()
    async with AARGateway({"test_mode": True}) as gateway:
        WebSocketIntegration(manager, event_bus=gateway.event_bus)
        await gateway.process_cognitive_input({"content": "the gate code is 1234",
                                               "context": {"session_id": "seed"}})
    kinds = {(m["type"], m["session_id"]) for m in manager.messages}
    assert ("agent_message", "seed") in kinds
    assert ("memory_update", "seed") in kinds


def test_routes_by_session_reads_the_signature() -> None:
    from deep_tree_echo.integration.event_driven import routes_by_session

    async def plain(message: dict[str, Any]) -> None: ...
    async def keyword(message: dict[str, Any], *, session_id: str | None = None) -> None: ...
    async def anything(message: dict[str, Any], **kwargs: Any) -> None: ...

    assert not routes_by_session(plain)
    assert routes_by_session(keyword)
    assert routes_by_session(anything)
    assert not routes_by_session(print)  # a builtin: no keyword we can rely on


async def test_websocket_user_message_becomes_user_input() -> None:
    bus = EventBus()
    integration = WebSocketIntegration(RecordingManager(), event_bus=bus)
    inputs: list[dict[str, Any]] = []
    bus.register("user.input", inputs.append)
    assert await integration.emit_to_external(
        "user.message", {"message": "hello", "user_id": "u1", "session_id": "s1"}
    ) == 1
    await integration.emit_to_external("user.message", {"content": "alt", "user_id": "u2"})
    assert inputs == [
        {"content": "hello", "user_id": "u1", "session_id": "s1"},
        {"content": "alt", "user_id": "u2", "session_id": None},
    ]


async def test_websocket_round_trip_through_the_real_gateway() -> None:
    manager = RecordingManager()
    async with AARGateway({"test_mode": True}) as gw:
        integration = WebSocketIntegration(manager, event_bus=gw.event_bus)
        await integration.emit_to_external(
            "user.message", {"message": "my cat is called Tom", "user_id": "u1",
                             "session_id": "chat-7"}
        )
        [(agent_message, session)] = await manager.wait_for("agent_message")
        await gw.wait_idle()
        assert session == "chat-7"
        assert agent_message["agent_id"] == "echo"
        assert isinstance(agent_message["message"], str) and agent_message["message"]
        updates = [m for m in manager.messages if m[0]["type"] == "memory_update"]
        assert updates, "the echo agent stores a memory, so a memory_update must be forwarded"
        assert all(s == "chat-7" for _, s in updates)
        assert updates[0][0]["action"] == "created"
        assert await gw.memory.retrieve_memory(updates[0][0]["memory_id"]) is not None
        integration.close()


async def test_default_forward_memory_update_without_manager_goes_to_external_handlers() -> None:
    integration = EventDrivenIntegration()
    seen: list[dict[str, Any]] = []
    integration.register_external_handler("memory.update", seen.append)
    integration.register_echo_handler("memory.update", integration.forward_memory_update)
    await integration.event_bus.emit("memory.update", {"memory_id": "m1", "action": "store"})
    assert seen == [{"memory_id": "m1", "action": "store"}]


async def test_default_forward_memory_update_routes_to_the_events_session() -> None:
    class Plain(EventDrivenIntegration):
        def __init__(self, manager: RecordingManager) -> None:
            super().__init__()
            self.websocket_manager = manager

    manager = RecordingManager()
    integration = Plain(manager)
    integration.register_echo_handler("memory.update", integration.forward_memory_update)
    await integration.event_bus.emit("memory.update", {"memory_id": "m2", "session_id": "s1"})
    await integration.event_bus.emit("memory.update", {"memory_id": "m3"})
    assert manager.messages == [
        ({"type": "memory_update", "memory_id": "m2", "session_id": "s1"}, "s1"),
        ({"type": "memory_update", "memory_id": "m3", "session_id": None}, None),
    ]


async def test_websocket_user_message_keeps_its_tenant() -> None:
    bus = EventBus()
    integration = WebSocketIntegration(RecordingManager(), event_bus=bus)
    inputs: list[dict[str, Any]] = []
    bus.register("user.input", inputs.append)
    await integration.emit_to_external(
        "user.message", {"message": "hi", "session_id": "s1", "tenant": "acme"})
    await integration.emit_to_external("user.message", {"message": "hi", "session_id": "s2"})
    assert inputs == [
        {"content": "hi", "user_id": None, "session_id": "s1", "tenant": "acme"},
        {"content": "hi", "user_id": None, "session_id": "s2"},  # absent: the default tenant's
    ]


async def test_a_failing_external_handler_is_logged_by_name_and_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    integration = EventDrivenIntegration()

    def broken(data: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    integration.register_external_handler("evt.x", broken)
    with caplog.at_level(logging.ERROR):
        assert await integration.emit_to_external("evt.x", {}) == 0
    [record] = caplog.records
    assert record.name == "deep_tree_echo.integration.EventDrivenIntegration"
    assert record.getMessage() == f"external handler {broken.__qualname__} failed on 'evt.x'"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_a_handler_that_is_not_callable_is_refused_by_type() -> None:
    with pytest.raises(TypeError, match=r"^handler must be callable, got int$"):
        EventDrivenIntegration().register_external_handler("evt", 3)  # type: ignore[arg-type]


async def test_a_failing_callable_object_is_logged_by_its_repr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Handler:
        def __call__(self, data: dict[str, Any]) -> None:
            raise RuntimeError("boom")

        def __repr__(self) -> str:
            return "<the handler>"

    integration = EventDrivenIntegration()
    integration.register_external_handler("evt", Handler())
    with caplog.at_level(logging.ERROR):
        assert await integration.emit_to_external("evt", {}) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "external handler <the handler> failed on 'evt'"]
