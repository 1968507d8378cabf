"""DatabaseIntegrationPlugin against real SQLite, PostgreSQL and redis-server."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.integration.database import (
    DatabaseGateway,
    DatabaseIntegrationPlugin,
    NoSQLAdapter,
    SQLAdapter,
    async_sql_url,
)
from deep_tree_echo.integration.errors import (
    DatabaseUnavailableError,
    QueryError,
    UnknownFormatError,
    WriteNotAllowedError,
)


@pytest.fixture
async def gateway() -> AsyncIterator[AARGateway]:
    async with AARGateway({"test_mode": True}) as gw:
        yield gw


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE, price REAL)")
        conn.executemany("INSERT INTO items (name, price) VALUES (?, ?)",
                         [("apple", 1.5), ("pear", 2.0), ("plum", 0.5)])
    return path


async def _plugin(gateway: AARGateway, **db: Any) -> DatabaseIntegrationPlugin:
    plugin = DatabaseIntegrationPlugin()
    await plugin.initialize({"database": db}, gateway)
    return plugin


def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


def test_urls_get_their_async_driver() -> None:
    assert async_sql_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert async_sql_url("sqlite://") == "sqlite+aiosqlite://"
    assert async_sql_url("postgresql://u@h:5/db") == "postgresql+asyncpg://u@h:5/db"
    assert async_sql_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_sql_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ConfigurationError):
        async_sql_url("redis://localhost")
    gw = DatabaseGateway({"url": "redis://localhost:1/0"})
    assert gw.nosql_url == "redis://localhost:1/0"
    assert gw.sql_url == "sqlite+aiosqlite://"  # SQLite by default


# -- SQLite -------------------------------------------------------------------------------------


async def test_sqlite_select_through_the_echo_gateway(
    gateway: AARGateway, sqlite_path: Path
) -> None:
    plugin = await _plugin(gateway, url=f"sqlite:///{sqlite_path}")
    result = await plugin.query_database(
        "SELECT name, price FROM items WHERE price > :min ORDER BY name", params={"min": 1.0}
    )
    assert result == {"columns": ["name", "price"],
                      "rows": [{"name": "apple", "price": 1.5}, {"name": "pear", "price": 2.0}],
                      "rowcount": 2, "truncated": False}
    # it really went through the gateway to the agent
    raw = await gateway.process_cognitive_input(
        SQLAdapter().to_echo_format({"query": "SELECT count(*) AS n FROM items"})
    )
    assert raw["status"] == "success"
    assert raw["cognitive_response"]["agent"] == "sql_database"
    assert raw["cognitive_response"]["rows"] == [[3]]
    await plugin.shutdown()
    assert gateway.agents.get("sql_database") is None


async def test_sqlite_parameters_are_bound_not_interpolated(
    gateway: AARGateway, sqlite_path: Path
) -> None:
    plugin = await _plugin(gateway, url=f"sqlite:///{sqlite_path}", allow_writes=True)
    evil = "x'; DROP TABLE items; --"
    result = await plugin.query_database("SELECT * FROM items WHERE name = :n", params={"n": evil})
    assert result["rows"] == []
    await plugin.query_database("INSERT INTO items (name, price) VALUES (:n, 1)",
                                params={"n": evil})
    assert (await plugin.query_database(
        "SELECT name FROM items WHERE name = :n", params={"n": evil}))["rows"] == [{"name": evil}]
    assert _count(sqlite_path) == 4
    await plugin.shutdown()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO items (name, price) VALUES ('kiwi', 3)",
        "UPDATE items SET price = 0",
        "DELETE FROM items",
        "DROP TABLE items",
        "CREATE TABLE other (x)",
        "PRAGMA query_only = OFF",
        "PRAGMA user_version = 7",
        "ATTACH DATABASE '{dir}/side.db' AS side",
        "/* sneaky */ ATTACH DATABASE '{dir}/side.db' AS side",
    ],
)
async def test_sqlite_is_read_only_by_default(
    gateway: AARGateway, sqlite_path: Path, statement: str
) -> None:
    plugin = await _plugin(gateway, url=f"sqlite:///{sqlite_path}")
    with pytest.raises(WriteNotAllowedError) as info:
        await plugin.query_database(statement.format(dir=sqlite_path.parent))
    assert info.value.code == "write_not_allowed"
    # nothing changed, and the connection is still read-only afterwards
    assert _count(sqlite_path) == 3
    assert not (sqlite_path.parent / "side.db").exists()
    with pytest.raises(WriteNotAllowedError):
        await plugin.query_database("DELETE FROM items")
    assert (await plugin.query_database("SELECT count(*) AS n FROM items"))["rows"] == [{"n": 3}]
    await plugin.shutdown()


async def test_sqlite_writes_when_allowed_and_failures_roll_back(
    gateway: AARGateway, sqlite_path: Path
) -> None:
    plugin = await _plugin(gateway, url=f"sqlite:///{sqlite_path}", allow_writes=True)
    result = await plugin.query_database(
        "INSERT INTO items (name, price) VALUES (:name, :price)",
        params={"name": "kiwi", "price": 3},
    )
    assert result["rowcount"] == 1 and result["rows"] == []
    assert _count(sqlite_path) == 4
    # a statement that fails half-way (unique violation on the 2nd row) leaves nothing behind
    with pytest.raises(QueryError, match="UNIQUE"):
        await plugin.query_database(
            "INSERT INTO items (name, price) SELECT name || '-copy', 1 FROM items "
            "UNION ALL SELECT 'apple', 1"
        )
    assert _count(sqlite_path) == 4
    await plugin.shutdown()


@pytest.mark.parametrize(
    ("query", "params", "needle"),
    [
        ("SELEKT 1", None, "syntax error"),
        ("SELECT nope FROM items", None, "no such column"),
        ("SELECT 1; DELETE FROM items", None, "one statement"),
        ("SELECT * FROM items WHERE id = :id", None, "bind parameter 'id'"),
    ],
)
async def test_sqlite_bad_queries_are_typed_errors(
    gateway: AARGateway, sqlite_path: Path, query: str, params: dict[str, Any] | None, needle: str
) -> None:
    plugin = await _plugin(gateway, url=f"sqlite:///{sqlite_path}", allow_writes=True)
    with pytest.raises(QueryError, match=needle) as info:
        await plugin.query_database(query, params=params)
    assert info.value.code == "query_error"
    assert _count(sqlite_path) == 3
    await plugin.shutdown()


async def test_unknown_format_raises_value_error(gateway: AARGateway) -> None:
    plugin = await _plugin(gateway)
    with pytest.raises(ValueError, match="No adapter found for format: graphql") as info:
        await plugin.query_database("{ q }", format_type="graphql")
    assert isinstance(info.value, UnknownFormatError)
    await plugin.shutdown()


async def test_rows_are_capped_and_list_format(gateway: AARGateway, sqlite_path: Path) -> None:
    plugin = await _plugin(gateway, url=f"sqlite:///{sqlite_path}", max_rows=2)
    plugin.register_adapter("sql_lists", SQLAdapter(row_format="list"))
    result = await plugin.query_database("SELECT name FROM items ORDER BY id",
                                         format_type="sql_lists")
    assert result == {"columns": ["name"], "rows": [["apple"], ["pear"]], "rowcount": 2,
                      "truncated": True}
    await plugin.shutdown()


async def test_database_gateway_process_external_request(
    gateway: AARGateway, sqlite_path: Path
) -> None:
    db = DatabaseGateway({"url": f"sqlite:///{sqlite_path}"}, aar_gateway=gateway)
    await db.initialize()
    out = await db.process_external_request(
        {"query": "SELECT name FROM items WHERE id = :id", "params": {"id": 2}}
    )
    assert out["rows"] == [{"name": "pear"}]
    with pytest.raises(UnknownFormatError):
        await db.process_external_request({"query": "x", "format": "csv"})
    await db.shutdown()


def test_an_answer_from_another_agent_is_a_clear_error() -> None:
    # what the default echo agent answers when no DatabaseGateway registered its agents
    answer = {"status": "success", "cognitive_response": {"text": "Noted.", "agent": "echo"}}
    with pytest.raises(DatabaseUnavailableError, match="no database agent"):
        SQLAdapter().from_echo_format(answer)
    with pytest.raises(DatabaseUnavailableError, match="no NoSQL agent"):
        NoSQLAdapter().from_echo_format(answer)


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
async def pg_table(postgres_url: str) -> AsyncIterator[str]:
    table = f"t_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(postgres_url)
    await conn.execute(
        f"CREATE TABLE {table} (id serial PRIMARY KEY, name text UNIQUE, price numeric(6,2), "
        f"at timestamptz, ref uuid, blob bytea)"
    )
    await conn.execute(
        f"INSERT INTO {table} (name, price, at, ref, blob) VALUES "
        f"('apple', 1.50, '2024-01-02T03:04:05Z', '12345678-1234-5678-1234-567812345678', "
        f"'\\x0102')"
    )
    yield table
    await conn.execute(f"DROP TABLE {table}")
    await conn.close()


async def _pg_count(postgres_url: str, table: str) -> int:
    conn = await asyncpg.connect(postgres_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def test_postgres_select_converts_values_to_json(
    gateway: AARGateway, postgres_url: str, pg_table: str
) -> None:
    plugin = await _plugin(gateway, url=postgres_url)
    result = await plugin.query_database(
        f"SELECT name, price, at, ref, blob FROM {pg_table} WHERE name = :n", params={"n": "apple"}
    )
    assert result["rows"] == [{
        "name": "apple", "price": "1.50", "at": "2024-01-02T03:04:05+00:00",
        "ref": "12345678-1234-5678-1234-567812345678", "blob": "AQI=",
    }]
    await plugin.shutdown()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO {t} (name) VALUES ('pear')",
        "UPDATE {t} SET price = 0",
        "DELETE FROM {t}",
        "SET TRANSACTION READ WRITE",
        "CREATE TABLE {t}_x (a int)",
    ],
)
async def test_postgres_is_read_only_by_default(
    gateway: AARGateway, postgres_url: str, pg_table: str, statement: str
) -> None:
    plugin = await _plugin(gateway, url=postgres_url)
    with pytest.raises((WriteNotAllowedError, QueryError)) as info:
        await plugin.query_database(statement.format(t=pg_table))
    if not statement.startswith("SET"):
        assert isinstance(info.value, WriteNotAllowedError)
    assert await _pg_count(postgres_url, pg_table) == 1
    rows = await plugin.query_database(f"SELECT price FROM {pg_table}")
    assert rows["rows"] == [{"price": "1.50"}]
    await plugin.shutdown()


async def test_postgres_writes_when_allowed(
    gateway: AARGateway, postgres_url: str, pg_table: str
) -> None:
    plugin = await _plugin(gateway, url=postgres_url, allow_writes=True)
    out = await plugin.query_database(
        f"INSERT INTO {pg_table} (name, price) VALUES (:n, :p) RETURNING id, name",
        params={"n": "pear", "p": 2},
    )
    assert out["rows"][0]["name"] == "pear"
    with pytest.raises(QueryError, match="duplicate key"):
        await plugin.query_database(f"INSERT INTO {pg_table} (name) VALUES ('pear')")
    assert await _pg_count(postgres_url, pg_table) == 2
    await plugin.shutdown()


# -- Redis --------------------------------------------------------------------------------------


@pytest.fixture
async def seeded_redis(redis_url: str) -> AsyncIterator[str]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    await client.set("user:1", "ada")
    await client.set("user:2", "bob")
    await client.hset("profile:1", mapping={"name": "Ada", "lang": "en"})
    await client.rpush("queue", "a", "b", "c")
    await client.sadd("tags", "x", "y")
    await client.aclose()
    yield redis_url


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("GET user:1", "ada"),
        ({"command": "get", "key": "user:2"}, "bob"),
        ("MGET user:1 user:2 user:3", ["ada", "bob", None]),
        ({"command": "MGET", "keys": ["user:2"]}, ["bob"]),
        ("HGETALL profile:1", {"name": "Ada", "lang": "en"}),
        ("HGET profile:1 lang", "en"),
        ("KEYS user:*", ["user:1", "user:2"]),
        ({"command": "KEYS", "pattern": "prof*"}, ["profile:1"]),
        ("EXISTS user:1 nope", 1),
        ("LRANGE queue 0 -1", ["a", "b", "c"]),
        ("SMEMBERS tags", ["x", "y"]),
        ("TYPE profile:1", "hash"),
        ("TTL user:1", -1),
    ],
)
async def test_redis_reads(
    gateway: AARGateway, seeded_redis: str, query: Any, expected: Any
) -> None:
    plugin = await _plugin(gateway, nosql_url=seeded_redis)
    result = await plugin.query_database(query, format_type="nosql")
    assert result["result"] == expected
    await plugin.shutdown()


@pytest.mark.parametrize(
    "query",
    ["SET user:1 eve", {"command": "HSET", "key": "profile:1", "mapping": {"name": "Eve"}},
     "DEL user:1", "EXPIRE user:1 10"],
)
async def test_redis_is_read_only_by_default(
    gateway: AARGateway, seeded_redis: str, query: Any
) -> None:
    plugin = await _plugin(gateway, nosql_url=seeded_redis)
    with pytest.raises(WriteNotAllowedError):
        await plugin.query_database(query, format_type="nosql")
    client = aioredis.from_url(seeded_redis, decode_responses=True)
    assert await client.get("user:1") == "ada"
    assert await client.hget("profile:1", "name") == "Ada"
    assert await client.ttl("user:1") == -1
    await client.aclose()
    await plugin.shutdown()


async def test_redis_writes_when_allowed(gateway: AARGateway, seeded_redis: str) -> None:
    plugin = await _plugin(gateway, url=seeded_redis, allow_writes=True)
    q = plugin.query_database
    assert (await q("SET greeting 'hello world' EX 100", format_type="nosql"))["result"] is True
    assert (await q("GET greeting", format_type="nosql"))["result"] == "hello world"
    assert (await q("HSET h a 1 b 2", format_type="nosql"))["result"] == 2
    assert (await q({"command": "HSET", "key": "h", "mapping": {"c": 3}},
                    format_type="nosql"))["result"] == 1
    assert (await q("DEL user:1 user:2", format_type="nosql"))["result"] == 2
    client = aioredis.from_url(seeded_redis, decode_responses=True)
    assert await client.hgetall("h") == {"a": "1", "b": "2", "c": "3"}
    assert 0 < await client.ttl("greeting") <= 100
    assert await client.exists("user:1") == 0
    await client.aclose()
    await plugin.shutdown()


@pytest.mark.parametrize(
    ("query", "needle"),
    [("FLUSHALL", "unsupported redis command 'FLUSHALL'"), ("CONFIG SET x y", "unsupported"),
     ("HGETALL user:1", "WRONGTYPE"), ("GET", "GET needs 'key'"), ({"key": "x"}, "command"),
     ("GET 'unterminated", "cannot parse")],
)
async def test_redis_bad_commands_are_typed_errors(
    gateway: AARGateway, seeded_redis: str, query: Any, needle: str
) -> None:
    plugin = await _plugin(gateway, nosql_url=seeded_redis, allow_writes=True)
    with pytest.raises(QueryError, match=needle):
        await plugin.query_database(query, format_type="nosql")
    await plugin.shutdown()


async def test_nosql_without_a_url_is_unavailable(gateway: AARGateway) -> None:
    plugin = await _plugin(gateway)
    with pytest.raises(DatabaseUnavailableError, match="nosql_url"):
        await plugin.query_database("GET x", format_type="nosql")
    assert isinstance(plugin.get_adapter("nosql"), NoSQLAdapter)
    await plugin.shutdown()
