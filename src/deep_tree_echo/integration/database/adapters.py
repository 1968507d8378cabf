"""Adapters between a caller's query and the cognitive input a database agent answers.

``to_echo_format`` builds the ``sql_query``/``nosql_query`` input; ``from_echo_format`` turns the
``cognitive_response`` back into rows (or the Redis result), or raises a typed
:class:`DatabaseError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from deep_tree_echo.integration.adapters import DataAdapter
from deep_tree_echo.integration.database._agent_input import NOSQL_QUERY, SQL_QUERY
from deep_tree_echo.integration.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    QueryError,
    WriteNotAllowedError,
)

__all__ = ["NoSQLAdapter", "SQLAdapter"]

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
