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
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import shlex
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.integration.adapters import DataAdapter
from deep_tree_echo.integration.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    QueryError,
    UnknownFormatError,
    WriteNotAllowedError,
)
from deep_tree_echo.integration.gateway import IntegrationGateway
from deep_tree_echo.integration.plugins import IntegrationPlugin

if TYPE_CHECKING:
    from deep_tree_echo.aar_core.gateway import AARGateway

__all__ = [
    "REDIS_READ_COMMANDS",
    "REDIS_WRITE_COMMANDS",
    "DatabaseGateway",
    "DatabaseIntegrationPlugin",
    "NoSQLAdapter",
    "NoSQLQueryAgent",
    "SQLAdapter",
    "SQLQueryAgent",
    "async_sql_url",
]

SQL_QUERY = "sql_query"
NOSQL_QUERY = "nosql_query"

# -- URLs -------------------------------------------------------------------------------------

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+pg8000": "postgresql+asyncpg",
}
_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, sep, _ = url.partition(":")
    return scheme.lower() if sep else ""


def async_sql_url(url: str) -> str:
    """``url`` with its async driver: ``sqlite://`` → aiosqlite, ``postgresql://`` → asyncpg."""
    scheme = _scheme(url)
    if not scheme:
        raise ConfigurationError(f"not a database URL: {url!r}")
    if scheme in _REDIS_SCHEMES:
        raise ConfigurationError(f"{scheme}:// is a NoSQL URL; configure it as 'nosql_url'")
    replacement = _ASYNC_DRIVERS.get(scheme)
    if replacement is None:
        return url
    return replacement + url[len(scheme) :]


# -- JSON-safe values -------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """A database value as JSON: datetimes ISO 8601, Decimal/UUID as str, bytes as base64."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)


# -- Redis command vocabulary ----------------------------------------------------------------

#: Read commands: name → positional argument names (``*name`` takes the rest).
REDIS_READ_COMMANDS: dict[str, tuple[str, ...]] = {
    "GET": ("key",),
    "MGET": ("*keys",),
    "HGET": ("key", "field"),
    "HGETALL": ("key",),
    "HKEYS": ("key",),
    "HLEN": ("key",),
    "EXISTS": ("*keys",),
    "TTL": ("key",),
    "TYPE": ("key",),
    "STRLEN": ("key",),
    "LLEN": ("key",),
    "LRANGE": ("key", "start", "stop"),
    "SMEMBERS": ("key",),
    "SCARD": ("key",),
    "KEYS": ("pattern",),
}
#: Write commands, refused unless ``allow_writes`` is true.
REDIS_WRITE_COMMANDS: dict[str, tuple[str, ...]] = {
    "SET": ("key", "value"),
    "HSET": ("key", "*pairs"),
    "DEL": ("*keys",),
    "EXPIRE": ("key", "seconds"),
}


_SINGLE_KEY_READS = frozenset(
    {"HGETALL", "HKEYS", "HLEN", "TTL", "TYPE", "STRLEN", "LLEN", "SMEMBERS", "SCARD"}
)


