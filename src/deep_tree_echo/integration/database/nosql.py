"""Redis through redis-py async: a fixed command vocabulary and the ``nosql_query`` agent.

A query is a command line (``"GET k"``) or an object (``{"command": "GET", "key": "k"}``).
Only :data:`REDIS_READ_COMMANDS` run unless ``allow_writes``; then :data:`REDIS_WRITE_COMMANDS`
do too.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from deep_tree_echo._redis import redis_client as make_redis_client
from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.integration.database._agent_input import NOSQL_QUERY, query_content
from deep_tree_echo.integration.database._values import jsonable
from deep_tree_echo.integration.errors import (
    DatabaseUnavailableError,
    QueryError,
    WriteNotAllowedError,
)

__all__ = [
    "NOSQL_QUERY",
    "REDIS_READ_COMMANDS",
    "REDIS_WRITE_COMMANDS",
    "NoSQLQueryAgent",
    "execute_nosql",
    "parse_redis_query",
    "redis_client",
]

#: The bound query runner an agent gets (``DatabaseGateway.execute_nosql``), not the gateway.
NoSQLRunner = Callable[[Any], Awaitable[dict[str, Any]]]

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


def parse_redis_query(query: Any) -> tuple[str, dict[str, Any]]:
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


def redis_client(url: str) -> aioredis.Redis:
    """A client for ``url`` that decodes replies as UTF-8 text."""
    return make_redis_client(url, text=True)


async def execute_nosql(
    client: aioredis.Redis, query: Any, *, allow_writes: bool, max_rows: int, time_limit: float
) -> dict[str, Any]:
    """Run one command of the Redis vocabulary; return ``{"command", "result"}``."""
    command, args = parse_redis_query(query)
    if command in REDIS_WRITE_COMMANDS and not allow_writes:
        raise WriteNotAllowedError(
            f"{command} is a write and the database is read-only (allow_writes is false)"
        )
    try:
        async with asyncio.timeout(time_limit):
            result = await _run_redis(client, command, args, max_rows)
    except TimeoutError:
        raise DatabaseUnavailableError(f"the command did not finish within {time_limit}s") from None
    except redis_errors.ResponseError as exc:
        raise QueryError(f"redis rejected {command}: {exc}") from exc
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise DatabaseUnavailableError(f"redis is unavailable: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise QueryError(f"{command} returned binary data that is not UTF-8") from exc
    return {"command": command, "result": jsonable(result)}


async def _run_redis(
    client: aioredis.Redis, command: str, args: dict[str, Any], max_rows: int
) -> Any:
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
            if len(keys) > max_rows:
                break
        return sorted(keys[:max_rows])
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
            await client.expire(str(_arg(args, "key", command)), _int_arg(args, "seconds", command))
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


class NoSQLQueryAgent(Agent):
    """Executes ``nosql_query`` inputs (Redis commands) on the gateway's NoSQL database."""

    name: ClassVar[str] = "nosql_database"
    handles: ClassVar[frozenset[str]] = frozenset({NOSQL_QUERY})

    def __init__(self, run: NoSQLRunner) -> None:
        self.run = run

    async def handle(self, ctx: AgentContext) -> AgentResult:
        query, _ = query_content(ctx)
        data = await self.run(query)
        return AgentResult(text=f"{data['command']} ok", confidence=1.0, data=data)
