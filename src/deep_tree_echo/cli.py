"""The ``deep-tree-echo`` (alias ``dte``) command: serve, ask, memory put/get/search/export/import.

Every command works in-process on ``--data-dir`` (SQLite) or, with ``--url``, against a running
server over HTTP; both paths return the same shapes (the HTTP API's). Settings come from CLI
flags, then ``DTE_*`` environment variables, then the ``--config`` TOML file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from deep_tree_echo import __version__
from deep_tree_echo.aar_core.memory.manager import parse_filter_value, validate_memory_id
from deep_tree_echo.config import EchoSettings, read_toml_table
from deep_tree_echo.errors import ConfigurationError, EchoError

DEFAULT_DATA_DIR = Path(".echo")
T = TypeVar("T")

out = Console()
err = Console(stderr=True, soft_wrap=True)

# -- settings -----------------------------------------------------------------------------------


def build_settings(config: Path | None = None, **flags: Any) -> EchoSettings:
    """Settings with precedence CLI flags > ``DTE_*`` environment > config file > defaults.

    Flags that are None are "not given". ``data_dir`` defaults to ``.echo``.
    """
    file_values = read_toml_table(config) if config is not None else {}
    try:
        from_env = EchoSettings.coerce(None)  # reads DTE_* variables
    except ValueError as exc:
        raise ConfigurationError(f"invalid DTE_* environment setting: {exc}") from exc
    env_values = from_env.model_dump(include=set(from_env.model_fields_set))
    values: dict[str, Any] = {k: v for k, v in file_values.items() if k not in env_values}
    values.update(env_values)
    values.update({k: v for k, v in flags.items() if v is not None})
    values.setdefault("data_dir", DEFAULT_DATA_DIR)
    try:
        return EchoSettings(**values)
    except ValueError as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from exc


# -- backends ---------------------------------------------------------------------------------


class CLIError(EchoError):
    """A CLI operation failed; the message is shown to the user."""

    code = "cli_error"


class NotFound(CLIError):
    code = "not_found"


class Backend(Protocol):
    async def ask(self, text: str, session_id: str | None) -> dict[str, Any]: ...

    async def put(
        self, memory_id: str, data: dict[str, Any], ttl: float | None = None
    ) -> tuple[dict[str, Any], bool]: ...

    async def get(self, memory_id: str) -> dict[str, Any]: ...

    async def delete(self, memory_id: str) -> None: ...

    async def search(
        self, query: str, limit: int, filters: dict[str, str]
    ) -> list[dict[str, Any]]: ...

    def export(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


def _external_request(text: str, session_id: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"message_type": "text", "data": text, "source": "cli"}
    if session_id:
        request["session_id"] = session_id
    return request


class LocalBackend:
    """An :class:`AARGateway` in this process, on ``settings.data_dir``."""

    def __init__(self, settings: EchoSettings) -> None:
        # imported here, not at start: --help and --url commands never need the core or FastAPI
        from deep_tree_echo.aar_core.gateway import AARGateway
        from deep_tree_echo.integration.gateway import APIIntegrationGateway
        from deep_tree_echo.server.datadir_lock import DataDirLock

        self.gateway = AARGateway(settings)
        self.api = APIIntegrationGateway(settings, aar_gateway=self.gateway)
        # shared: CLI commands may overlap; a running server (exclusive) makes open() fail
        self.lock = (
            DataDirLock(settings.data_dir, exclusive=False)
            if settings.store_kind == "sqlite" and settings.data_dir is not None
            else None
        )

    async def open(self) -> LocalBackend:
        """Lock the data dir (DataDirLockedError while a server owns it), open the core."""
        if self.lock is not None:
            self.lock.acquire()
        try:
            await self.gateway.initialize()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        try:
            await self.gateway.cleanup()
        finally:
            if self.lock is not None:
                self.lock.release()

    async def ask(self, text: str, session_id: str | None) -> dict[str, Any]:
        return await self.api.process_external_request(_external_request(text, session_id))

    async def put(
        self, memory_id: str, data: dict[str, Any], ttl: float | None = None
    ) -> tuple[dict[str, Any], bool]:
        record, created = await self.gateway.memory.upsert(memory_id, data, ttl=ttl)
        return record.to_dict(), created

    async def get(self, memory_id: str) -> dict[str, Any]:
        record = await self.gateway.memory.get_record(memory_id)
        if record is None:
            raise NotFound(f"memory {memory_id!r} not found")
        return record.to_dict()

    async def delete(self, memory_id: str) -> None:
        if not await self.gateway.memory.delete_memory(memory_id):
            raise NotFound(f"memory {memory_id!r} not found")

    async def search(self, query: str, limit: int, filters: dict[str, str]) -> list[dict[str, Any]]:
        parsed = {k: parse_filter_value(v) for k, v in filters.items()}
        results = await self.gateway.memory.search(query, limit, **parsed)
        return [r.to_dict() for r in results]

    async def export(self) -> AsyncIterator[dict[str, Any]]:
        async for record in self.gateway.memory.records():
            yield record.to_dict()


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:200] or response.reason_phrase
    cls = NotFound if response.status_code == 404 else CLIError
    raise cls(f"HTTP {response.status_code} {code}: {message}", code=code)


class HttpBackend:
    """A running ``deep-tree-echo serve`` at ``url``."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    async def open(self) -> HttpBackend:
        return self

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CLIError(f"cannot reach {self.client.base_url}: {exc}") from exc
        _raise_for(response)
        return response

    async def ask(self, text: str, session_id: str | None) -> dict[str, Any]:
        try:
            response = await self.client.post(
                "/v1/process", json=_external_request(text, session_id)
            )
        except httpx.HTTPError as exc:
            raise CLIError(f"cannot reach {self.client.base_url}: {exc}") from exc
        try:
            result = response.json()
        except ValueError:
            result = None
        # core failures keep the external response shape (with a 4xx/5xx status)
        if isinstance(result, dict) and "success" in result:
            return result
        _raise_for(response)
        raise CLIError(f"unexpected response from /v1/process: {response.text[:200]}")

    async def put(
        self, memory_id: str, data: dict[str, Any], ttl: float | None = None
    ) -> tuple[dict[str, Any], bool]:
        params = {"ttl": ttl} if ttl is not None else None
        response = await self._request(
            "PUT", f"/v1/memories/{quote(memory_id, safe='')}", json=data, params=params
        )
        body: dict[str, Any] = response.json()
        return body, response.status_code == 201

    async def get(self, memory_id: str) -> dict[str, Any]:
        response = await self._request("GET", f"/v1/memories/{quote(memory_id, safe='')}")
        body: dict[str, Any] = response.json()
        return body

    async def delete(self, memory_id: str) -> None:
        await self._request("DELETE", f"/v1/memories/{quote(memory_id, safe='')}")

    async def search(self, query: str, limit: int, filters: dict[str, str]) -> list[dict[str, Any]]:
        params = {**filters, "query": query, "limit": limit}
        response = await self._request("GET", "/v1/memories", params=params)
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    async def export(self) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self.client.stream("GET", "/v1/export/memories") as response:
                if not response.is_success:
                    await response.aread()
                    _raise_for(response)
                async for line in response.aiter_lines():
                    if line.strip():
                        record: dict[str, Any] = json.loads(line)
                        yield record
        except httpx.HTTPError as exc:
            raise CLIError(f"export from {self.client.base_url} failed: {exc}") from exc


