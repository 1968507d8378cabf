"""Agents: named handlers of cognitive inputs, chosen by input type (the "A" of AAR).

The gateway routes each input to the agent registered for its ``type``; unknown types go to
the default agent (``echo``). An agent returns an :class:`AgentResult`; its ``data`` is merged
into the response's ``cognitive_response`` (so a database agent can return ``rows``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from deep_tree_echo.aar_core._reply import PENDING_REPLY
from deep_tree_echo.aar_core.errors import CoreError
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.engines.base import EngineAnswer, EngineQuery
    from deep_tree_echo.aar_core.memory.tenancy import TenantMemory
    from deep_tree_echo.aar_core.sessions import Session
    from deep_tree_echo.config import EchoSettings

#: Ask the cognitive engine (timed for the metrics by the gateway).
EngineCall = Callable[["EngineQuery"], Awaitable["EngineAnswer"]]


@dataclass(slots=True)
class AgentContext:
    """What an agent gets: the input, its session (arena) and the services it may use.

    Services, not their owner: the tenant's memory (never another tenant's), the settings and
    a call to the engine. ``memory_scope`` says what an answer may draw on: ``"session"`` (this
    session's memories and the tenant's shared ones, stored without a session) or ``"tenant"``
    (every memory of the tenant).
    """

    session: Session
    type: str
    content: Any
    text: str
    context: dict[str, Any]
    memory: TenantMemory
    settings: EchoSettings
    call_engine: EngineCall
    tenant: str = DEFAULT_TENANT
    memory_scope: str = "session"

    @property
    def session_id(self) -> str:
        return self.session.id

    def announce(self, text: str) -> None:
        """Declare the reply right before writing the turn's memory: where the store logs its
        changes, the ``agent_message`` event is stored in that write's transaction (one commit
        for the turn, not two). A stored reply cannot be taken back: return this same text (a
        different one is appended after it, and clients get both), and expect clients to have
        it even if the turn fails after the write."""
        pending = PENDING_REPLY.get()
        if pending is not None:
            pending.announce(text)


@dataclass(slots=True)
class AgentResult:
    """An agent's answer: text, a confidence in [0, 1] and JSON-safe extras."""

    text: str
    confidence: float = 1.0
    data: dict[str, Any] = field(default_factory=dict)
    memories_used: list[dict[str, Any]] = field(default_factory=list)
    memory_id: str | None = None


class Agent(ABC):
    """Subclass with a ``name`` and the input ``handles`` it serves, and implement ``handle``."""

    name: ClassVar[str] = "agent"
    #: Input types this agent serves; empty means only as the default agent.
    handles: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    async def handle(self, ctx: AgentContext) -> AgentResult:
        """Answer one input. Raise a ``CoreError`` subclass for a clean error response."""


class AgentRegistry:
    """Agents by name and by the input types they handle."""

    def __init__(self, default: str = "echo") -> None:
        self.default = default
        self._by_name: dict[str, Agent] = {}
        self._by_type: dict[str, Agent] = {}

    def register(self, agent: Agent, *, replace: bool = False) -> None:
        """Add ``agent``; its ``handles`` types route to it (a later agent wins a type)."""
        if agent.name in self._by_name and not replace:
            raise CoreError(f"an agent named {agent.name!r} is already registered",
                            code="agent_exists")
        self._by_name[agent.name] = agent
        for input_type in agent.handles:
            self._by_type[input_type] = agent

    def unregister(self, name: str) -> bool:
        agent = self._by_name.pop(name, None)
        if agent is None:
            return False
        self._by_type = {t: a for t, a in self._by_type.items() if a is not agent}
        return True

    def get(self, name: str) -> Agent | None:
        return self._by_name.get(name)

    def for_type(self, input_type: str) -> Agent:
        """The agent serving ``input_type``, else the default agent."""
        agent = self._by_type.get(input_type) or self._by_name.get(self.default)
        if agent is None:
            raise CoreError("no agent can handle this input and no default agent is registered",
                            code="no_agent", http_status=422)
        return agent

    def names(self) -> list[str]:
        return list(self._by_name)
