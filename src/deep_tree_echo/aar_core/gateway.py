"""The AAR gateway: the one front door of the Echo cognitive core.

``answer(CognitiveInput) -> CognitiveResult`` finds the input's session (arena) and the agent
for its type, lets the agent answer (retrieval + engine + memory write) and raises an
:class:`EchoError` when it cannot. ``process_cognitive_input`` is the seed's dict API over it:
it never raises for bad input, the response says what was wrong.
Every input acts for one tenant (``CognitiveInput.tenant``, default ``default``): its session,
its memories and its events belong to that tenant alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from deep_tree_echo.aar_core._reply import PENDING_REPLY, PendingReply
from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentRegistry, AgentResult
from deep_tree_echo.aar_core.cognitive import (
    MAX_TEXT_CHARS,
    CognitiveInput,
    CognitiveResult,
    build_input,
    failure_dict,
    input_from_request,
    now_iso,
)
from deep_tree_echo.aar_core.echo_agent import EchoAgent
from deep_tree_echo.aar_core.engines import CognitiveEngine, engine_from_settings
from deep_tree_echo.aar_core.engines.base import EngineAnswer, EngineQuery
from deep_tree_echo.aar_core.errors import CoreError, NotInitializedError
from deep_tree_echo.aar_core.events import EventBus
from deep_tree_echo.aar_core.memory import InMemoryStore, MemoryManager, MemoryStore, SQLiteStore
from deep_tree_echo.aar_core.memory.manager import LOGGED_EVENT_ID
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.aar_core.sessions import Session, SessionRegistry, Turn
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.errors import ConfigurationError, EchoError, InvalidInputError

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.memory.tenancy import TenantMemory

__all__ = ["MAX_TEXT_CHARS", "AARGateway", "CognitiveInput", "CognitiveResult"]

logger = logging.getLogger("deep_tree_echo.gateway")

MAX_EVENT_INPUTS = 64
#: Seconds between two purges of old tombstones and expired memories.
PURGE_INTERVAL = 3600.0

EngineObserver = Callable[[str, float, bool], None]


class AARGateway:
    """Agent-arena-relation orchestration: sessions, agents, memory, events and an engine."""

    def __init__(
        self,
        config: Mapping[str, Any] | EchoSettings | None = None,
        *,
        memory: MemoryManager | None = None,
        event_bus: EventBus | None = None,
        engine: CognitiveEngine | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = EchoSettings.coerce(config)
        self.node_id = self.settings.node_id or self._stable_node_id()
        self.event_bus = event_bus or EventBus(handler_timeout=self.settings.handler_timeout)
        self.memory = memory or MemoryManager(
            self._make_store(), node_id=self.node_id, event_bus=self.event_bus
        )
        self.engine = engine or engine_from_settings(self.settings, event_bus=self.event_bus)
        self.agents = AgentRegistry(default="echo")
        self.agents.register(EchoAgent())
        self.sessions = SessionRegistry(
            max_sessions=self.settings.max_sessions, history=self.settings.session_history
        )
        self.engine_observers: list[EngineObserver] = []
        self.initialized = False
        self._closed = False
        self._init_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sleep = sleep  # the purge task's timer; tests inject a fake one
        self._purge_task: asyncio.Task[None] | None = None
        # Inputs arriving as events are processed in the background, at most this many at once.
        self._event_inputs = asyncio.Semaphore(MAX_EVENT_INPUTS)

    def _stable_node_id(self) -> str:
        """A node keeps its id across restarts: kept in ``data_dir/node_id`` when there is one."""
        fresh = f"node-{uuid.uuid4().hex[:8]}"
        if self.settings.store_kind != "sqlite" or self.settings.data_dir is None:
            return fresh
        path = self.settings.data_dir / "node_id"
        try:
            return path.read_text(encoding="utf-8").strip() or fresh
        except FileNotFoundError:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(fresh + "\n", encoding="utf-8")
            return fresh

    def _cache_options(self) -> dict[str, int]:
        """The search cache settings a SQL store takes (unset budget: the store's default)."""
        options = {"cache_min_df": self.settings.search_cache_min_df}
        if self.settings.search_cache is not None:
            options["search_cache"] = self.settings.search_cache
        return options

    def _make_store(self) -> MemoryStore:
        if self.settings.store_kind == "sqlite":
            if self.settings.data_dir is None:
                raise CoreError("the sqlite memory store needs data_dir", code="no_data_dir")
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            return SQLiteStore(
                self.settings.data_dir / "memories.db", **self._cache_options()
            )
        if self.settings.store_kind == "redis":
            if not self.settings.redis_url:
                raise ConfigurationError(
                    "the redis memory store needs redis_url (DTE_REDIS_URL)", code="no_redis_url"
                )
            from deep_tree_echo.aar_core.memory.redis_store import RedisStore  # imports redis

            return RedisStore(self.settings.redis_url)
        if self.settings.store_kind == "postgres":
            if not self.settings.database_url:
                raise ConfigurationError(
                    "the postgres memory store needs database_url (DTE_DATABASE_URL)",
                    code="no_database_url",
                )
            from deep_tree_echo.aar_core.memory.postgres_store import PostgresStore

            return PostgresStore(
                self.settings.database_url,
                pool_size=self.settings.database_pool_size,
                **self._cache_options(),
            )
        return InMemoryStore()

    # lifecycle -----------------------------------------------------------------------------
    async def initialize(self) -> None:
        """Open the memory store, start the engine, subscribe to outside ``user.input``."""
        async with self._init_lock:
            if self.initialized:
                return
            if self._closed:
                raise NotInitializedError("a gateway cannot be initialised again after cleanup()")
            await self.memory.initialize()  # its own store's versions are trusted, unbounded
            self.memory.clock.max_drift = self.settings.max_clock_drift  # peers' are not
            await self.engine.start()
            self.event_bus.register("user.input", self._on_user_input_event)
            self._purge_task = asyncio.get_running_loop().create_task(
                self._purge_periodically(), name=f"memory-purge-{self.node_id}"
            )
            self.initialized = True
            logger.info("gateway %s ready (store=%s, engine=%s)", self.node_id,
                        self.settings.store_kind, self.engine.name)

    async def cleanup(self) -> None:
        """Stop background work, the engine and the store. Safe to call twice."""
        async with self._init_lock:
            if not self.initialized:
                return
            self.initialized = False
            self._closed = True
            self.event_bus.unregister("user.input", self._on_user_input_event)
            purge, self._purge_task = self._purge_task, None
            tasks = list(self._tasks) if purge is None else [purge, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.engine.stop()
            await self.memory.close()

    async def _purge_periodically(self) -> None:
        """Every :data:`PURGE_INTERVAL` seconds, purge memories older than ``tombstone_ttl``."""
        while True:
            await self._sleep(PURGE_INTERVAL)
            try:
                await self.memory.purge(self.settings.tombstone_ttl)
            except Exception:  # a failing store must not end the task; try again next time
                logger.exception("purging old memories failed")

    async def __aenter__(self) -> AARGateway:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cleanup()

    def memory_for(self, tenant: str) -> TenantMemory:
        """``tenant``'s memory: the manager's API bound to that tenant's namespace."""
        return self.memory.for_tenant(tenant)

    def register_agent(self, agent: Agent, *, replace: bool = False) -> None:
        """Route the input types ``agent.handles`` to ``agent``."""
        self.agents.register(agent, replace=replace)

    # engine --------------------------------------------------------------------------------
    async def call_engine(self, query: EngineQuery) -> EngineAnswer:
        """Ask the engine, timing the call for the observers (metrics)."""
        start = time.perf_counter()
        ok = False
        try:
            answer = await self.engine.generate(query)
            ok = True
            return answer
        finally:
            elapsed = time.perf_counter() - start
            for observe in self.engine_observers:
                try:
                    observe(self.engine.name, elapsed, ok)
                except Exception:  # an observer must never break a request
                    logger.exception("engine observer failed")

    # processing ----------------------------------------------------------------------------
    async def _ready(self) -> None:
        if not self.initialized:
            if self._closed:
                raise NotInitializedError("the gateway has been cleaned up")
            await self.initialize()

    async def answer(self, inp: CognitiveInput) -> CognitiveResult:
        """Answer one input; raise an :class:`EchoError` saying why not."""
        start = time.perf_counter()
        await self._ready()
        session = self.sessions.get_or_create(inp.session_id, tenant=inp.tenant)
        return await self._answer_in(session, inp, start)

    async def respond(self, inp: CognitiveInput) -> dict[str, Any]:
        """:meth:`answer` as the seed's response dict: never raises an :class:`EchoError`."""
        start = time.perf_counter()
        session: Session | None = None
        try:
            await self._ready()
            session = self.sessions.get_or_create(inp.session_id, tenant=inp.tenant)
            return (await self._answer_in(session, inp, start)).to_dict()
        except EchoError as exc:
            session_id = session.id if session is not None else None
            return failure_dict(exc, time.perf_counter() - start, session_id)

    async def process_cognitive_input(
        self, request: Any, *, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        """The seed's dict API: ``{"type", "content", "context"}`` in, a response dict out.

        ``tenant`` comes from the caller's credentials, never from the request itself.
        """
        start = time.perf_counter()
        try:
            inp = input_from_request(request, tenant=tenant)
        except InvalidInputError as exc:
            # never echo back what was rejected
            return failure_dict(exc, time.perf_counter() - start, None)
        return await self.respond(inp)

    async def _answer_in(
        self, session: Session, inp: CognitiveInput, start: float
    ) -> CognitiveResult:
        tenant = inp.tenant
        await self.event_bus.emit(
            "user.input",
            {"origin": "gateway", "session_id": session.id, "type": inp.type,
             "content": inp.text, "source": inp.context.get("external_source"),
             "tenant": tenant},
        )
        pending: PendingReply | None = None
        try:
            agent = self.agents.for_type(inp.type)
            ctx = AgentContext(session, inp.type, inp.content, inp.text, inp.context,
                               self.memory_for(tenant), self.settings, self.call_engine,
                               tenant, inp.memory_scope)
            if self.memory.store.logs_changes:  # else nothing could store the reply early
                pending = PendingReply(session.id, tenant, agent.name)
            token = PENDING_REPLY.set(pending)
            try:
                result = await agent.handle(ctx)
            finally:
                if pending is not None:
                    pending.close()
                PENDING_REPLY.reset(token)
            if not isinstance(result, AgentResult):
                raise CoreError(f"agent {agent.name!r} returned {type(result).__name__}",
                                code="agent_error")
        except EchoError as exc:
            logger.info("input for session %s failed: %s", session.id, exc.message)
            raise
        except Exception as exc:
            logger.exception("agent failed on session %s", session.id)
            raise CoreError(f"internal error: {exc}", code="internal_error") from exc
        session.add_turn(Turn(inp.type, inp.text, result.text, agent.name,
                              result.memory_id, time.time()))
        message = {"session_id": session.id, "agent_id": agent.name, "message": result.text,
                   "memory_id": result.memory_id, "confidence": result.confidence,
                   "tenant": tenant}
        if pending is not None and pending.event_id is not None and pending.text == result.text:
            message[LOGGED_EVENT_ID] = pending.event_id  # stored with the turn's memory
        await self.event_bus.emit("agent.message", message)
        return CognitiveResult(
            text=result.text,
            agent=agent.name,
            type=inp.type,
            engine=self.engine.name,
            confidence=max(0.0, min(1.0, float(result.confidence))),
            session_id=session.id,
            processing_time=time.perf_counter() - start,
            timestamp=now_iso(),
            memories_used=result.memories_used,
            memory_id=result.memory_id,
            data=result.data,
        )

    async def _on_user_input_event(self, data: dict[str, Any]) -> None:
        """Process ``user.input`` events that came from outside (e.g. WebSocketIntegration)."""
        if data.get("origin") == "gateway":
            return
        session_id = data.get("session_id")
        if session_id is None and data.get("user_id") is not None:
            session_id = f"user-{data['user_id']}"
        tenant = data.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            tenant = DEFAULT_TENANT
        try:
            inp = build_input(
                data.get("content"),
                type=data.get("type") or "text",
                context={"session_id": session_id,
                         "external_source": data.get("source", "event")},
                tenant=tenant,
            )
        except InvalidInputError as exc:
            logger.info("ignoring a user.input event: %s", exc.message)
            return
        if self._event_inputs.locked():
            logger.warning("dropping user.input event: %d already in progress", MAX_EVENT_INPUTS)
            return
        await self._event_inputs.acquire()

        async def run() -> None:
            try:
                await self.answer(inp)
            except EchoError as exc:
                logger.info("a user.input event failed: %s", exc.message)
            finally:
                self._event_inputs.release()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Await the inputs that arrived as events and are still being processed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
