"""Placement and replication of memories across Echo nodes over the HTTP memory API.

Placement is rendezvous (highest-random-weight) hashing: every node gets a score
``blake2b(node, memory_id)`` and the preference list is the nodes by descending score. It is
stable (the same on every node, no coordination) and adding or removing a node only moves the
memories whose top choices involved that node.

Two protocols: ``replicate_to_node``/``retrieve_from_node`` copy only the data through the
public ``/v1/memories`` API (each replica stamps its own version); ``replicate_record``/
``fetch_record`` speak ``/v1/replica/records``, which carries whole records with their version,
so replicas agree on versions and last-writer-wins, read repair and tombstones work.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from deep_tree_echo.aar_core.errors import InvalidMemoryError, ReplicationError
from deep_tree_echo.aar_core.memory.record import MemoryRecord, parse_record

if TYPE_CHECKING:  # httpx is imported on first use: it costs ~0.1 s at start-up
    import httpx


def _weight(node: str, memory_id: str) -> int:
    digest = hashlib.blake2b(
        memory_id.encode("utf-8"), digest_size=8, key=node.encode("utf-8")[:64]
    ).digest()
    return int.from_bytes(digest, "big")


class DistributedMemoryCoordinator:
    """Chooses replica nodes for a memory and talks to peers' ``/v1/memories`` endpoints.

    ``nodes`` are base URLs such as ``"http://127.0.0.1:8001"``; ``local_node_id`` is the URL
    of this node among them (callers skip it when replicating). ``api_key`` is sent to the
    public memory API, ``cluster_key`` (``DTE_CLUSTER_KEY`` of the peers) to the replica API,
    which accepts nothing else.
    """

    def __init__(
        self,
        nodes: list[str],
        *,
        local_node_id: str | None = None,
        api_key: str | None = None,
        cluster_key: str | None = None,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        seen: dict[str, None] = {}
        for node in nodes:
            if not isinstance(node, str) or not node.strip():
                raise ValueError(f"node must be a non-empty base URL, got {node!r}")
            seen.setdefault(node.strip().rstrip("/"), None)
        self.nodes: list[str] = list(seen)
        self.local_node_id = local_node_id.rstrip("/") if local_node_id else local_node_id
        self.api_key = api_key
        self.cluster_key = cluster_key
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None

    # -- placement ---------------------------------------------------------------------------

    def get_nodes_for_memory(self, memory_id: str) -> list[str]:
        """Every node, in this memory's preference order (rendezvous hashing)."""
        return sorted(self.nodes, key=lambda node: (_weight(node, memory_id), node), reverse=True)

    def select_nodes(self, memory_id: str, n: int) -> list[str]:
        """The ``n`` preferred (distinct) nodes for ``memory_id``; fewer if there are fewer."""
        if n <= 0:
            return []
        return self.get_nodes_for_memory(memory_id)[:n]

    # -- transport ---------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    def _headers(self, *, replica: bool = False, tenant: str | None = None) -> dict[str, str]:
        key = self.cluster_key if replica else self.api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if tenant is not None:  # the peer files the record under this tenant (X-Echo-Tenant)
            headers["X-Echo-Tenant"] = tenant
        return headers

    @staticmethod
    def _url(node: str, memory_id: str) -> str:
        return f"{node.rstrip('/')}/v1/memories/{quote(memory_id, safe='')}"

    @staticmethod
    def _record_url(node: str, memory_id: str) -> str:
        return f"{node.rstrip('/')}/v1/replica/records/{quote(memory_id, safe='')}"

    async def _request(
        self, method: str, node: str, memory_id: str, *, replica: bool = False,
        tenant: str | None = None, **kw: Any
    ) -> httpx.Response:
        import httpx

        try:
            return await self._http().request(
                method,
                self._record_url(node, memory_id) if replica else self._url(node, memory_id),
                headers=self._headers(replica=replica, tenant=tenant),
                timeout=self.timeout,
                **kw,
            )
        except httpx.HTTPError as exc:
            raise ReplicationError(
                f"{method} {memory_id!r} on {node} failed: {exc!r}", node=node, memory_id=memory_id
            ) from exc

    @staticmethod
    def _json(response: httpx.Response, what: str, node: str, memory_id: str) -> Any:
        if not response.is_success:
            raise ReplicationError(
                f"{what} {memory_id!r} on {node} answered {response.status_code}",
                node=node,
                memory_id=memory_id,
                status=response.status_code,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ReplicationError(
                f"{what} {memory_id!r} on {node} returned a body that is not JSON",
                node=node,
                memory_id=memory_id,
            ) from exc

    async def replicate_record(
        self, node: str, record: MemoryRecord, *, tenant: str | None = None
    ) -> bool:
        """PUT the whole record (its version included) on ``node``'s replica API, filed under
        ``tenant`` there (None: the peer's ``default``).

        Returns True when ``node`` applied it, False when it already held this or a newer
        version (either way it now holds at least this version). Raises
        :class:`ReplicationError` on a transport error, a non-2xx answer or a malformed one.
        """
        memory_id = record.id
        response = await self._request("PUT", node, memory_id, replica=True, tenant=tenant,
                                       json=record.to_dict())
        body = self._json(response, "PUT record", node, memory_id)
        if not isinstance(body, dict) or not isinstance(body.get("applied"), bool):
            raise ReplicationError(
                f"PUT record {memory_id!r} on {node} returned no 'applied' flag",
                node=node,
                memory_id=memory_id,
            )
        applied: bool = body["applied"]
        return applied

    async def fetch_record(
        self, node: str, memory_id: str, *, tenant: str | None = None
    ) -> MemoryRecord | None:
        """The record ``node`` holds for ``memory_id`` in ``tenant`` (None: ``default``),
        tombstones included; None when the node never saw the id. Raises
        :class:`ReplicationError` on failures and malformed records."""
        response = await self._request("GET", node, memory_id, replica=True, tenant=tenant)
        if response.status_code == 404:
            return None
        body = self._json(response, "GET record", node, memory_id)
        try:
            record = parse_record(body)
        except InvalidMemoryError as exc:
            raise ReplicationError(
                f"GET record {memory_id!r} on {node} returned a malformed record: {exc.message}",
                node=node,
                memory_id=memory_id,
            ) from exc
        if record.id != memory_id:
            raise ReplicationError(
                f"GET record {memory_id!r} on {node} returned the record of {record.id!r}",
                node=node,
                memory_id=memory_id,
            )
        return record

    async def replicate_to_node(
        self, node: str, memory_id: str, memory_data: dict[str, Any]
    ) -> None:
        """PUT the memory's data on ``node``; raises :class:`ReplicationError` unless 2xx."""
        response = await self._request("PUT", node, memory_id, json=memory_data)
        if not response.is_success:
            raise ReplicationError(
                f"PUT {memory_id!r} on {node} answered {response.status_code}",
                node=node,
                memory_id=memory_id,
                status=response.status_code,
            )

    async def retrieve_from_node(self, node: str, memory_id: str) -> dict[str, Any] | None:
        """The memory's data as held by ``node``; None when the node does not have it."""
        response = await self._request("GET", node, memory_id)
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise ReplicationError(
                f"GET {memory_id!r} on {node} answered {response.status_code}",
                node=node,
                memory_id=memory_id,
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise ReplicationError(
                f"GET {memory_id!r} on {node} returned a body that is not JSON", node=node
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise ReplicationError(
                f"GET {memory_id!r} on {node} returned no 'data' object", node=node
            )
        if body.get("deleted"):
            return None
        data: dict[str, Any] = body["data"]
        return data

    async def aclose(self) -> None:
        """Close the HTTP client if this coordinator created it. Idempotent."""
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.aclose()
        if not self._owns_client:
            self._client = client

    async def __aenter__(self) -> DistributedMemoryCoordinator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
