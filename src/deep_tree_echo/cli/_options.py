"""Typer option types shared by the commands: where the data is and how to reach a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data directory (SQLite store) \\[default: .echo]"),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (top level or \\[echo])")
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="DTE_URL", help="talk to a running server instead"),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="DTE_API_KEY", help="API key for --url (Bearer)"),
]
TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant", envvar="DTE_TENANT",
        help="the tenant to act on: in-process its namespace; with --url sent as X-Echo-Tenant "
        "(admin keys) \\[default: the key's own, else default]",
    ),
]
