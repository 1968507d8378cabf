"""Database integration: SQL (SQLAlchemy async) and Redis queries routed through the Echo core.

A query travels as a cognitive input (type ``sql_query`` or ``nosql_query``) through
:meth:`AARGateway.process_cognitive_input`; the database agents registered by
:class:`DatabaseGateway` execute it and their result (``rows``/``columns``/``rowcount``, or
``command``/``result``) is merged into ``cognitive_response``. The adapters build the input and
turn the response back into rows, or raise a typed :class:`DatabaseError`.

Databases are read-only unless ``allow_writes`` is true. For SQL that is enforced by the
database itself on every query: PostgreSQL runs each query in ``SET TRANSACTION READ ONLY``;
SQLite connections have ``PRAGMA query_only=ON`` and an authorizer that refuses ``ATTACH``,
``DETACH`` and changing ``query_only``. Redis accepts a fixed vocabulary of commands (see
:data:`REDIS_READ_COMMANDS` and :data:`REDIS_WRITE_COMMANDS`).

Modules: :mod:`.gateway` (:class:`DatabaseGateway`), :mod:`.plugin`
(:class:`DatabaseIntegrationPlugin`), :mod:`.adapters`, :mod:`.sql` and :mod:`.nosql` (the
agents and how they run queries).
"""

from __future__ import annotations

from deep_tree_echo.integration.database._agent_input import NOSQL_QUERY, SQL_QUERY
from deep_tree_echo.integration.database._urls import async_sql_url
from deep_tree_echo.integration.database.adapters import NoSQLAdapter, SQLAdapter
from deep_tree_echo.integration.database.gateway import DatabaseGateway
from deep_tree_echo.integration.database.nosql import (
    REDIS_READ_COMMANDS,
    REDIS_WRITE_COMMANDS,
    NoSQLQueryAgent,
)
from deep_tree_echo.integration.database.plugin import DatabaseIntegrationPlugin
from deep_tree_echo.integration.database.sql import SQLQueryAgent

__all__ = [
    "NOSQL_QUERY",
    "REDIS_READ_COMMANDS",
    "REDIS_WRITE_COMMANDS",
    "SQL_QUERY",
    "DatabaseGateway",
    "DatabaseIntegrationPlugin",
    "NoSQLAdapter",
    "NoSQLQueryAgent",
    "SQLAdapter",
    "SQLQueryAgent",
    "async_sql_url",
]