# -- import validation --------------------------------------------------------------------------


@dataclass(slots=True)
class ImportLine:
    """One valid line of an import file: where it was and what to store."""

    line_no: int
    id: str
    data: dict[str, Any]
    expires_at: float | None = None
    deleted: bool = False


@dataclass(slots=True)
class ImportReport:
    valid: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0  # tombstones and expired records
    failed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def parse_import_line(line_no: int, text: str) -> ImportLine:
    """Validate one JSON line (``MemoryRecord.to_dict()`` or ``{"id", "data"}``)."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    memory_id = obj.get("id")
    try:
        validate_memory_id(memory_id)
    except EchoError as exc:
        raise ValueError(exc.message) from exc
    assert isinstance(memory_id, str)
    data = obj.get("data")
    if not isinstance(data, dict):
        raise ValueError("'data' must be a JSON object")
    expires_at = obj.get("expires_at")
    if expires_at is not None and (
        isinstance(expires_at, bool) or not isinstance(expires_at, int | float)
    ):
        raise ValueError("'expires_at' must be a number or null")
    deleted = obj.get("deleted", False)
    if not isinstance(deleted, bool):
        raise ValueError("'deleted' must be true or false")
    return ImportLine(line_no, memory_id, data, expires_at, deleted)


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, line


def validate_import_file(path: Path, report: ImportReport) -> None:
    """First pass: count valid lines and record every bad one with its line number."""
    try:
        for line_no, text in _iter_lines(path):
            try:
                parse_import_line(line_no, text)
            except ValueError as exc:
                report.errors.append((line_no, str(exc)))
            else:
                report.valid += 1
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc}") from exc


async def import_file(
    backend: Backend,
    path: Path,
    report: ImportReport,
    *,
    concurrency: int = 16,
    advance: Callable[[int], None] = lambda n: None,
) -> None:
    """Second pass: store every valid line; a failed write is reported, the rest continue.

    Up to ``concurrency`` writes run at once; a batch never holds the same id twice, so a
    later line for an id always wins over an earlier one.
    """
    now = time.time()
    batch: list[ImportLine] = []
    ids: set[str] = set()

    async def store(item: ImportLine) -> None:
        ttl = None if item.expires_at is None else item.expires_at - now
        try:
            _, created = await backend.put(item.id, item.data, ttl)
        except EchoError as exc:
            report.failed += 1
            report.errors.append((item.line_no, exc.message))
        else:
            if created:
                report.created += 1
            else:
                report.updated += 1

    async def flush() -> None:
        await asyncio.gather(*(store(item) for item in batch))
        advance(len(batch))
        batch.clear()
        ids.clear()

    for line_no, text in _iter_lines(path):
        try:
            item = parse_import_line(line_no, text)
        except ValueError:
            continue  # reported by the validation pass
        if item.deleted or (item.expires_at is not None and item.expires_at <= now):
            report.skipped += 1
            advance(1)
            continue
        if item.id in ids or len(batch) >= concurrency:
            await flush()
        batch.append(item)
        ids.add(item.id)
    await flush()


# -- commands -----------------------------------------------------------------------------------

app = typer.Typer(
    name="deep-tree-echo",
    help="Deep Tree Echo: the cognitive gateway service and its memory tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
memory_app = typer.Typer(help="Put, get, search, export and import memories.", no_args_is_help=True)
app.add_typer(memory_app, name="memory")

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


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    from deep_tree_echo.server.errors import DataDirLockedError

    try:
        return asyncio.run(wrapper())
    except NotFound as exc:
        raise _fail(exc.message) from None
    except (ConfigurationError, DataDirLockedError) as exc:
        raise _fail(exc.message, 2) from None
    except EchoError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from None


async def _open_backend(
    url: str | None, api_key: str | None, data_dir: Path | None, config: Path | None
) -> Backend:
    if url:
        return await HttpBackend(url, api_key).open()
    return await LocalBackend(build_settings(config, data_dir=data_dir)).open()


async def _with_backend(
    url: str | None,
    api_key: str | None,
    data_dir: Path | None,
    config: Path | None,
    fn: Callable[[Backend], Awaitable[T]],
) -> T:
    backend = await _open_backend(url, api_key, data_dir, config)
    try:
        return await fn(backend)
    finally:
        await backend.aclose()


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address \\[default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port \\[default: 8000]")] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level")] = None,
) -> None:
    """Run the HTTP/WebSocket server (uvicorn)."""
    import uvicorn

    from deep_tree_echo.server.app import create_app
    from deep_tree_echo.server.datadir_lock import DataDirLock, server_url
    from deep_tree_echo.server.errors import DataDirLockedError

    try:
        settings = build_settings(
            config, host=host, port=port, data_dir=data_dir, log_level=log_level
        )
    except ConfigurationError as exc:
        raise _fail(exc.message, 2) from None
    level = settings.log_level.upper()
    logging.basicConfig(level=level, format="%(levelname)-9s %(name)s: %(message)s")
    lock: DataDirLock | None = None
    if settings.store_kind == "sqlite" and settings.data_dir is not None:
        # this server owns the data dir: CLI commands must go through it (--url)
        lock = DataDirLock(
            settings.data_dir, exclusive=True, url=server_url(settings.host, settings.port)
        )
        try:
            lock.acquire()
        except DataDirLockedError as exc:
            raise _fail(exc.message, 2) from None
    try:
        err.print(
            f"deep-tree-echo {__version__}: store={settings.store_kind}"
            + (f" in {settings.data_dir}" if settings.store_kind == "sqlite" else "")
            + f", engine={settings.engine}, auth={'on' if settings.api_keys else 'off'}",
            highlight=False,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level.lower(),
                ws_ping_interval=settings.ws_ping_interval,
                ws_ping_timeout=settings.ws_ping_interval,
                ws_max_size=settings.max_body_bytes,
                lifespan="on",
                server_header=False,
                timeout_graceful_shutdown=10,
            )
        )
        server.run()
    finally:
        if lock is not None:
            lock.release()
    if not server.started:
        raise typer.Exit(1)


@app.command()
def ask(
    text: Annotated[str, typer.Argument(help="what to say")],
    session: Annotated[str | None, typer.Option("--session", help="session id")] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole response")] = False,
) -> None:
    """Send one text input through the gateway and print the answer."""

    async def go(backend: Backend) -> dict[str, Any]:
        return await backend.ask(text, session)

    result = _run(_with_backend(url, api_key, data_dir, config, go))
    if as_json:
        _print_json(result)
    elif not result.get("success"):
        error = result.get("error") or {}
        raise _fail(f"{error.get('code', 'error')}: {error.get('message', result)}")
    else:
        data = result.get("data") or {}
        out.print(str(data.get("text", "")), highlight=False, markup=False)
    if not result.get("success"):
        raise typer.Exit(1)


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
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Store a memory (JSON object given inline or with --file)."""
    if (data is None) == (file is None):
        raise _fail("give the data either as a JSON argument or with --file", 2)
    try:
        text = data if data is not None else Path(str(file)).read_text(encoding="utf-8")
        value = json.loads(text)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read the data: {exc}", 2) from None
    if not isinstance(value, dict):
        raise _fail("memory data must be a JSON object", 2)

    async def go(backend: Backend) -> tuple[dict[str, Any], bool]:
        return await backend.put(memory_id, value, ttl)

    record, created = _run(_with_backend(url, api_key, data_dir, config, go))
    err.print("created" if created else "updated", highlight=False)
    _print_json(record)


