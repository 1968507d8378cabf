"""Printing for the commands: stdout/stderr consoles, JSON, and errors as exit codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, TypeVar

import typer
from rich.console import Console

from deep_tree_echo.cli.errors import NotFound
from deep_tree_echo.errors import ConfigurationError, EchoError

T = TypeVar("T")

out = Console()
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error; return the exit (with ``code``) for the caller to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def run(coro: Awaitable[T]) -> T:
    """Run a command's coroutine; an :class:`EchoError` becomes an error message and exit code."""

    async def wrapper() -> T:
        return await coro

    from deep_tree_echo.server.errors import DataDirLockedError

    try:
        return asyncio.run(wrapper())
    except NotFound as exc:
        raise fail(exc.message) from None
    except (ConfigurationError, DataDirLockedError) as exc:
        raise fail(exc.message, 2) from None
    except EchoError as exc:
        raise fail(f"{exc.code}: {exc.message}") from None


def print_json(value: Any) -> None:
    """``value`` as highlighted JSON on stdout."""
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))
