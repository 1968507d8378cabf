"""Sessions: the arenas in which agents and a caller interact (the second "A" of AAR).

Each session keeps a bounded history of turns; the registry keeps a bounded number of
sessions, evicting the least recently used, so memory stays flat under any load. Turns are
kept as plain tuples, which the garbage collector stops tracking, so up to ``max_sessions x
history`` of them add nothing to a full collection's work (``bench/gc_heap.py``). Sessions are
kept by ``(tenant, session_id)``: two tenants may use the same session id, and never share it.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from deep_tree_echo.aar_core.errors import InvalidSessionIdError
from deep_tree_echo.aar_core.ids import SESSION_ID
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT

#: Longest accepted session id (characters).
MAX_SESSION_ID = SESSION_ID.max_length
#: What :func:`validate_session_id` accepts, as a JSON-schema/OpenAPI pattern: the one rule in
#: :mod:`deep_tree_echo.aar_core.ids`, so the schema and the server agree.
SESSION_ID_PATTERN = SESSION_ID.pattern


def validate_session_id(value: object) -> str:
    """Return ``value`` if it is a usable session id (:data:`~.ids.SESSION_ID`): non-empty
    Unicode text without control characters, at most :data:`MAX_SESSION_ID` characters; else
    raise :class:`InvalidSessionIdError` (``invalid_session_id``)."""
    if not SESSION_ID.matches(value):
        raise InvalidSessionIdError(
            f"'session_id' must be a non-empty string of at most {MAX_SESSION_ID} characters "
            "without control characters"
        )
    return value


@dataclass(slots=True)
class Turn:
    """One exchange: what came in, what the agent answered."""

    input_type: str
    text: str
    response: str
    agent: str
    memory_id: str | None
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_type": self.input_type,
            "text": self.text,
            "response": self.response,
            "agent": self.agent,
            "memory_id": self.memory_id,
            "at": self.at,
        }


#: A turn as stored: ``(input_type, text, response, agent, memory_id, at)``, an exact tuple.
_Stored = tuple[str, str, str, str, str | None, float]


class History(Sequence[Turn]):
    """A session's most recent turns, oldest first, at most ``maxlen``: a read-only sequence
    of :class:`Turn` over GC-untracked tuples (a fresh ``Turn`` per read)."""

    __slots__ = ("_turns",)

    def __init__(self, maxlen: int) -> None:
        self._turns: deque[_Stored] = deque(maxlen=maxlen)

    def append(self, turn: Turn) -> None:
        """Keep ``turn``, dropping the oldest once ``maxlen`` are kept."""
        self._turns.append(
            (turn.input_type, turn.text, turn.response, turn.agent, turn.memory_id, turn.at)
        )

    @property
    def maxlen(self) -> int | None:
        """How many turns are kept (as ``deque.maxlen``, which this replaces)."""
        return self._turns.maxlen

    def exchanges(self) -> list[tuple[str, str]]:
        """``(text, response)`` of every turn, oldest first, without making ``Turn`` objects."""
        return [(t[1], t[2]) for t in self._turns]

    def __len__(self) -> int:
        return len(self._turns)

    def __iter__(self) -> Iterator[Turn]:
        return (Turn(*t) for t in self._turns)

    @overload
    def __getitem__(self, index: int) -> Turn: ...

    @overload
    def __getitem__(self, index: slice) -> list[Turn]: ...

    def __getitem__(self, index: int | slice) -> Turn | list[Turn]:
        if isinstance(index, slice):
            return [Turn(*t) for t in list(self._turns)[index]]
        return Turn(*self._turns[index])


@dataclass(slots=True)
class Session:
    """An arena: its id, when it began, its most recent turns and the tenant it belongs to."""

    id: str
    created_at: float
    history: History
    tenant: str = DEFAULT_TENANT

    def add_turn(self, turn: Turn) -> None:
        self.history.append(turn)


class SessionRegistry:
    """Sessions by ``(tenant, id)`` with LRU eviction beyond ``max_sessions``."""

    def __init__(self, *, max_sessions: int = 10_000, history: int = 50) -> None:
        self.max_sessions = max_sessions
        self.history = history
        self._sessions: OrderedDict[tuple[str, str], Session] = OrderedDict()

    @staticmethod
    def new_id() -> str:
        return f"sess-{uuid.uuid4().hex[:16]}"

    def get_or_create(
        self, session_id: str | None, *, tenant: str = DEFAULT_TENANT
    ) -> Session:
        """``tenant``'s session ``session_id`` (a new id when None), marked most recently used."""
        key = (tenant, session_id or self.new_id())
        session = self._sessions.get(key)
        if session is None:
            now = time.time()
            session = Session(key[1], now, History(self.history), tenant)
            self._sessions[key] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(key)
        return session

    def get(self, session_id: str, *, tenant: str = DEFAULT_TENANT) -> Session | None:
        return self._sessions.get((tenant, session_id))

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        """``"sid"`` (of the default tenant) or ``("tenant", "sid")``."""
        key = session_id if isinstance(session_id, tuple) else (DEFAULT_TENANT, session_id)
        return key in self._sessions
