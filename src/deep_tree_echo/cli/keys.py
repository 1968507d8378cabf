"""``keys`` sub-commands: create, list and revoke API keys; the keys file keeps only their
hashes, and running servers follow it (reloaded within a second of a change)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deep_tree_echo.cli._output import err, fail, out
from deep_tree_echo.errors import ConfigurationError, InvalidInputError
from deep_tree_echo.server.principals import (
    Role,
    append_key,
    generate_key,
    load_keys_file,
    revoke_key,
)

keys_app = typer.Typer(help="Create, list and revoke API keys (tenant, role) in the keys file.",
                       no_args_is_help=True)

KeysFileOpt = Annotated[
    Path | None,
    typer.Option("--file", envvar="DTE_API_KEYS_FILE",
                 help="the TOML keys file the server reads (DTE_API_KEYS_FILE)"),
]


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="the tenant the key acts for")],
    role: Annotated[str, typer.Option(help="user (its own tenant) or admin (any tenant)")] = "user",
    rate_limit: Annotated[
        int | None, typer.Option(help="this key's own requests per window", min=1)
    ] = None,
    rate_window: Annotated[float, typer.Option(help="seconds of that window", min=0.001)] = 60.0,
    file: KeysFileOpt = None,
) -> None:
    """Create a key: print it once (stdout) and add its SHA-256 hash to the keys file."""
    if file is None:
        raise fail("name the keys file with --file or DTE_API_KEYS_FILE", 2)
    if role not in ("user", "admin"):
        raise fail("--role must be 'user' or 'admin'", 2)
    chosen: Role = "admin" if role == "admin" else "user"
    key = generate_key()
    limit = None if rate_limit is None else (rate_limit, rate_window)
    try:
        principal = append_key(file, key, tenant=tenant, role=chosen, rate_limit=limit)
    except (ConfigurationError, InvalidInputError) as exc:
        raise fail(exc.message, 2) from None
    except OSError as exc:
        raise fail(f"cannot write {file}: {exc}", 1) from None
    out.print(key, highlight=False, soft_wrap=True)
    err.print(
        f"key {principal.key_id} ({principal.role} of tenant {principal.tenant!r}) added to "
        f"{file}; it is shown only now. Running servers accept it within a second.",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(file: KeysFileOpt = None) -> None:
    """List the keys of the keys file: id, tenant, role, own rate limit (never a key)."""
    if file is None:
        raise fail("name the keys file with --file or DTE_API_KEYS_FILE", 2)
    try:
        entries = load_keys_file(file)
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None
    for entry in entries:
        p = entry.principal
        limit = "" if p.rate_limit is None else f" {p.rate_limit[0]}/{p.rate_limit[1]:g}s"
        out.print(f"{p.key_id} {p.tenant} {p.role}{limit}", highlight=False, soft_wrap=True)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (keys list; 16 hex digits)")],
    file: KeysFileOpt = None,
) -> None:
    """Remove a key from the keys file; running servers refuse it within a second."""
    if file is None:
        raise fail("name the keys file with --file or DTE_API_KEYS_FILE", 2)
    try:
        principal = revoke_key(file, key_id)
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None
    except OSError as exc:
        raise fail(f"cannot write {file}: {exc}", 1) from None
    err.print(
        f"key {principal.key_id} ({principal.role} of tenant {principal.tenant!r}) removed "
        f"from {file}. Running servers refuse it within a second.",
        highlight=False,
    )
