"""Adapters between a caller's query and the cognitive input a database agent answers.

``cognitive_input`` builds the ``sql_query``/``nosql_query`` input; ``from_result`` turns the
agent's answer back into rows (or the Redis result). The seed's ``to_echo_format`` /
``from_echo_format`` pair is the same through the dict API.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, Literal

from deep_tree_echo.aar_core.cognitive import CognitiveInput, CognitiveResult, build_input
from deep_tree_echo.integration.adapters import DataAdapter
from deep_tree_echo.integration.database._agent_input import NOSQL_QUERY, SQL_QUERY
from deep_tree_echo.integration.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    QueryError,
)

__all__ = ["NoSQLAdapter", "QueryAdapter", "SQLAdapter"]

def _query_input(query_data: Any, query_type: str, fmt: str) -> CognitiveInput:
    if isinstance(query_data, Mapping):
        query, params = query_data.get("query"), query_data.get("params")
    else:
        query, params = query_data, None
    if query is None or (isinstance(query, str) and not query.strip()):
        raise QueryError("'query' is required")
    content: dict[str, Any] = {"query": query}
    if params is not None:
        content["params"] = params
    return build_input(
        content, type=query_type, context={"format": fmt, "external_source": "database"}
    )


class QueryAdapter(DataAdapter):
    """A query in, as a typed :class:`CognitiveInput`; the agent's answer out.

    The plugin and :class:`DatabaseGateway` use the typed pair (:meth:`cognitive_input`,
    :meth:`from_result`), so a failed query raises the agent's own error. The seed's dict pair
    (``to_echo_format``/``from_echo_format``) is kept for code written against the seed.
    """

    #: The input type the query travels as, and the ``format`` it names.
    query_type: str = SQL_QUERY
    format: str = "sql"

    def cognitive_input(self, query_data: Any) -> CognitiveInput:
        """The input of ``query_data``: ``{"query", "params"}`` or the bare query."""
        return _query_input(query_data, self.query_type, self.format)

    def to_echo_format(self, query_data: Any) -> dict[str, Any]:
        return self.cognitive_input(query_data).as_request(context_key="metadata")

    def from_result(self, result: CognitiveResult) -> dict[str, Any]:
        """The caller's answer from the agent's result."""
        return self.from_response(result.cognitive_response())

    def from_echo_format(self, echo_data: dict[str, Any]) -> dict[str, Any]:
        response = echo_data.get("cognitive_response")
        if echo_data.get("status") != "success":
            error = echo_data.get("error")
            error = error if isinstance(error, Mapping) else {}
            raise DatabaseError(
                str(error.get("message") or "the query failed"),
                code=str(error.get("code") or DatabaseError.code),
                http_status=int(error.get("http_status") or DatabaseError.http_status),
            )
        return self.from_response(response if isinstance(response, Mapping) else {})

    @abstractmethod
    def from_response(self, response: Mapping[str, Any]) -> dict[str, Any]:
        """The caller's answer from a ``cognitive_response``."""


class SQLAdapter(QueryAdapter):
    """SQL queries in; rows out, as dicts by column (``row_format="dict"``) or as lists."""

    query_type = SQL_QUERY
    format = "sql"

    def __init__(self, *, row_format: Literal["dict", "list"] = "dict") -> None:
        self.row_format = row_format

    def from_response(self, response: Mapping[str, Any]) -> dict[str, Any]:
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


class NoSQLAdapter(QueryAdapter):
    """Redis commands in (string or object); ``{"command", "result"}`` out."""

    query_type = NOSQL_QUERY
    format = "nosql"

    def from_response(self, response: Mapping[str, Any]) -> dict[str, Any]:
        if "command" not in response:
            raise DatabaseUnavailableError(
                "no NoSQL agent answered the query; is a DatabaseGateway initialized on "
                "this gateway?"
            )
        return {"command": response["command"], "result": response.get("result")}
