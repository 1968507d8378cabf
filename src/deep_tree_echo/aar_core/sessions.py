"""Sessions: the arenas in which agents and a caller interact (the second "A" of AAR).

Each session keeps a bounded history of turns; the registry keeps a bounded number of
sessions, evicting the least recently used, so memory stays flat under any load.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from deep_tree_echo.aar_core.errors import InvalidSessionIdError

#: Longest accepted session id (characters).
MAX_SESSION_ID = 128


def validate_session_id(value: object) -> str:
    """Return ``value`` if it is a usable session id: a printable, non-blank string of at most
    :data:`MAX_SESSION_ID` characters; else raise :class:`InvalidInputError`
    (:class:`InvalidSessionIdError`)."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_SESSION_ID
        or not value.isprintable()
    ):
        raise InvalidSessionIdError(
            f"'session_id' must be a printable, non-empty string of at most {MAX_SESSION_ID} "
            "characters"
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


@dataclass(slots=True)
class Session:
    """An arena: its id, when it began and its most recent turns."""

    id: str
    created_at: float
    history: deque[Turn]

    def add_turn(self, turn: Turn) -> None:
        self.history.append(turn)


class SessionRegistry:
    """Sessions by id with LRU eviction beyond ``max_sessions``."""

    def __init__(self, *, max_sessions: int = 10_000, history: int = 50) -> None:
        self.max_sessions = max_sessions
        self.history = history
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    @staticmethod
    def new_id() -> str:
        return f"sess-{uuid.uuid4().hex[:16]}"

    def get_or_create(self, session_id: str | None) -> Session:
        """The session for ``session_id`` (a new id when None), marked most recently used."""
        sid = session_id or self.new_id()
        session = self._sessions.get(sid)
        if session is None:
            now = time.time()
            session = Session(sid, now, deque(maxlen=self.history))
            self._sessions[sid] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(sid)
        return session

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions
