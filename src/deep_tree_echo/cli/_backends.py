"""Where a command runs: in this process on the data dir, or against a server over HTTP.

Both backends return the same shapes (the HTTP API's), so the commands need not care which.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from deep_tree_echo.aar_core.memory.manager import parse_filter_value
from deep_tree_echo.aar_core.memory.record import parse_record
from deep_tree_echo.cli._settings import build_settings
from deep_tree_echo.cli.errors import CLIError, NotFound
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.tenants import DEFAULT_TENANT, validate_tenant

T = TypeVar("T")


class Backend(Protocol):
    #: Writes an import keeps in flight at once.
    write_concurrency: int

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

    async def restore(self, record: dict[str, Any]) -> bool: ...

    async def aclose(self) -> None: ...


def _external_request(text: str, session_id: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"message_type": "text", "data": text, "source": "cli"}
    if session_id:
        request["session_id"] = session_id
    return request


class LocalBackend:
    """An :class:`AARGateway` in this process, on ``settings.data_dir``, acting on ``tenant``."""

    #: SQLite commits the writes queued meanwhile together: more in flight, fewer commits
    #: (`memory import` of 20k memories: 15.7-16.9 s at 16, 11.0-12.3 s at 256).
    write_concurrency = 256

    def __init__(self, settings: EchoSettings, tenant: str | None = None) -> None:
        # imported here, not at start: --help and --url commands never need the core or FastAPI
        from deep_tree_echo.aar_core.gateway import AARGateway
        from deep_tree_echo.integration.gateway import APIIntegrationGateway
        from deep_tree_echo.server.datadir_lock import DataDirLock

        self.gateway = AARGateway(settings)
        self.api = APIIntegrationGateway(settings, aar_gateway=self.gateway)
        self.tenant = validate_tenant(tenant or DEFAULT_TENANT)
        self.memory = self.gateway.memory_for(self.tenant)
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
        return await self.api.process_external_request(
            _external_request(text, session_id), tenant=self.tenant
        )

    async def put(
        self, memory_id: str, data: dict[str, Any], ttl: float | None = None
    ) -> tuple[dict[str, Any], bool]:
        record, created = await self.memory.upsert(memory_id, data, ttl=ttl)
        return record.to_dict(), created

    async def get(self, memory_id: str) -> dict[str, Any]:
        record = await self.memory.get_record(memory_id)
        if record is None:
            raise NotFound(f"memory {memory_id!r} not found")
        return record.to_dict()

    async def delete(self, memory_id: str) -> None:
        if not await self.memory.delete_memory(memory_id):
            raise NotFound(f"memory {memory_id!r} not found")

    async def search(self, query: str, limit: int, filters: dict[str, str]) -> list[dict[str, Any]]:
        parsed = {k: parse_filter_value(v) for k, v in filters.items()}
        results = await self.memory.search(query, limit, **parsed)
        return [r.to_dict() for r in results]

    async def export(self) -> AsyncIterator[dict[str, Any]]:
        async for record in self.memory.records():
            yield record.to_dict()

    async def restore(self, record: dict[str, Any]) -> bool:
        """Apply an exported record with its version (last writer wins); True when applied."""
        return await self.memory.apply_remote(parse_record(record))


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

    #: Concurrent requests: a server's per-client rate limit counts each one.
    write_concurrency = 16

    def __init__(
        self, url: str, api_key: str | None = None, timeout: float = 30.0,
        tenant: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if tenant:
            headers["X-Echo-Tenant"] = validate_tenant(tenant)
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

    async def restore(self, record: dict[str, Any]) -> bool:
        """``PUT /v1/restore/memories/{id}``: the server applies it last-writer-wins."""
        memory_id = quote(str(record["id"]), safe="")
        response = await self._request("PUT", f"/v1/restore/memories/{memory_id}", json=record)
        return bool(response.json().get("applied"))

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


async def open_backend(
    url: str | None, api_key: str | None, data_dir: Path | None, config: Path | None,
    *, tenant: str | None = None,
) -> Backend:
    """The HTTP backend for ``url``, else the local one on ``data_dir``, opened."""
    if url:
        return await HttpBackend(url, api_key, tenant=tenant).open()
    return await LocalBackend(build_settings(config, data_dir=data_dir), tenant).open()


async def with_backend(
    url: str | None,
    api_key: str | None,
    data_dir: Path | None,
    config: Path | None,
    fn: Callable[[Backend], Awaitable[T]],
    *,
    tenant: str | None = None,
) -> T:
    """``fn`` on an opened backend (acting on ``tenant``), closed afterwards."""
    backend = await open_backend(url, api_key, data_dir, config, tenant=tenant)
    try:
        return await fn(backend)
    finally:
        await backend.aclose()
