"""Tenant names: who owns a memory, a session and its events.

A tenant is the unit of isolation of the service: each API key belongs to one, and what one
tenant stores or says is invisible to every other. With auth off, everything belongs to
:data:`DEFAULT_TENANT`.
"""

from __future__ import annotations

import re

from deep_tree_echo.errors import InvalidInputError

DEFAULT_TENANT = "default"
#: ASGI scope key holding the tenant a request acts on (set by the auth middleware).
TENANT_SCOPE_KEY = "dte.tenant"
#: What an answer may draw on (``context.memory_scope``): the session's memories plus the
#: tenant's shared ones (stored without a session; the default), or all of the tenant's.
MEMORY_SCOPES = ("session", "tenant")
#: Letters, digits, ``.``, ``_`` and ``-``; starting with a letter or digit; 1-64 characters.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_TENANT_LENGTH = 64
_TENANT_RE = re.compile(TENANT_PATTERN)


class InvalidTenantError(InvalidInputError):
    """A tenant name does not match :data:`TENANT_PATTERN`."""

    code = "invalid_tenant"


def validate_tenant(value: object) -> str:
    """Return ``value`` if it is a valid tenant name, else raise :class:`InvalidTenantError`."""
    if not isinstance(value, str) or _TENANT_RE.fullmatch(value) is None:
        raise InvalidTenantError(
            f"tenant must match {TENANT_PATTERN} (letters, digits, '.', '_', '-'; at most "
            f"{MAX_TENANT_LENGTH} characters), got {value!r}"[:300]
        )
    return value
