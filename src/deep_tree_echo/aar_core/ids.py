"""Identifier rules (session ids, memory ids, tenant names): one definition for the server's
checks and the OpenAPI schema, so generated clients and the server never disagree.

Each pattern is written in the regex subset that Python ``re``, ECMA-262 (with and without the
``u`` flag) and the Rust validators (jsonschema-rs / fancy-regex) all read alike: character
classes of ``\\xNN`` escapes, ``^`` and an end written ``(?![\\s\\S])`` (Python's ``$`` also
matches before a trailing newline). No ``\\uD800``-style surrogate escapes: Rust engines cannot
compile them, and a validator that cannot compile a pattern drops it, silently allowing every
string (schemathesis 4.x did exactly that with the old session id pattern). Lone surrogates
are refused instead by :func:`is_unicode_text` here and, on the wire, by the JSON decoder
(:func:`deep_tree_echo._json.loads_text`): a JSON-schema string is Unicode text, which they
are not.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

from deep_tree_echo._json import is_unicode_text

__all__ = ["MEMORY_ID", "SESSION_ID", "TENANT", "IdRule", "is_unicode_text", "new_memory_id"]


@dataclass(frozen=True, slots=True)
class IdRule:
    """One identifier rule: an anchored portable ``pattern`` and a ``max_length`` in characters
    (code points, as JSON Schema's ``maxLength`` counts them); ids are never empty."""

    name: str
    pattern: str
    max_length: int
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    def matches(self, value: object) -> TypeGuard[str]:
        """Whether ``value`` is a valid id under this rule (what the server accepts)."""
        return (
            isinstance(value, str)
            and 0 < len(value) <= self.max_length
            and self._regex.fullmatch(value) is not None
            and is_unicode_text(value)
        )

    def json_schema(self) -> dict[str, Any]:
        """The rule as a JSON-schema string schema (what the OpenAPI document says)."""
        return {"type": "string", "minLength": 1, "maxLength": self.max_length,
                "pattern": self.pattern}


#: No control characters (C0, DEL, C1); 1-128 characters.
SESSION_ID: Final = IdRule("session id", r"^[^\x00-\x1f\x7f-\x9f]+(?![\s\S])", 128)
#: No ``/`` (ids are path segments) and no control characters; 1-256 characters.
MEMORY_ID: Final = IdRule("memory id", r"^[^/\x00-\x1f\x7f-\x9f]+(?![\s\S])", 256)
#: Letters, digits, ``_``, ``.``, ``-``, not starting with punctuation; 1-64 characters (safe as
#: a key prefix, a column value and a path segment).
TENANT: Final = IdRule("tenant", r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(?![\s\S])", 64)


def new_memory_id() -> str:
    """A fresh memory id: ``mem-`` and 32 hex digits laid out as a UUIDv7 (RFC 9562).

    Milliseconds since the epoch come first and 74 random bits follow, so ids made in a later
    millisecond (by a clock that did not step back) sort later: the stores' indexes on
    ``(tenant, id)`` grow at one end instead of at a random page per write (one page less to
    write per new memory on SQLite).
    """
    ms = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    value = (ms << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
             | 0b10 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF)
    return f"mem-{value:032x}"
