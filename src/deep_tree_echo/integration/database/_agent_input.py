"""The cognitive input a database query travels as: its types and how an agent reads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deep_tree_echo.aar_core.agents import AgentContext

SQL_QUERY = "sql_query"
NOSQL_QUERY = "nosql_query"


def query_content(ctx: AgentContext) -> tuple[Any, Any]:
    """``(query, params)`` of an agent's input: ``{"query", "params"}`` or the bare query."""
    content = ctx.content
    if isinstance(content, Mapping):
        return content.get("query"), content.get("params")
    return content, None