@memory_app.command("get")
def memory_get(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print one memory (exit code 1 when absent)."""

    async def go(backend: Backend) -> dict[str, Any]:
        return await backend.get(memory_id)

    _print_json(_run(_with_backend(url, api_key, data_dir, config, go)))


@memory_app.command("delete")
def memory_delete(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete one memory (exit code 1 when absent)."""

    async def go(backend: Backend) -> None:
        await backend.delete(memory_id)

    _run(_with_backend(url, api_key, data_dir, config, go))
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
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Ranked search with the score breakdown."""
    parsed: dict[str, str] = {}
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--filter expects KEY=VALUE, got {item!r}", 2)
        parsed[key] = value

    async def go(backend: Backend) -> list[dict[str, Any]]:
        return await backend.search(query, limit, parsed)

    results = _run(_with_backend(url, api_key, data_dir, config, go))
    if as_json:
        _print_json(results)
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
        Path | None, typer.Option("--out", "-o", help="JSON-lines file \\[default: stdout]")
    ] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write every live memory as JSON lines of MemoryRecord.to_dict()."""

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

    count = _run(_with_backend(url, api_key, data_dir, config, go))
    err.print(f"exported {count} memories" + (f" to {out_file}" if out_file else ""))


@memory_app.command("import")
def memory_import(
    file: Annotated[Path, typer.Argument(metavar="FILE.jsonl", exists=True, dir_okay=False)],
    strict: Annotated[
        bool, typer.Option("--strict", help="import nothing if any line is invalid")
    ] = False,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Import JSON lines (MemoryRecord.to_dict() or {"id", "data"}).

    All lines are validated first; bad lines are reported with their line numbers and
    skipped (or, with --strict, nothing is imported). Exit code 1 when any line failed.
    """
    report = ImportReport()
    try:
        validate_import_file(file, report)
    except CLIError as exc:
        raise _fail(exc.message, 2) from None
    for line_no, message in report.errors:
        err.print(f"{file}:{line_no}: {message}", highlight=False, markup=False)
    if strict and report.errors:
        raise _fail(f"{len(report.errors)} invalid line(s); nothing imported (--strict)")

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

    _run(_with_backend(url, api_key, data_dir, config, go))
    for line_no, message in report.errors[invalid:]:
        err.print(f"{file}:{line_no}: {message}", highlight=False, markup=False)
    err.print(
        f"{report.created} created, {report.updated} updated, {report.skipped} skipped "
        f"(deleted/expired), {invalid} invalid line(s), {report.failed} failed write(s)",
        highlight=False,
    )
    if report.errors:
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"deep-tree-echo {__version__}", highlight=False)


def main() -> None:
    """Console-script entry point (``deep-tree-echo`` and ``dte``)."""
    app(prog_name="deep-tree-echo")
