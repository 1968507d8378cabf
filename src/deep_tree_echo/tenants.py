"""Tenant names: who owns a memory, a session and its events.

A tenant is the unit of isolation of the service: each API key belongs to one, and what one
tenant stores or says is invisible to every other. With auth off, everything belongs to
:data:`DEFAULT_TENANT`. The name rule is the memory stores' (``aar_core.memory.tenancy``);
this module adds what the service layer needs around it.
"""

from __future__ import annotations

from deep_tree_echo.aar_core.cognitive import MEMORY_SCOPES
from deep_tree_echo.aar_core.errors import InvalidTenantError
from deep_tree_echo.aar_core.ids import TENANT
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.aar_core.memory.tenancy import validate_tenant

__all__ = [
    "DEFAULT_TENANT", "MAX_TENANT_LENGTH", "MEMORY_SCOPES", "TENANT_PATTERN",
    "TENANT_SCOPE_KEY", "InvalidTenantError", "validate_tenant",
]

#: ASGI scope key holding the tenant a request acts on (set by the auth middleware).
TENANT_SCOPE_KEY = "dte.tenant"
#: The tenant name rule as an anchored JSON-schema pattern (for the OpenAPI document).
TENANT_PATTERN = TENANT.pattern
MAX_TENANT_LENGTH = TENANT.max_length
