"""Alert records and the sinks that deliver them (logs, webhooks)."""

from __future__ import annotations

import logging
from typing import Literal, Protocol, TypedDict, runtime_checkable

import httpx

__all__ = ["Alert", "AlertSink", "LoggingAlertSink", "WebhookAlertSink"]


class Alert(TypedDict):
    """One alert transition; a plain dict at runtime (JSON-ready)."""

    integration: str
    type: Literal["high_failure_rate", "high_response_time"]
    value: float
    threshold: float
    timestamp: float  # wall-clock seconds since the epoch
    state: Literal["firing", "resolved"]


@runtime_checkable
class AlertSink(Protocol):
    """Somewhere alerts go. ``send`` may raise; the monitor logs the error and carries on."""

    async def send(self, alert: Alert) -> None: ...


class LoggingAlertSink:
    """Writes each alert to a logger (default ``deep_tree_echo.alerts``)."""

    def __init__(self, logger: logging.Logger | None = None, *, level: int = logging.WARNING):
        self.logger = logger or logging.getLogger("deep_tree_echo.alerts")
        self.level = level

    async def send(self, alert: Alert) -> None:
        level = self.level if alert["state"] == "firing" else logging.INFO
        self.logger.log(
            level,
            "alert %s %s for %s: value=%.4g threshold=%.4g",
            alert["type"],
            alert["state"],
            alert["integration"],
            alert["value"],
            alert["threshold"],
        )


class WebhookAlertSink:
    """POSTs each alert as JSON to ``url``; a non-2xx answer raises ``httpx.HTTPStatusError``.

    Pass ``client`` to share a connection pool; otherwise the sink creates one lazily and
    :meth:`aclose` closes it.
    """

    def __init__(
        self, url: str, *, client: httpx.AsyncClient | None = None, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None

    async def send(self, alert: Alert) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        response = await self._client.post(self.url, json=alert, timeout=self.timeout)
        response.raise_for_status()

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def __repr__(self) -> str:
        return f"<WebhookAlertSink {self.url!r}>"
