"""Seed pattern 4 — plugins: the DatabaseIntegrationPlugin queries SQLite through Echo.

The query travels as a cognitive input; the database agent runs it (read-only unless
``allow_writes``) and the rows come back through the SQL adapter.

    .venv/bin/python examples/plugin_pattern.py
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.integration.database import DatabaseIntegrationPlugin
from deep_tree_echo.integration.errors import WriteNotAllowedError


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "library.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, year INT)")
            conn.executemany("INSERT INTO books (title, year) VALUES (?, ?)",
                             [("Dune", 1965), ("Neuromancer", 1984), ("Hyperion", 1989)])
        conn.close()

        async with AARGateway({"test_mode": True}) as gateway:
            plugin = DatabaseIntegrationPlugin()
            await plugin.initialize({"database": {"url": f"sqlite:///{path}"}}, gateway)

            result = await plugin.query_database(
                "SELECT title FROM books WHERE year > :year ORDER BY year", params={"year": 1970}
            )
            print("rows:", [row["title"] for row in result["rows"]])

            try:
                await plugin.query_database("DELETE FROM books")
            except WriteNotAllowedError as exc:
                print("refused:", exc.code)

            try:
                await plugin.query_database("books?", format_type="graphql")
            except ValueError as exc:
                print("error:", exc)

            await plugin.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
