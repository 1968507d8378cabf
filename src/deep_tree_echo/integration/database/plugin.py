"""The database plugin: ``await plugin.query_database(...)`` through a :class:`DatabaseGateway`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deep_tree_echo.integration.database.adapters import NoSQLAdapter, QueryAdapter, SQLAdapter
from deep_tree_echo.integration.database.gateway import DatabaseGateway
from deep_tree_echo.integration.errors import DatabaseUnavailableError, UnknownFormatError
from deep_tree_echo.integration.plugins import IntegrationPlugin

__all__ = ["DatabaseIntegrationPlugin"]


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

        if isinstance(adapter, QueryAdapter):  # typed: a failed query raises the agent's error
            inp = adapter.cognitive_input({"query": query, "params": params})
            return adapter.from_result(await self.aar_gateway.answer(inp))

        # another registered adapter: the seed's dict API
        echo_query = adapter.to_echo_format({"query": query, "params": params})
        result = await self.aar_gateway.process_cognitive_input(echo_query)
        return adapter.from_echo_format(result)
