"""The database gateway: connects Echo to one SQL database and optionally one Redis.

It registers the ``sql_query``/``nosql_query`` agents on the AAR gateway, which run queries with
:func:`~deep_tree_echo.integration.database.sql.execute_sql` and
:func:`~deep_tree_echo.integration.database.nosql.execute_nosql`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deep_tree_echo.aar_core.agents import Agent
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.integration.database import nosql, sql
from deep_tree_echo.integration.database._urls import REDIS_SCHEMES, async_sql_url, url_scheme
from deep_tree_echo.integration.database.adapters import NoSQLAdapter, QueryAdapter, SQLAdapter
from deep_tree_echo.integration.errors import (
    DatabaseUnavailableError,
    QueryError,
    UnknownFormatError,
)
from deep_tree_echo.integration.gateway import IntegrationGateway

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from deep_tree_echo.aar_core.gateway import AARGateway

__all__ = ["DatabaseGateway"]

_DEFAULT_ADAPTERS: dict[str, QueryAdapter] = {"sql": SQLAdapter(), "nosql": NoSQLAdapter()}


class DatabaseGateway(IntegrationGateway):
    """Connects Echo to one SQL database and optionally one Redis.

    Config keys: ``url`` (SQL URL, or a ``redis://`` URL), ``sql_url``, ``nosql_url``,
    ``allow_writes`` (default false), ``max_rows`` (default 1000), ``timeout`` seconds
    (default 30). Without any SQL URL an in-memory SQLite database is used.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | EchoSettings | None = None,
        *,
        aar_gateway: AARGateway | None = None,
    ) -> None:
        super().__init__(config, aar_gateway=aar_gateway)
        cfg = self.config
        url = cfg.get("url")
        sql_url = cfg.get("sql_url")
        nosql_url = cfg.get("nosql_url") or cfg.get("redis_url")
        if isinstance(url, str) and url:
            if url_scheme(url) in REDIS_SCHEMES:
                nosql_url = nosql_url or url
            else:
                sql_url = sql_url or url
        self.sql_url: str = async_sql_url(str(sql_url)) if sql_url else "sqlite+aiosqlite://"
        self.nosql_url: str | None = str(nosql_url) if nosql_url else None
        self.allow_writes = bool(cfg.get("allow_writes", False))
        try:
            self.max_rows = int(cfg.get("max_rows", 1000))
            self.timeout = float(cfg.get("timeout", 30.0))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"invalid database config: {exc}") from exc
        if self.max_rows <= 0 or self.timeout <= 0:
            raise ConfigurationError("max_rows and timeout must be positive")
        self.engine: AsyncEngine | None = None
        self.redis: aioredis.Redis | None = None
        self._agents: list[Agent] = []

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql``, ...: the SQL dialect of :attr:`sql_url`."""
        return url_scheme(self.sql_url).split("+", 1)[0]

    async def initialize(self) -> None:
        """Connect to Echo, create the engine/client and register the database agents."""
        if self.initialized:
            return
        sql.check_read_only_support(self.dialect, self.allow_writes)
        if not await self.connect_to_echo_system():
            raise DatabaseUnavailableError("cannot connect to the Echo system")
        self.engine = sql.create_engine(
            self.sql_url, dialect=self.dialect, allow_writes=self.allow_writes
        )
        if self.nosql_url is not None:
            self.redis = nosql.redis_client(self.nosql_url)
        agents: tuple[Agent, ...] = (
            sql.SQLQueryAgent(self.execute_sql),  # a bound runner each, not this gateway
            nosql.NoSQLQueryAgent(self.execute_nosql),
        )
        for agent in agents:
            self.aar_gateway.register_agent(agent)
            self._agents.append(agent)
        self.active_connections["sql"] = self.engine
        if self.redis is not None:
            self.active_connections["nosql"] = self.redis
        self.initialized = True

    async def shutdown(self) -> None:
        """Unregister the agents, close the engine and the Redis client."""
        if self._aar_gateway is not None:
            for agent in self._agents:
                if self._aar_gateway.agents.get(agent.name) is agent:
                    self._aar_gateway.agents.unregister(agent.name)
        self._agents.clear()
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        await super().shutdown()

    async def process_external_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """``{"query", "format": "sql"|"nosql", "params"}`` → the adapter's result."""
        if not isinstance(request, Mapping):
            raise QueryError(f"request must be an object, not {type(request).__name__}")
        format_type = request.get("format", "sql")
        adapter = _DEFAULT_ADAPTERS.get(format_type)
        if adapter is None:
            raise UnknownFormatError(f"No adapter found for format: {format_type}")
        inp = adapter.cognitive_input({"query": request.get("query"),
                                       "params": request.get("params")})
        return adapter.from_result(await self.aar_gateway.answer(inp))

    async def execute_sql(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run one statement with bound ``:name`` parameters; return rows as JSON-safe lists."""
        if self.engine is None:
            raise DatabaseUnavailableError("the database gateway is not initialized")
        return await sql.execute_sql(
            self.engine,
            query,
            params,
            dialect=self.dialect,
            allow_writes=self.allow_writes,
            max_rows=self.max_rows,
            time_limit=self.timeout,
        )

    async def execute_nosql(self, query: Any) -> dict[str, Any]:
        """Run one command of the Redis vocabulary; return ``{"command", "result"}``."""
        if self.redis is None:
            raise DatabaseUnavailableError("no NoSQL database is configured (set nosql_url)")
        return await nosql.execute_nosql(
            self.redis,
            query,
            allow_writes=self.allow_writes,
            max_rows=self.max_rows,
            time_limit=self.timeout,
        )