def _parse_redis_query(query: Any) -> tuple[str, dict[str, Any]]:
    """``"GET k"``/``{"command": "GET", "key": "k"}`` → ``("GET", {"key": "k"})``."""
    if isinstance(query, str):
        try:
            tokens = shlex.split(query)
        except ValueError as exc:
            raise QueryError(f"cannot parse redis command: {exc}") from exc
        if not tokens:
            raise QueryError("empty redis command")
        command, positional = tokens[0].upper(), tokens[1:]
        named: dict[str, Any] = {}
    elif isinstance(query, Mapping):
        raw = query.get("command")
        if not isinstance(raw, str) or not raw.strip():
            raise QueryError("a redis query object needs a 'command' string")
        command = raw.strip().upper()
        args = query.get("args", [])
        if not isinstance(args, list | tuple):
            raise QueryError("'args' must be a list")
        positional = [str(a) for a in args]
        named = {k: v for k, v in query.items() if k not in ("command", "args")}
    else:
        raise QueryError(f"a redis query is a string or an object, not {type(query).__name__}")
    spec = REDIS_READ_COMMANDS.get(command) or REDIS_WRITE_COMMANDS.get(command)
    if spec is None:
        supported = ", ".join(sorted({*REDIS_READ_COMMANDS, *REDIS_WRITE_COMMANDS}))
        raise QueryError(f"unsupported redis command {command!r}; supported: {supported}")
    for index, name in enumerate(spec):
        if name.startswith("*"):
            if positional[index:]:
                named.setdefault(name[1:], positional[index:])
            break
        if index < len(positional):
            named.setdefault(name, positional[index])
    if command == "SET" and len(positional) > 2:  # SET key value EX seconds
        extra = [p.upper() for p in positional[2:]]
        if len(extra) != 2 or extra[0] != "EX":
            raise QueryError("SET takes optional 'EX seconds' only")
        named.setdefault("ex", positional[3])
    return command, named


def _arg(args: Mapping[str, Any], name: str, command: str) -> Any:
    if name not in args or args[name] is None:
        raise QueryError(f"{command} needs '{name}'")
    return args[name]


def _int_arg(args: Mapping[str, Any], name: str, command: str) -> int:
    value = _arg(args, name, command)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise QueryError(f"{command}: '{name}' must be an integer") from None


def _keys_arg(args: Mapping[str, Any], command: str) -> list[str]:
    keys = args.get("keys", args.get("key"))
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list | tuple) or not keys:
        raise QueryError(f"{command} needs 'keys'")
    return [str(k) for k in keys]


