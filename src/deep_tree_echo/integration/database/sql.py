"""SQL through SQLAlchemy async: the engine, one statement per transaction, the ``sql_query`` agent.

Read-only unless ``allow_writes``, enforced by the database itself on every query: PostgreSQL
runs each query in ``SET TRANSACTION READ ONLY``; SQLite connections have ``PRAGMA
query_only=ON`` and an authorizer that refuses ``ATTACH``, ``DETACH`` and setting pragmas.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.integration.database._agent_input import SQL_QUERY, query_content
from deep_tree_echo.integration.database._values import jsonable
from deep_tree_echo.integration.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    QueryError,
    WriteNotAllowedError,
)

__all__ = ["SQL_QUERY", "SQLQueryAgent", "check_read_only_support", "create_engine", "execute_sql"]

#: The bound query runner an agent gets (``DatabaseGateway.execute_sql``), not the gateway.
SQLRunner = Callable[[str, Mapping[str, Any] | None], Awaitable[dict[str, Any]]]

#: The dialects whose read-only mode this module enforces.
READ_ONLY_DIALECTS = ("sqlite", "postgresql")


def check_read_only_support(dialect: str, allow_writes: bool) -> None:
    """Refuse a read-only database of a dialect whose read-only mode is not enforced."""
    if not allow_writes and dialect not in READ_ONLY_DIALECTS:
        raise ConfigurationError(
            f"read-only mode is enforced for sqlite and postgresql only, not "
            f"{dialect}; set allow_writes: true to use it"
        )


def create_engine(url: str, *, dialect: str, allow_writes: bool) -> AsyncEngine:
    """The async engine for ``url``; its SQLite connections are read-only by default."""
    try:
        engine = create_async_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigurationError(f"cannot use SQL URL: {exc}") from exc
    if dialect == "sqlite" and not allow_writes:
        event.listen(engine.sync_engine, "connect", _sqlite_read_only)
    return engine


async def execute_sql(
    engine: AsyncEngine,
    query: str,
    params: Mapping[str, Any] | None,
    *,
    dialect: str,
    allow_writes: bool,
    max_rows: int,
    time_limit: float,
) -> dict[str, Any]:
    """Run one statement with bound ``:name`` parameters; return rows as JSON-safe lists.

    The transaction is committed with ``allow_writes``, else rolled back; at most ``max_rows``
    rows come back (``truncated`` says whether there were more).
    """
    if not isinstance(query, str) or not query.strip():
        raise QueryError("'query' must be a non-empty SQL string")
    if params is not None and not isinstance(params, Mapping):
        raise QueryError("'params' must be an object of named parameters (:name)")
    try:
        async with asyncio.timeout(time_limit):
            conn = engine.connect()
            try:
                await conn.start()
            except (SQLAlchemyError, OSError) as exc:
                raise DatabaseUnavailableError(f"cannot connect to the database: {exc}") from exc
            try:
                await _begin(
                    conn, dialect=dialect, allow_writes=allow_writes, time_limit=time_limit
                )
                try:
                    result = await conn.execute(text(query), dict(params or {}))
                except DBAPIError as exc:
                    raise _translate(exc) from exc
                except SQLAlchemyError as exc:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                    raise QueryError(f"invalid query: {reason}") from exc
                if result.returns_rows:
                    columns = [str(c) for c in result.keys()]  # noqa: SIM118
                    fetched = result.fetchmany(max_rows + 1)
                    truncated = len(fetched) > max_rows
                    rows = [[jsonable(v) for v in row] for row in fetched[:max_rows]]
                    result.close()
                    rowcount = len(rows)
                else:
                    columns, rows, truncated = [], [], False
                    rowcount = max(result.rowcount, 0)
                if allow_writes:
                    await conn.commit()
                else:
                    await conn.rollback()
            finally:
                await conn.close()  # rolls back whatever was not committed
    except TimeoutError:
        raise DatabaseUnavailableError(f"the query did not finish within {time_limit}s") from None
    return {"columns": columns, "rows": rows, "rowcount": rowcount, "truncated": truncated}


async def _begin(
    conn: AsyncConnection, *, dialect: str, allow_writes: bool, time_limit: float
) -> None:
    if dialect != "postgresql":
        return
    if not allow_writes:
        await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(time_limit * 1000)}")
    if not allow_writes:
        # the first query fixes the transaction's mode: SET TRANSACTION READ WRITE now fails
        await conn.exec_driver_sql("SELECT 1")


def _translate(exc: DBAPIError) -> DatabaseError:
    orig = exc.orig
    cause = getattr(orig, "__cause__", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    errorname = getattr(orig, "sqlite_errorname", None) or getattr(cause, "sqlite_errorname", None)
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else repr(orig)
    if sqlstate == "25006" or errorname in ("SQLITE_READONLY", "SQLITE_AUTH"):
        return WriteNotAllowedError(f"the database is read-only (allow_writes is false): {message}")
    if exc.connection_invalidated:
        return DatabaseUnavailableError(f"database connection lost: {message}")
    return QueryError(f"query failed: {message}", sqlstate=sqlstate)


def _sqlite_read_only(dbapi_connection: Any, _record: Any) -> None:
    """On each new SQLite connection: ``query_only`` on, and no way to turn it off or attach."""

    def authorize(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and arg2 is not None:
            # setting any pragma (query_only, journal_mode, ...) could lift or bypass read-only
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    async def setup(conn: Any) -> None:
        await conn.execute("PRAGMA query_only = ON")
        await conn.set_authorizer(authorize)

    dbapi_connection.run_async(setup)


class SQLQueryAgent(Agent):
    """Executes ``sql_query`` inputs on the gateway's SQL database (the "database tool")."""

    name: ClassVar[str] = "sql_database"
    handles: ClassVar[frozenset[str]] = frozenset({SQL_QUERY})

    def __init__(self, run: SQLRunner) -> None:
        self.run = run

    async def handle(self, ctx: AgentContext) -> AgentResult:
        query, params = query_content(ctx)
        data = await self.run(query, params)
        noun = "row" if data["rowcount"] == 1 else "rows"
        return AgentResult(text=f"{data['rowcount']} {noun}", confidence=1.0, data=data)
