"""``memory`` sub-commands: put, get, delete, search, export and import memories."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from deep_tree_echo.cli._backends import Backend, with_backend
from deep_tree_echo.cli._memory_import import ImportReport, import_file, validate_import_file
from deep_tree_echo.cli._options import ApiKeyOpt, ConfigOpt, DataDirOpt, TenantOpt, UrlOpt
from deep_tree_echo.cli._output import err, fail, out, print_json, run
from deep_tree_echo.cli.errors import CLIError

memory_app = typer.Typer(help="Put, get, search, export and import memories.", no_args_is_help=True)


@memory_app.command("put")
def memory_put(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    data: Annotated[str | None, typer.Argument(metavar="[JSON]", help="the data object")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="read the JSON object from a file")
    ] = None,
    ttl: Annotated[float | None, typer.Option(help="seconds until it expires", min=0.001)] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Store a memory (JSON object given inline or with --file)."""
    if (data is None) == (file is None):
        raise fail("give the data either as a JSON argument or with --file", 2)
    try:
        text = data if data is not None else Path(str(file)).read_text(encoding="utf-8")
        value = json.loads(text)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read the data: {exc}", 2) from None
    if not isinstance(value, dict):
        raise fail("memory data must be a JSON object", 2)

    async def go(backend: Backend) -> tuple[dict[str, Any], bool]:
        return await backend.put(memory_id, value, ttl)

    record, created = run(with_backend(url, api_key, data_dir, config, go, tenant=tenant))
    err.print("created" if created else "updated", highlight=False)
    print_json(record)


@memory_app.command("get")
def memory_get(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print one memory (exit code 1 when absent)."""

    async def go(backend: Backend) -> dict[str, Any]:
        return await backend.get(memory_id)

    print_json(run(with_backend(url, api_key, data_dir, config, go, tenant=tenant)))


@memory_app.command("delete")
def memory_delete(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete one memory (exit code 1 when absent)."""

    async def go(backend: Backend) -> None:
        await backend.delete(memory_id)

    run(with_backend(url, api_key, data_dir, config, go, tenant=tenant))
    err.print(f"deleted {memory_id}", highlight=False)


@memory_app.command("search")
def memory_search(
    query: Annotated[str, typer.Argument(help="search text")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="KEY=VALUE on top-level data fields (repeatable; JSON numbers, true, false "
            "and null match those values)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Ranked search with the score breakdown."""
    parsed: dict[str, str] = {}
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--filter expects KEY=VALUE, got {item!r}", 2)
        parsed[key] = value

    async def go(backend: Backend) -> list[dict[str, Any]]:
        return await backend.search(query, limit, parsed)

    results = run(with_backend(url, api_key, data_dir, config, go, tenant=tenant))
    if as_json:
        print_json(results)
        return
    table = Table("id", "score", "relevance", "recency", "importance", "content")
    for r in results:
        b = r.get("breakdown", {})
        content = r.get("data", {}).get("content", r.get("data"))
        table.add_row(
            str(r["id"]),
            f"{r['score']:.3f}",
            f"{b.get('relevance', 0):.3f}",
            f"{b.get('recency', 0):.3f}",
            f"{b.get('importance', 0):.3f}",
            str(content)[:80],
        )
    out.print(table)
    err.print(f"{len(results)} result(s)", highlight=False)


@memory_app.command("export")
def memory_export(
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="JSON-lines file, '-' for stdout \\[default: stdout]"),
    ] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write every live memory as JSON lines of MemoryRecord.to_dict() (id, data, version,
    created/updated times, access counts, expiry): a backup `memory import` restores."""

    if out_file is not None and str(out_file) == "-":
        out_file = None  # "-" is standard output, as everywhere on the command line

    async def go(backend: Backend) -> int:
        count = 0
        target = out_file.with_name(out_file.name + ".tmp") if out_file else None
        fh = target.open("w", encoding="utf-8") if target else sys.stdout
        try:
            async for record in backend.export():
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        finally:
            if target is not None:
                fh.close()
        if target is not None and out_file is not None:
            os.replace(target, out_file)  # never leave a half-written export behind
        else:
            fh.flush()
        return count

    count = run(with_backend(url, api_key, data_dir, config, go, tenant=tenant))
    err.print(f"exported {count} memories" + (f" to {out_file}" if out_file else ""))


@memory_app.command("import")
def memory_import(
    file: Annotated[Path, typer.Argument(metavar="FILE.jsonl", exists=True, dir_okay=False)],
    strict: Annotated[
        bool, typer.Option("--strict", help="import nothing if any line is invalid")
    ] = False,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Import JSON lines (MemoryRecord.to_dict() or {"id", "data"}).

    Lines with a version (exports) are restored as they were, never over a newer edit;
    lines without one are stored as new writes.

    All lines are validated first; bad lines are reported with their line numbers and
    skipped (or, with --strict, nothing is imported). Exit code 1 when any line failed.
    """
    report = ImportReport()
    try:
        validate_import_file(file, report)
    except CLIError as exc:
        raise fail(exc.message, 2) from None
    for line_no, message in report.errors:
        err.print(f"{file}:{line_no}: {message}", highlight=False, markup=False)
    if strict and report.errors:
        raise fail(f"{len(report.errors)} invalid line(s); nothing imported (--strict)")

    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=report.valid < 1000 or not err.is_terminal,
    )
    invalid = len(report.errors)

    async def go(backend: Backend) -> None:
        with progress:
            task = progress.add_task("import", total=report.valid)
            await import_file(backend, file, report, advance=lambda n: progress.advance(task, n))

    run(with_backend(url, api_key, data_dir, config, go, tenant=tenant))
    for line_no, message in report.errors[invalid:]:
        err.print(f"{file}:{line_no}: {message}", highlight=False, markup=False)
    err.print(
        f"{report.created} created, {report.updated} updated, {report.restored} restored, "
        f"{report.kept} kept (same or newer here), {report.skipped} skipped "
        f"(deleted/expired), {invalid} invalid line(s), {report.failed} failed write(s)",
        highlight=False,
    )
    if report.errors:
        raise typer.Exit(1)
