"""Route an :class:`IntegrationMonitor`'s alerts to an event bus and an optional webhook.

:func:`attach_monitor` adds sinks to the monitor and returns an async ``detach`` that removes
exactly those sinks, so several apps can share the process-wide monitor without stomping on
each other's wiring.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from deep_tree_echo._events import EventSink
from deep_tree_echo.observability.alerts import Alert, AlertSink, WebhookAlertSink
from deep_tree_echo.observability.integration_monitor import ALERT_EVENT, IntegrationMonitor

__all__ = ["EventBusAlertSink", "attach_monitor"]


class EventBusAlertSink:
    """Emits each alert on ``event_bus`` as ``integration.alert`` (a copy of the alert dict)."""

    def __init__(self, event_bus: EventSink) -> None:
        self.event_bus = event_bus

    async def send(self, alert: Alert) -> None:
        await self.event_bus.emit(ALERT_EVENT, dict(alert))

    def __repr__(self) -> str:
        return f"<EventBusAlertSink {getattr(self.event_bus, 'name', self.event_bus)!r}>"


def attach_monitor(
    monitor: IntegrationMonitor, event_bus: EventSink | None, webhook_url: str | None = None
) -> Callable[[], Awaitable[None]]:
    """Send ``monitor``'s alerts to ``event_bus`` (and POST them to ``webhook_url`` if set).

    Returns an async ``detach()``: it waits for alerts already raised to be delivered, removes
    the sinks added here and closes the webhook's HTTP client. Calling it twice is harmless.
    A bus that is already the monitor's own ``event_bus`` is not added a second time.
    """
    added: list[AlertSink] = []
    if event_bus is not None and event_bus is not monitor.event_bus:
        added.append(EventBusAlertSink(event_bus))
    webhook = WebhookAlertSink(webhook_url) if webhook_url else None
    if webhook is not None:
        added.append(webhook)
    monitor.sinks.extend(added)
    detached = False

    async def detach() -> None:
        nonlocal detached
        if detached:
            return
        detached = True
        await monitor.drain()
        monitor.sinks[:] = [s for s in monitor.sinks if not any(s is a for a in added)]
        if webhook is not None:
            await webhook.aclose()

    return detach