# -- the gateway ------------------------------------------------------------------------------


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
            if _scheme(url) in _REDIS_SCHEMES:
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
        return _scheme(self.sql_url).split("+", 1)[0]

    async def initialize(self) -> None:
        """Connect to Echo, create the engine/client and register the database agents."""
        if self.initialized:
            return
        if not self.allow_writes and self.dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                f"read-only mode is enforced for sqlite and postgresql only, not "
                f"{self.dialect}; set allow_writes: true to use it"
            )
        if not await self.connect_to_echo_system():
            raise DatabaseUnavailableError("cannot connect to the Echo system")
        try:
            self.engine = create_async_engine(self.sql_url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise ConfigurationError(f"cannot use SQL URL: {exc}") from exc
        if self.dialect == "sqlite" and not self.allow_writes:
            event.listen(self.engine.sync_engine, "connect", _sqlite_read_only)
        if self.nosql_url is not None:
            self.redis = aioredis.from_url(self.nosql_url, decode_responses=True)
        for agent in (SQLQueryAgent(self), NoSQLQueryAgent(self)):
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
        echo_query = adapter.to_echo_format(
            {"query": request.get("query"), "params": request.get("params")}
        )
        result = await self.aar_gateway.process_cognitive_input(echo_query)
        out: dict[str, Any] = adapter.from_echo_format(result)
        return out

    # -- SQL ----------------------------------------------------------------------------------

    async def execute_sql(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run one statement with bound ``:name`` parameters; return rows as JSON-safe lists."""
        if self.engine is None:
            raise DatabaseUnavailableError("the database gateway is not initialized")
        if not isinstance(query, str) or not query.strip():
            raise QueryError("'query' must be a non-empty SQL string")
        if params is not None and not isinstance(params, Mapping):
            raise QueryError("'params' must be an object of named parameters (:name)")
        try:
            async with asyncio.timeout(self.timeout):
                conn = self.engine.connect()
                try:
                    await conn.start()
                except (SQLAlchemyError, OSError) as exc:
                    raise DatabaseUnavailableError(
                        f"cannot connect to the database: {exc}"
                    ) from exc
                try:
                    await self._begin(conn)
                    try:
                        result = await conn.execute(text(query), dict(params or {}))
                    except DBAPIError as exc:
                        raise self._translate(exc) from exc
                    except SQLAlchemyError as exc:
                        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                        raise QueryError(f"invalid query: {reason}") from exc
                    if result.returns_rows:
                        columns = [str(c) for c in result.keys()]  # noqa: SIM118
                        fetched = result.fetchmany(self.max_rows + 1)
                        truncated = len(fetched) > self.max_rows
                        rows = [[_jsonable(v) for v in row] for row in fetched[: self.max_rows]]
                        result.close()
                        rowcount = len(rows)
                    else:
                        columns, rows, truncated = [], [], False
                        rowcount = max(result.rowcount, 0)
                    if self.allow_writes:
                        await conn.commit()
                    else:
                        await conn.rollback()
                finally:
                    await conn.close()  # rolls back whatever was not committed
        except TimeoutError:
            raise DatabaseUnavailableError(
                f"the query did not finish within {self.timeout}s"
            ) from None
        return {"columns": columns, "rows": rows, "rowcount": rowcount, "truncated": truncated}

    async def _begin(self, conn: AsyncConnection) -> None:
        if self.dialect != "postgresql":
            return
        if not self.allow_writes:
            await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(self.timeout * 1000)}")
        if not self.allow_writes:
            # the first query fixes the transaction's mode: SET TRANSACTION READ WRITE now fails
            await conn.exec_driver_sql("SELECT 1")

    @staticmethod
    def _translate(exc: DBAPIError) -> DatabaseError:
        orig = exc.orig
        cause = getattr(orig, "__cause__", None)
        sqlstate = getattr(orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
        errorname = getattr(orig, "sqlite_errorname", None) or getattr(
            cause, "sqlite_errorname", None
        )
        message = str(orig).strip().splitlines()[0] if str(orig).strip() else repr(orig)
        if sqlstate == "25006" or errorname in ("SQLITE_READONLY", "SQLITE_AUTH"):
            return WriteNotAllowedError(
                f"the database is read-only (allow_writes is false): {message}"
            )
        if exc.connection_invalidated:
            return DatabaseUnavailableError(f"database connection lost: {message}")
        return QueryError(f"query failed: {message}", sqlstate=sqlstate)

    # -- Redis --------------------------------------------------------------------------------

    async def execute_nosql(self, query: Any) -> dict[str, Any]:
        """Run one command of the Redis vocabulary; return ``{"command", "result"}``."""
        if self.redis is None:
            raise DatabaseUnavailableError("no NoSQL database is configured (set nosql_url)")
        command, args = _parse_redis_query(query)
        if command in REDIS_WRITE_COMMANDS and not self.allow_writes:
            raise WriteNotAllowedError(
                f"{command} is a write and the database is read-only (allow_writes is false)"
            )
        try:
            async with asyncio.timeout(self.timeout):
                result = await self._run_redis(self.redis, command, args)
        except TimeoutError:
            raise DatabaseUnavailableError(
                f"the command did not finish within {self.timeout}s"
            ) from None
        except redis_errors.ResponseError as exc:
            raise QueryError(f"redis rejected {command}: {exc}") from exc
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise DatabaseUnavailableError(f"redis is unavailable: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise QueryError(f"{command} returned binary data that is not UTF-8") from exc
        return {"command": command, "result": _jsonable(result)}

    async def _run_redis(self, client: aioredis.Redis, command: str, args: dict[str, Any]) -> Any:
        if command == "GET":
            return await client.get(str(_arg(args, "key", command)))
        if command == "MGET":
            return await client.mget(_keys_arg(args, command))
        if command == "HGET":
            key = str(_arg(args, "key", command))
            return await client.hget(key, str(_arg(args, "field", command)))
        if command in _SINGLE_KEY_READS:
            method = getattr(client, command.lower())
            return await method(str(_arg(args, "key", command)))
        if command == "EXISTS":
            return await client.exists(*_keys_arg(args, command))
        if command == "LRANGE":
            return await client.lrange(
                str(_arg(args, "key", command)),
                _int_arg(args, "start", command),
                _int_arg(args, "stop", command),
            )
        if command == "KEYS":
            pattern = str(args.get("pattern") or "*")
            keys: list[str] = []
            async for key in client.scan_iter(match=pattern, count=500):
                keys.append(key)
                if len(keys) > self.max_rows:
                    break
            return sorted(keys[: self.max_rows])
        if command == "SET":
            ex = args.get("ex")
            return bool(
                await client.set(
                    str(_arg(args, "key", command)),
                    _scalar(_arg(args, "value", command)),
                    ex=None if ex is None else _int_arg(args, "ex", command),
                )
            )
        if command == "HSET":
            mapping: dict[Any, Any] = _pairs(args)
            return await client.hset(str(_arg(args, "key", command)), mapping=mapping)
        if command == "DEL":
            return await client.delete(*_keys_arg(args, command))
        if command == "EXPIRE":
            return bool(
                await client.expire(
                    str(_arg(args, "key", command)), _int_arg(args, "seconds", command)
                )
            )
        raise QueryError(f"unsupported redis command {command!r}")  # pragma: no cover


def _scalar(value: Any) -> str | int | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QueryError("redis values must be strings or numbers")
    return value


def _pairs(args: Mapping[str, Any]) -> dict[str, str | int | float]:
    mapping = args.get("mapping")
    if mapping is None and "pairs" in args:
        pairs = list(args["pairs"])
        if len(pairs) % 2:
            raise QueryError("HSET needs field value pairs")
        mapping = dict(zip(pairs[::2], pairs[1::2], strict=True))
    if mapping is None and "field" in args:
        mapping = {args["field"]: args.get("value")}
    if not isinstance(mapping, Mapping) or not mapping:
        raise QueryError("HSET needs 'mapping' (or field value pairs)")
    return {str(k): _scalar(v) for k, v in mapping.items()}


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


# -- agents -----------------------------------------------------------------------------------


def _query_content(ctx: AgentContext) -> tuple[Any, Any]:
    content = ctx.content
    if isinstance(content, Mapping):
        return content.get("query"), content.get("params")
    return content, None


class SQLQueryAgent(Agent):
    """Executes ``sql_query`` inputs on the gateway's SQL database (the "database tool")."""

    name: ClassVar[str] = "sql_database"
    handles: ClassVar[frozenset[str]] = frozenset({SQL_QUERY})

    def __init__(self, database: DatabaseGateway) -> None:
        self.database = database

    async def handle(self, ctx: AgentContext) -> AgentResult:
        query, params = _query_content(ctx)
        data = await self.database.execute_sql(query, params)
        noun = "row" if data["rowcount"] == 1 else "rows"
        return AgentResult(text=f"{data['rowcount']} {noun}", confidence=1.0, data=data)


class NoSQLQueryAgent(Agent):
    """Executes ``nosql_query`` inputs (Redis commands) on the gateway's NoSQL database."""

    name: ClassVar[str] = "nosql_database"
    handles: ClassVar[frozenset[str]] = frozenset({NOSQL_QUERY})

    def __init__(self, database: DatabaseGateway) -> None:
        self.database = database

    async def handle(self, ctx: AgentContext) -> AgentResult:
        query, _ = _query_content(ctx)
        data = await self.database.execute_nosql(query)
        return AgentResult(text=f"{data['command']} ok", confidence=1.0, data=data)


# -- adapters ---------------------------------------------------------------------------------

_ERRORS: dict[str, type[DatabaseError]] = {
    QueryError.code: QueryError,
    WriteNotAllowedError.code: WriteNotAllowedError,
    DatabaseUnavailableError.code: DatabaseUnavailableError,
}


def _raise_for_error(echo_data: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cognitive_response`` of a successful answer, else the typed error it carries."""
    if echo_data.get("status") == "success":
        response = echo_data.get("cognitive_response")
        return dict(response) if isinstance(response, Mapping) else {}
    error = echo_data.get("error")
    code = str(error.get("code", "")) if isinstance(error, Mapping) else ""
    message = str(error.get("message", "")) if isinstance(error, Mapping) else ""
    error_class = _ERRORS.get(code)
    if error_class is not None:
        raise error_class(message or code)
    raise DatabaseError(message or "the query failed", code=code or DatabaseError.code)


def _query_input(query_data: Any, query_type: str, fmt: str) -> dict[str, Any]:
    if isinstance(query_data, Mapping):
        query, params = query_data.get("query"), query_data.get("params")
    else:
        query, params = query_data, None
    if query is None or (isinstance(query, str) and not query.strip()):
        raise QueryError("'query' is required")
    content: dict[str, Any] = {"query": query}
    if params is not None:
        content["params"] = params
    return {
        "type": query_type,
        "content": content,
        "metadata": {"format": fmt, "external_source": "database"},
    }


class SQLAdapter(DataAdapter):
    """SQL queries in; rows out, as dicts by column (``row_format="dict"``) or as lists."""

    def __init__(self, *, row_format: Literal["dict", "list"] = "dict") -> None:
        self.row_format = row_format

    def to_echo_format(self, query_data: Any) -> dict[str, Any]:
        return _query_input(query_data, SQL_QUERY, "sql")

    def from_echo_format(self, echo_data: dict[str, Any]) -> dict[str, Any]:
        response = _raise_for_error(echo_data)
        if "rows" not in response or "columns" not in response:
            raise DatabaseUnavailableError(
                "no database agent answered the query; is a DatabaseGateway initialized on "
                "this gateway?"
            )
        columns: list[str] = list(response["columns"])
        rows: list[Any] = list(response["rows"])
        if self.row_format == "dict":
            rows = [dict(zip(columns, row, strict=False)) for row in rows]
        return {
            "columns": columns,
            "rows": rows,
            "rowcount": response.get("rowcount", len(rows)),
            "truncated": bool(response.get("truncated", False)),
        }


class NoSQLAdapter(DataAdapter):
    """Redis commands in (string or object); ``{"command", "result"}`` out."""

    def to_echo_format(self, query_data: Any) -> dict[str, Any]:
        return _query_input(query_data, NOSQL_QUERY, "nosql")

    def from_echo_format(self, echo_data: dict[str, Any]) -> dict[str, Any]:
        response = _raise_for_error(echo_data)
        if "command" not in response:
            raise DatabaseUnavailableError(
                "no NoSQL agent answered the query; is a DatabaseGateway initialized on "
                "this gateway?"
            )
        return {"command": response["command"], "result": response.get("result")}


_DEFAULT_ADAPTERS: dict[str, DataAdapter] = {"sql": SQLAdapter(), "nosql": NoSQLAdapter()}


# -- the plugin -------------------------------------------------------------------------------


class DatabaseIntegrationPlugin(IntegrationPlugin):
    """Query SQL and Redis databases through Echo: ``await plugin.query_database(...)``.

    Config: ``{"database": {...DatabaseGateway config...}}`` (or those keys at the top level).
    """

    name = "database"
    version = "1.0.0"

    async def setup_integrations(self) -> None:
        # Setup database connections
        db_config = self.config.get("database", self.config)
        self.db_gateway = DatabaseGateway(db_config, aar_gateway=self.aar_gateway)
        self.integrations.append(self.db_gateway)

        # Register adapters
        self.register_adapter("sql", SQLAdapter())
        self.register_adapter("nosql", NoSQLAdapter())

    async def query_database(
        self,
        query: str | Mapping[str, Any],
        format_type: str = "sql",
        params: Mapping[str, Any] | Sequence[Any] | None = None,
    ) -> Any:
        """Send ``query`` through the Echo gateway; rows (or the Redis result) come back."""
        adapter = self.get_adapter(format_type)
        if not adapter:
            raise UnknownFormatError(f"No adapter found for format: {format_type}")
        if self.aar_gateway is None:
            raise DatabaseUnavailableError("the plugin is not initialized")

        # Transform query to Echo format
        echo_query = adapter.to_echo_format({"query": query, "params": params})

        # Process through Echo system
        result = await self.aar_gateway.process_cognitive_input(echo_query)

        # Transform result back
        return adapter.from_echo_format(result)
