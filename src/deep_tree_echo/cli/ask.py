"""``ask``: one text input through the gateway, the answer printed."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from deep_tree_echo.cli._backends import Backend, with_backend
from deep_tree_echo.cli._options import ApiKeyOpt, ConfigOpt, DataDirOpt, TenantOpt, UrlOpt
from deep_tree_echo.cli._output import fail, out, print_json, run


def ask(
    text: Annotated[str, typer.Argument(help="what to say")],
    session: Annotated[str | None, typer.Option("--session", help="session id")] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole response")] = False,
) -> None:
    """Send one text input through the gateway and print the answer."""

    async def go(backend: Backend) -> dict[str, Any]:
        return await backend.ask(text, session)

    result = run(with_backend(url, api_key, data_dir, config, go, tenant=tenant))
    if as_json:
        print_json(result)
    elif not result.get("success"):
        error = result.get("error") or {}
        raise fail(f"{error.get('code', 'error')}: {error.get('message', result)}")
    else:
        data = result.get("data") or {}
        out.print(str(data.get("text", "")), highlight=False, markup=False)
    if not result.get("success"):
        raise typer.Exit(1)
